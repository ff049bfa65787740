"""evaluate(call) -> Decision: how a call fares against the policy, in the order docs/policies.md#order-of-evaluation
fixes:

hide -> explicit deny / deny_if / unmet require -> hard limits (reserved here) -> standing approval ->
require_approval (with soft limits and a default of require_approval) -> per-grant cap on pending requests
-> allow.

No I/O of its own: counters, the clock, standing approvals and the pending cap are injected.
An error while evaluating (a missing field, a type error, an unknown price) never reaches the agent as a
stack trace; it counts as true in deny_if and require_approval and as unmet in require.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from service.policy.cel_bridge import CelError, without_nulls
from service.policy.compiler import (
    MICRO,
    CompiledApproval,
    CompiledCheck,
    CompiledLimit,
    CompiledPolicy,
    CompiledRule,
)
from service.policy.conditions import ConditionError, resolve_path
from service.policy.cost import CostError
from service.policy.counter_keys import counter_key, counter_slot, owner_for
from service.policy.counters import CounterItem, CounterStore, CounterStoreUnavailable, GiveBack, Reservation
from service.policy.decision import ApprovalSpec, ArgumentProblem, Decision, Outcome, ToolCall


class StandingApprovals(Protocol):
    def find(self, call: ToolCall) -> str | None:
        """The id of a standing approval that covers this call, if one does."""
        ...


_COST_USD = ("cost", "usd")


class ArgumentCheck(Protocol):
    def problems(self, tool: str, arguments: Mapping[str, Any]) -> Sequence[ArgumentProblem]:
        """How the arguments break the tool's inputSchema (validators compiled beforehand); empty when they fit."""
        ...


INVALID_ARGUMENTS = "the arguments do not fit the tool's inputSchema"


class PendingCap(Protocol):
    """The per-grant cap on pending requests: asked only about a call the engine would hold."""

    cap: int

    def reached(self, call: ToolCall) -> bool:
        """Whether holding this call would open one request more than the grant's cap."""
        ...


class _Missing(Exception):
    pass


class _Evaluation:
    """The variables conditions see, computed only when a condition asks for them."""

    __slots__ = (
        "_cel_args",
        "_counters",
        "call",
        "cost_error",
        "cost_usd",
        "engine",
        "errors",
        "reserved",
        "rule",
    )

    def __init__(self, engine: PolicyEngine, call: ToolCall, rule: CompiledRule | None) -> None:
        self.engine = engine
        self.call = call
        self.rule = rule
        self.cost_usd: float | None = None
        self.cost_error: str | None = None
        self.errors: list[str] = []
        self._cel_args: dict[str, Any] | None = None
        self._counters: dict[str, int] | None = None
        self.reserved: Reservation | None = None

    # Mapping-style access for PolicyLayer conditions (they call .get on the root).
    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self.value(name, for_cel=False)
        except _Missing:
            return default

    def value(self, name: str, *, for_cel: bool) -> Any:
        if name == "args":  # the most common root first
            return self._args_for_cel() if for_cel else self.call.arguments
        root = _ROOTS.get(name)
        if root is None:
            raise _Missing(name)
        return root(self)

    def _args_for_cel(self) -> dict[str, Any]:
        if self._cel_args is None:
            self._cel_args = without_nulls(self.call.arguments)
        return self._cel_args

    def _tool(self) -> str:
        return self.call.tool

    def _grant(self) -> dict[str, Any]:
        return self.call.grant.as_context()

    def _cost(self) -> dict[str, float]:
        if self.cost_usd is None:
            raise _Missing(f"cost is unknown: {self.cost_error or 'no estimator for this tool'}")
        return {"usd": self.cost_usd}

    def _counter_values(self) -> dict[str, int]:
        if self._counters is None:
            self._counters = self.engine._peek_counters(self.call, self.rule, self.reserved)
        return self._counters

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.engine.clock(), UTC)

    def cel_value(self, name: str) -> Any:
        try:
            return self.value(name, for_cel=True)
        except _Missing as exc:
            raise CelError(str(exc)) from None

    def check(self, check: CompiledCheck) -> bool:
        """True when the check holds. Raises ConditionError or CelError when it cannot be evaluated."""
        if check.cel is not None:
            return check.cel.evaluate_bool(self.cel_value)
        for condition in check.conditions:  # noqa: SIM110 - a plain loop skips a generator per call on the hot path
            if not condition.holds(self):
                return False
        return True


