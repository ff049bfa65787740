"""An approver's edit: a JSON merge patch (RFC 7396) on the exact arguments under review, and the edited call
evaluated again, in full, by the policy in force.

Values the approver did not touch are carried over as they are, byte for byte; a channel sends only what changed. The
edited call is priced again and its budget reservation replaced: the new amounts are reserved first, against limits
that count the old amounts as already given back, and only then are the old amounts released, so a refused edit
changes no counter and a concurrent call can never take the room the edit needs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session

from service.approvals.deciders import decider_refusal_under, spec_to_json
from service.approvals.models import ToolCallRequest
from service.approvals.records import request_event
from service.approvals.schemas import Approver
from service.arguments import MAX_ARGUMENT_DEPTH, TOO_DEEP, arguments_digest, nests_deeper_than
from service.audit.schemas import user_actor
from service.errors import Conflict, Forbidden, InvalidInput, Unavailable
from service.grants.service import authenticated_by_id
from service.policy import CounterStore, Decision, GrantInfo, Outcome, PolicyEngine, Reservation, ToolCall
from service.policy.counters import CounterItem, ReservedItem, ReserveResult

ArgumentValidator = Callable[[str, Mapping[str, Any]], list[str]]


def apply_patch(original: Mapping[str, Any], patch: object) -> dict[str, Any]:
    """A new object: `patch`'s keys set over `original`'s, nested objects merged, a null removing its key, anything
    else (arrays included) replacing the value whole."""
    if not isinstance(patch, Mapping):
        raise InvalidInput("an edit is a JSON merge patch: an object of the argument values to change")
    if nests_deeper_than(patch, MAX_ARGUMENT_DEPTH):  # the same limit as the agent's own call (docs/security.md)
        raise InvalidInput(f"the edit cannot run: {TOO_DEEP}")
    return _merge(original, patch)


def _merge(original: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(original)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping):
            target = merged.get(key)
            merged[key] = _merge(target if isinstance(target, Mapping) else {}, value)
        else:
            merged[key] = value
    return merged


@dataclass
class Revision:
    """An edit that the policy in force accepts: its decision (allow or hold), and its budget reserved beside the
    old one until `settle` (the edit is kept) or `abandon` (it is not)."""

    arguments: dict[str, Any]
    digest: str
    decision: Decision
    reservation: list[dict[str, Any]]
    """The request's reservation once the edit is kept: its counts from admission, the edited call's budgets."""
    _counters: CounterStore
    _new_budget: list[ReservedItem]
    _old_budget: list[ReservedItem]

    @property
    def cost_micros(self) -> int | None:
        return round(self.decision.cost_usd * 1_000_000) if self.decision.cost_usd is not None else None

    def settle(self) -> None:
        if self._old_budget:
            self._counters.release(self._old_budget)

    def abandon(self) -> None:
        if self._new_budget:
            self._counters.release(self._new_budget)


def revise(policy: PolicyEngine, grant: GrantInfo, request: ToolCallRequest, arguments: dict[str, Any]) -> Revision:
    """Evaluate the edited call as if the agent had made it; raises when the policy denies it or a hard budget would
    be passed (nothing is then reserved)."""
    old = Reservation.from_json(request.reservation)
    rebooking = _Rebooking(policy.counters, old)
    checker = PolicyEngine(policy.policy, rebooking, clock=policy.clock)  # fails closed when counters are down
    decision = checker.evaluate(ToolCall(grant, request.tool, arguments, upstream=request.upstream))
    if decision.outcome is Outcome.DENY:
        raise InvalidInput(f"the policy denies the edited call ({decision.rule}): {decision.reason}")
    if decision.outcome is Outcome.RATE_LIMITED:
        raise Conflict(f"the edited call would pass a limit ({decision.rule}): {decision.reason}")
    new_budget = [i for i in decision.reservation.items if i.budget] if decision.reservation else []
    counts = [i for i in old.items if not i.budget]
    return Revision(
        arguments=arguments,
        digest=arguments_digest(arguments),
        decision=decision,
        reservation=Reservation((*counts, *new_budget)).to_json(),
        _counters=policy.counters,
        _new_budget=new_budget,
        _old_budget=[i for i in old.items if i.budget],
    )


class _Rebooking:
    """The counter store as an edited call sees it. The call was counted when it was admitted, and an edit is not a
    new admission: count limits neither count nor refuse it again. Its old budget is about to be given back, so a
    budget limit has that much more room, and conditions read the counters without this call's old amounts."""

    def __init__(self, store: CounterStore, old: Reservation) -> None:
        self._store = store
        self._old = {item.key: item.amount for item in old.items}
        self._old_budget = {item.key: item.amount for item in old.items if item.budget}

    def reserve(self, items: Sequence[CounterItem], now: float) -> ReserveResult:
        rebooked = [
            CounterItem(
                item.key,
                item.amount if item.budget else 0,
                item.budget,
                item.limit + self._old_budget.get(item.key, 0) if item.budget and item.limit is not None else None,
                item.window_end,
            )
            for item in items
        ]
        result = self._store.reserve(rebooked, now)
        if not result.ok:
            return result
        return ReserveResult(
            True, tuple(v - self._old_budget.get(i.key, 0) for i, v in zip(items, result.values, strict=True))
        )

    def release(self, items: Sequence[ReservedItem]) -> None:
        self._store.release(items)

    def peek(self, keys: Sequence[str], now: float) -> list[int]:
        return [v - self._old.get(k, 0) for k, v in zip(keys, self._store.peek(keys, now), strict=True)]

    def close(self) -> None:
        pass