# The roots conditions may read besides `args`, each computed only when a condition asks for it.
_ROOTS: dict[str, Callable[[_Evaluation], Any]] = {
    "tool": _Evaluation._tool,
    "grant": _Evaluation._grant,
    "cost": _Evaluation._cost,
    "counters": _Evaluation._counter_values,
    "now": _Evaluation._now,
}


class PolicyEngine:
    def __init__(
        self,
        policy: CompiledPolicy,
        counters: CounterStore,
        *,
        clock: Callable[[], float] = time.time,
        standing_approvals: StandingApprovals | None = None,
        pending_cap: PendingCap | None = None,
        counters_fail_open: bool = False,
        argument_check: ArgumentCheck | None = None,
    ) -> None:
        self.argument_check = argument_check
        self.policy = policy
        self.counters = counters
        self.clock = clock
        self.standing_approvals = standing_approvals
        self.pending_cap = pending_cap
        self.counters_fail_open = counters_fail_open

    def is_hidden(self, tool: str) -> bool:
        return self.policy.hidden_by(tool) is not None

    def may_hold(self, tool: str) -> bool:
        """Whether some call of this tool could be held (used to advertise task support)."""
        return self._may_hold(self.policy.rule_for(tool))

    def _may_hold(self, rule: CompiledRule | None) -> bool:
        if rule is None:
            return self.policy.default == "require_approval"
        return rule.approval is not None or any(limit.soft for limit in rule.all_limits)

    def evaluate(self, call: ToolCall) -> Decision:
        rule = self.policy.rule_for(call.tool)
        refusal = self._refused_outright(call.tool, rule)
        if refusal is not None:
            return refusal
        ev = _Evaluation(self, call, rule)
        self._estimate_cost(ev, rule)
        denial = self._first_denial(ev, rule)
        if denial is not None:
            return denial
        limits = rule.all_limits if rule is not None else self.policy.all_tools.limits
        if self.argument_check is not None and self._may_hold(rule):
            # A call that cannot run must not wait for a person, nor hold budget meanwhile
            # (docs/policies.md#order-of-evaluation).
            problems = self.argument_check.problems(call.tool, call.arguments)
            if problems:
                return self._refuse_invalid(ev, rule, limits, problems)
        reservation: Reservation | None = None
        escalation: tuple[str, str] | None = None
        if limits:
            outcome = self._reserve(ev, limits)
            if isinstance(outcome, Decision):
                return outcome
            reservation, escalation = outcome
            ev.reserved = reservation
        hold = self._hold_reason(ev, rule, escalation)
        if hold is None:
            return self._finish(Outcome.ALLOW, rule.pointer if rule else "/default", None, ev, reservation)
        return self._hold_or_cap(ev, reservation, hold)

    def release(self, reservation: Reservation | None, why: GiveBack) -> None:
        """Give counters back, as much as `why` says."""
        if reservation is None:
            return
        items = reservation.to_give_back(why)
        if items:
            self.counters.release(items)

    def _refuse_invalid(
        self,
        ev: _Evaluation,
        rule: CompiledRule | None,
        limits: tuple[CompiledLimit, ...],
        problems: Sequence[ArgumentProblem],
    ) -> Decision:
        """The hard count limits still apply first and count the call (a looping agent stays capped); budgets are
        never reserved for it."""
        counts = tuple(limit for limit in limits if limit.increment_from is None)
        reservation: Reservation | None = None
        if counts:
            outcome = self._reserve(ev, counts)
            if isinstance(outcome, Decision):
                return outcome
            reservation = outcome[0]
        return Decision(
            Outcome.DENY,
            rule.pointer if rule is not None else "/default",
            INVALID_ARGUMENTS,
            cost_usd=ev.cost_usd,
            reservation=reservation,
            errors=tuple(ev.errors),
            invalid_arguments=tuple(problems),
        )

    # -- steps ------------------------------------------------------------------------------------------

    def _refused_outright(self, tool: str, rule: CompiledRule | None) -> Decision | None:
        """Hidden, not permitted by a default deny, or denied by the rule's action: nothing about the call matters."""
        hidden = self.policy.hidden_by(tool)
        if hidden is not None:
            return Decision(Outcome.DENY, hidden, f'Tool "{tool}" is hidden by policy')
        if rule is None:
            if self.policy.default == "deny":
                return Decision(Outcome.DENY, "/default", f'Tool "{tool}" is not permitted by policy')
            return None
        if rule.action == "deny":
            return Decision(
                Outcome.DENY, rule.pointer + "/action", rule.on_deny or f'Tool "{tool}" is denied by policy'
            )
        return None

    def _estimate_cost(self, ev: _Evaluation, rule: CompiledRule | None) -> None:
        if rule is None or rule.cost is None:
            return
        try:
            ev.cost_usd = rule.cost.estimate(ev.call.tool, ev.call.arguments).usd
        except CostError as exc:
            ev.cost_error = str(exc)
            ev.errors.append(f"{rule.cost_pointer}: {exc}")

    def _hold_or_cap(
        self, ev: _Evaluation, reservation: Reservation | None, hold: tuple[str, str, ApprovalSpec]
    ) -> Decision:
        """A would-be hold: allowed by a standing approval, denied past the pending cap, held otherwise."""
        pointer, reason, spec = hold
        call = ev.call
        if self.standing_approvals is not None:
            standing = self.standing_approvals.find(call)
            if standing is not None:
                return self._finish(Outcome.ALLOW, pointer, None, ev, reservation, standing=standing)
        if self.pending_cap is not None and self.pending_cap.reached(call):
            # The one place the cap is decided: the call is denied (and audited so), and nothing stays reserved.
            self._give_back(reservation)
            return self._finish(
                Outcome.DENY,
                pointer,
                f"{self.pending_cap.cap} of this agent's calls already wait for approval; wait for a decision"
                " before making more. The call was not made.",
                ev,
                None,
            )
        return self._finish(Outcome.HOLD, pointer, reason, ev, reservation, approval=spec)

    def _first_denial(self, ev: _Evaluation, rule: CompiledRule | None) -> Decision | None:
        for scope in (rule, self.policy.all_tools):
            if scope is None:
                continue
            for check in scope.require:
                try:
                    met = ev.check(check)
                except (ConditionError, CelError) as exc:
                    ev.errors.append(f"{check.pointer}: {exc}")
                    met = False
                if not met:
                    condition = check.conditions[0]
                    reason = scope.on_deny or f"Required condition not met: {condition.path} {condition.op}"
                    return self._finish(Outcome.DENY, check.pointer, reason, ev, None)
            for check in scope.deny_if:
                try:
                    hit = ev.check(check)
                except (ConditionError, CelError) as exc:
                    ev.errors.append(f"{check.pointer}: {exc}")
                    hit = True
                if hit:
                    return self._finish(
                        Outcome.DENY,
                        check.pointer,
                        check.message or f"Denied by rule {check.pointer}",
                        ev,
                        None,
                    )
        return None

    def _reserve(
        self, ev: _Evaluation, limits: tuple[CompiledLimit, ...]
    ) -> Decision | tuple[Reservation, tuple[str, str] | None]:
        now = self.clock()
        items, escalation = self._counter_items(ev, limits, now)
        try:
            result = self.counters.reserve(items, now)
        except CounterStoreUnavailable as exc:
            ev.errors.append(str(exc))
            if self.counters_fail_open:
                return Reservation(()), escalation
            return self._finish(
                Outcome.DENY,
                limits[0].pointer,
                "Rate-limit counters are unavailable; try again shortly.",
                ev,
                None,
            )
        if not result.ok:
            assert result.refused is not None
            return _rate_limited(ev, limits[result.refused], now)
        for limit, value in zip(limits, result.values, strict=True):
            if limit.soft and value > limit.max_units and escalation is None:
                escalation = (limit.pointer, f"over the soft limit: {_limit_message(limit)}")
        return Reservation(tuple(items)), escalation

    def _counter_items(
        self, ev: _Evaluation, limits: tuple[CompiledLimit, ...], now: float
    ) -> tuple[list[CounterItem], tuple[str, str] | None]:
        """What this call would add to each limit's counter, and the first budget it could not price."""
        call = ev.call
        items = []
        escalation: tuple[str, str] | None = None
        for limit in limits:
            amount = 1
            if limit.increment_from is not None:
                amount, problem = self._budget_amount(ev, limit)
                if problem is not None:
                    # Unknown cost: count nothing, and let a person look at the call instead.
                    ev.errors.append(f"{limit.pointer}: {problem}")
                    escalation = escalation or (limit.pointer, f"cost could not be estimated ({problem})")
            key, window_end = counter_slot(limit.counter, owner_for(limit.scope, call), limit.window.seconds, now)
            budget = limit.increment_from is not None
            items.append(CounterItem(key, amount, budget, None if limit.soft else limit.max_units, window_end))
        return items, escalation

    def _budget_amount(self, ev: _Evaluation, limit: CompiledLimit) -> tuple[int, str | None]:
        assert limit.increment_from is not None
        if limit.increment_from == _COST_USD:
            if ev.cost_usd is None:
                return 0, f"cost is unknown: {ev.cost_error or 'no estimator for this tool'}"
            return round(ev.cost_usd * MICRO), None
        root, rest = limit.increment_from[0], limit.increment_from[1:]
        try:
            base = ev.value(root, for_cel=False)
        except _Missing as exc:
            return 0, str(exc)
        value = resolve_path({root: base}, (root, *rest))
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            return 0, f"{'.'.join(limit.increment_from)} is not a non-negative number"
        return round(value * MICRO), None

    def _hold_reason(
        self, ev: _Evaluation, rule: CompiledRule | None, escalation: tuple[str, str] | None
    ) -> tuple[str, str, ApprovalSpec] | None:
        """Why a call is to wait for a person (rule pointer, reason, how it is decided), or None to let it run."""
        if rule is None:
            if self.policy.default == "require_approval":
                return "/default", "tools that are not listed need approval", self.policy.default_approval
            spec = self.policy.default_approval
        else:
            approval = rule.approval
            if approval is not None:
                held = self._approval_required(ev, approval)
                if held is not None:
                    return approval.pointer, held, approval.spec
            spec = approval.spec if approval is not None else self.policy.default_approval
        if escalation is not None:
            return escalation[0], escalation[1], spec
        return None

    def _approval_required(self, ev: _Evaluation, approval: CompiledApproval) -> str | None:
        """The reason when the rule's require_approval applies to this call; a condition that fails holds it."""
        if approval.when is None:
            return approval.reason
        try:
            held = ev.check(approval.when)
        except (ConditionError, CelError) as exc:
            ev.errors.append(f"{approval.when.pointer}: {exc}")
            return f"held because its condition could not be evaluated ({exc})"
        return approval.reason if held else None

    def _finish(
        self,
        outcome: Outcome,
        rule: str,
        reason: str | None,
        ev: _Evaluation,
        reservation: Reservation | None,
        *,
        approval: ApprovalSpec | None = None,
        standing: str | None = None,
    ) -> Decision:
        return Decision(
            outcome,
            rule,
            reason,
            cost_usd=ev.cost_usd,
            approval=approval,
            reservation=reservation,
            errors=tuple(ev.errors),
            standing_approval=standing,
        )

    def _give_back(self, reservation: Reservation | None) -> None:
        if reservation is not None and reservation.items:
            self.counters.release(reservation.items)

    def _peek_counters(self, call: ToolCall, rule: CompiledRule | None, reserved: Reservation | None) -> dict[str, int]:
        """counters.<name>: the count in the current window before this call (budgets in USD)."""
        limits = rule.all_limits if rule is not None else self.policy.all_tools.limits
        now = self.clock()
        keys = [counter_key(limit.counter, owner_for(limit.scope, call), limit.window.seconds, now) for limit in limits]
        try:
            values = self.counters.peek(keys, now) if keys else []
        except CounterStoreUnavailable as exc:
            raise _Missing(str(exc)) from None
        own = {item.key: item.amount for item in reserved.items} if reserved is not None else {}
        out: dict[str, Any] = {}
        for limit, key, value in zip(limits, keys, values, strict=True):
            before = value - own.get(key, 0)
            out.setdefault(limit.counter, before / MICRO if limit.increment_from else before)
        return out


def _rate_limited(ev: _Evaluation, limit: CompiledLimit, now: float) -> Decision:
    return Decision(
        Outcome.RATE_LIMITED,
        limit.pointer,
        limit.on_deny or _limit_message(limit),
        cost_usd=ev.cost_usd,
        retry_after=max(1, math.ceil(limit.window.end(now) - now)),
        errors=tuple(ev.errors),
    )


def _limit_message(limit: CompiledLimit) -> str:
    if limit.increment_from is not None:
        if limit.increment_from == ("cost", "usd"):
            return f"Budget of ${limit.max_display:.2f} per {limit.window.label} reached ({limit.counter})."
        source = ".".join(limit.increment_from)
        return f"Limit of {limit.max_display:g} {source} per {limit.window.label} reached ({limit.counter})."
    return f"Rate limit of {limit.max_units} per {limit.window.label} reached ({limit.counter})."