def edit(
    session: Session,
    request: ToolCallRequest,
    approver: Approver,
    patch: dict[str, Any],
    validate_arguments: ArgumentValidator | None,
    policy: PolicyEngine | None,
    now: datetime,
) -> Revision | None:
    """Make the edited call the version under review, re-priced and re-evaluated; None when the patch changes
    nothing. Every vote cast before it stops counting (votes are bound to the digest they approved).

    The new budget is reserved; the caller settles the revision (gives the old budget back) once nothing else in
    the decision can fail, or abandons it (gives the new one back) when something does: the counters live outside
    the transaction, and must not move for a decision that rolls back."""
    assert request.id is not None
    arguments = apply_patch(request.review_arguments, patch)
    before = request.review_digest
    if arguments_digest(arguments) == before:
        return None
    problems = validate_arguments(request.tool, arguments) if validate_arguments else []
    if problems:
        raise InvalidInput("the edited arguments do not fit the tool: " + "; ".join(problems))
    grant = authenticated_by_id(session, request.grant_id)
    if policy is None or grant is None:
        raise Unavailable("edits cannot be checked against the policy here; approve or reject the call as it is")
    revision = revise(policy, grant.info, request, arguments)
    try:
        approval = request.approval
        if revision.decision.approval is not None:  # still held: by the rule it now falls under
            approval = spec_to_json(revision.decision.approval, request.approval.get("owner"))
            refusal = decider_refusal_under(approval, approver)
            if refusal is not None:
                raise Forbidden(f"the edit moves R-{request.id} under {revision.decision.rule}, and {refusal}")
        details = {
            "from_digest": before,
            "to_digest": revision.digest,
            "from_cost_micros": request.cost_micros,
            "to_cost_micros": revision.cost_micros,
            "from_rule": request.rule,
            "to_rule": revision.decision.rule if revision.decision.approval is not None else request.rule,
            "channel": approver.channel,
        }
        if request.edited_arguments is None:
            request.original_cost_micros = request.cost_micros
        request.edited_arguments = revision.arguments
        request.cost_micros = revision.cost_micros
        request.reservation = revision.reservation
        if revision.decision.approval is not None:
            request.rule = revision.decision.rule
            request.reason = revision.decision.reason
            request.approval = approval
        session.add(request)
        session.flush()
        request_event(session, request, user_actor(approver.username), "request.edited", "pending", None, details)
    except BaseException:
        revision.abandon()
        raise
    return revision
