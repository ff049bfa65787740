"""The approval contract, as a stateful property test on both database engines (issue 13, "Proof").

Deceiving agents hold calls; approvers look, reveal, edit, vote under a quorum, remember and reject; grants are
revoked, the clock moves past deadlines and the sweeper runs; Airlock restarts on the same database and Redis. After
every step:
- every call that ran ran exactly the arguments each approver whose vote released it had in full view (read back from
  the decider's view text, reveals included), and the digest each of those votes carried;
- each approval ran at most once, and nothing ran for a revoked grant;
- each grant's budget holds exactly what ran, plus what still waits to run;
- every transition has its audit row, in order, and the audit chain verifies.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine

from service.approvals import deadlines, reveal
from service.approvals import service as approvals
from service.approvals.models import RequestStatus
from service.approvals.schemas import Approver, Remember, Verdict
from service.arguments import arguments_digest
from service.audit.service import verify
from service.db.engine import reading, unit_of_work
from service.errors import AirlockError, Conflict, Forbidden, InvalidInput
from service.grants.service import revoke_grant
from service.policy import Outcome
from service.security import TokenHasher
from service.users.models import Role
from tests.approvals.contract_inputs import (
    BUDGET_MICROS,
    IMAGE_TOOL,
    POST_TOOL,
    TIMEOUT_SECONDS,
    agent_arguments,
    canonical,
    edit_patch,
    merged,
    oracle_cost,
    seen_arguments,
)
from tests.approvals.contract_world import AgentGrant, Held, Standing, World
from tests.conftest import empty_tables

APPROVERS = [
    Approver("ana", Role.APPROVER, "web"),
    Approver("bo", Role.APPROVER, "slack", slack_user_id="U0BO"),
    Approver("cy", Role.APPROVER, "api"),
    Approver("root", Role.ADMIN, "cli"),
]
LIVE = (RequestStatus.PENDING, RequestStatus.APPROVED, RequestStatus.EXECUTING, RequestStatus.SUCCEEDED)
"""States whose call keeps its budget: waiting to run, or ran."""
REMINDER_POINTS = (0.5, 0.9)


EXPECTED_MOVES = {
    "agent call: hold",
    "agent call: allow",  # a call an approved "remember" covers
    "agent call: rate_limited",  # past the budget
    "a masked value was revealed",
    "a blob was shown",
    "decided: request.vote after an edit",
    "decided: request.approved after an edit",
    "decided: request.rejected",
    "decision refused: Conflict",
    "an approved call ran",
    "expired",
    "restart",
    "revocation cancelled a pending call",
    "revocation cancelled a approved call",
}
"""Moves the fixed examples must reach: when a change to the code or the strategies leaves one out, the test says so."""


def event(what: str) -> None:
    ApprovalContract.moves[what] += 1


class ApprovalContract(RuleBasedStateMachine):
    moves: Counter[str] = Counter()
    examples = 0
    url: str
    redis_prefix: str
    hasher: TokenHasher

    def __init__(self) -> None:
        super().__init__()
        ApprovalContract.examples += 1
        # Each example starts from empty tables (a short audit chain to verify after every step) and counters of its
        # own (grant ids start again).
        self.world = World(self.url, f"{self.redis_prefix}{self.examples}:", self.hasher)
        empty_tables(self.world.db)
        self.grants: list[AgentGrant] = []
        self.requests: dict[int, Held] = {}
        self.standing: list[Standing] = []
        self.allowed: list[tuple[AgentGrant, str, dict[str, Any]]] = []
        self.calls_made: list[tuple[str, dict[str, Any]]] = []
        self.views: dict[tuple[str, int], tuple[str, dict[str, Any]]] = {}
        self.reminders: dict[int, int] = {}

    def teardown(self) -> None:
        self.world.close()

    @initialize()
    def two_agents(self) -> None:
        self.grants = [self.world.new_grant(), self.world.new_grant()]

    def _pick(self, data: st.DataObject) -> Held:
        """A request, most often one still waiting (deciding the others only proves they are refused)."""
        pending = [h for h in self.requests.values() if h.status is RequestStatus.PENDING]
        pool = pending if bool(pending) and data.draw(st.integers(0, 3)) > 0 else list(self.requests.values())
        return data.draw(st.sampled_from(sorted(pool, key=lambda h: h.id)))

    # -- agents ----------------------------------------------------------------------------------------------------

    @rule(data=st.data(), tool=st.sampled_from([IMAGE_TOOL, POST_TOOL]))
    def agent_calls(self, data: st.DataObject, tool: str) -> None:
        grant = data.draw(st.sampled_from(self.grants))
        earlier = [h.review for h in self.requests.values() if h.tool == tool and h.grant is grant]
        earlier += [a for g, t, a in self.allowed if t == tool and g is grant]
        if bool(earlier) and data.draw(st.booleans()):
            arguments = dict(data.draw(st.sampled_from(earlier)))  # the same call again (a remembered one passes)
        else:
            arguments = data.draw(agent_arguments(tool))
        if grant.revoked:
            try:
                self.world.call(grant, tool, arguments)
            except PermissionError:
                return
            raise AssertionError("a revoked grant's agent was admitted")
        outcome, request_id = self.world.call(grant, tool, arguments)
        assert outcome is self._expected_admission(grant, tool, arguments)
        event(f"agent call: {outcome.value}")
        if outcome is Outcome.ALLOW:
            self.allowed.append((grant, tool, arguments))
            self.calls_made.append((tool, arguments))
            assert canonical(self.world.upstream.calls[-1]) == canonical([tool, arguments])
        elif outcome is Outcome.HOLD:
            assert request_id is not None
            self.requests[request_id] = self.world.held(request_id, grant, tool, arguments)

    def _expected_admission(self, grant: AgentGrant, tool: str, arguments: dict[str, Any]) -> Outcome:
        if self._reserved(grant, tool) + oracle_cost(tool, arguments) > BUDGET_MICROS[tool]:
            return Outcome.RATE_LIMITED
        digest = arguments_digest(arguments)
        for s in self.standing:
            if (
                (s.grant_id, s.tool) == (grant.id, tool)
                and s.digest in (None, digest)
                and s.expires > self.world.clock.now
            ):
                return Outcome.ALLOW
        return Outcome.HOLD

    def _reserved(self, grant: AgentGrant, tool: str) -> int:
        waiting_or_ran = sum(
            oracle_cost(tool, h.review)
            for h in self.requests.values()
            if h.grant is grant and h.tool == tool and h.status in LIVE
        )
        return waiting_or_ran + sum(oracle_cost(tool, a) for g, t, a in self.allowed if g is grant and t == tool)

    # -- approvers -------------------------------------------------------------------------------------------------

    @precondition(lambda self: bool(self.requests))
    @rule(data=st.data(), approver=st.sampled_from(APPROVERS))
    def approver_looks(self, data: st.DataObject, approver: Approver) -> None:
        held = data.draw(st.sampled_from(sorted(self.requests.values(), key=lambda h: h.id)))
        self._look(held, approver)

    def _look(self, held: Held, approver: Approver) -> tuple[str, dict[str, Any]]:
        """What a decider's view shows, read back from its text, with every masked value revealed (audited)."""
        with reading(self.world.db) as session:
            view = approvals.arguments_view(approvals.get(session, held.id), approver)
        assert view.full and view.digest == held.digest
        revealed = {}
        for pointer in view.masked:
            with unit_of_work(self.world.db) as session:
                revealed[pointer] = reveal.reveal(session, held.id, approver, pointer)
            held.actions.append("request.revealed")
            event("a masked value was revealed")
        shown = seen_arguments(view, revealed)
        if view.blobs:
            event("a blob was shown")
        assert canonical(shown) == canonical(held.review), "the decider's view differs from what an approval releases"
        assert arguments_digest(shown) == view.digest
        held.seen.setdefault(approver.username, {})[view.digest] = canonical(shown)
        self.views[(approver.username, held.id)] = (view.digest, shown)
        return view.digest, shown

    @precondition(lambda self: bool(self.requests))
    @rule(
        data=st.data(),
        approver=st.sampled_from(APPROVERS),
        fresh=st.booleans(),
        verdict=st.sampled_from([Verdict.APPROVE, Verdict.APPROVE, Verdict.APPROVE, Verdict.REJECT]),
        edits=st.booleans(),
        remember=st.one_of(
            st.none(), st.builds(Remember, st.sampled_from(["arguments", "tool"]), st.just(timedelta(minutes=45)))
        ),
    )
    def approver_decides(
        self,
        data: st.DataObject,
        approver: Approver,
        fresh: bool,
        verdict: Verdict,
        edits: bool,
        remember: Remember | None,
    ) -> None:
        held = self._pick(data)
        view = self.views.get((approver.username, held.id))
        if fresh or view is None:  # otherwise a view taken earlier, which someone's edit may have made stale
            view = self._look(held, approver) if held.status is RequestStatus.PENDING else (held.digest, held.review)
        seen_digest, seen = view
        patch = data.draw(edit_patch(held.tool, seen)) if edits and verdict is Verdict.APPROVE else None
        expected = self._expected_refusal(held, approver, seen_digest, verdict, patch)
        refused: AirlockError | None = None
        try:
            with unit_of_work(self.world.db) as session:
                request, _ = approvals.apply_verdict(
                    session,
                    held.id,
                    approver,
                    verdict,
                    reason="not this one" if verdict is Verdict.REJECT else None,
                    patch=patch,
                    remember=remember,
                    counters=self.world.counters,
                    policy=self.world.policy,
                    seen_digest=seen_digest,
                    now=self.world.now,
                )
        except AirlockError as exc:
            refused = exc
        if refused is not None:
            assert expected is not None and isinstance(refused, expected), f"refused unexpectedly: {refused!r}"
            event(f"decision refused: {type(refused).__name__}")
            return
        assert expected is None, f"not refused, though it should have been ({expected.__name__})"
        self._decided(held, approver, verdict, patch, seen, remember)
        event(f"decided: {held.actions[-1]}" + (" after an edit" if held.actions[-2] == "request.edited" else ""))
        assert request.status is held.status and request.review_digest == held.digest

    def _expected_refusal(
        self, held: Held, approver: Approver, seen_digest: str, verdict: Verdict, patch: dict[str, Any] | None
    ) -> type[AirlockError] | None:
        if held.status is not RequestStatus.PENDING or self.world.clock.now >= held.deadline:
            return Conflict
        if seen_digest != held.digest:
            return Conflict
        if verdict is Verdict.REJECT:
            return None
        after = merged(held.review, patch) if patch is not None else held.review
        if arguments_digest(after) != held.digest:
            if "directory" in after:
                return InvalidInput  # the policy denies the edited call
            room = (
                BUDGET_MICROS[held.tool] - self._reserved(held.grant, held.tool) + oracle_cost(held.tool, held.review)
            )
            if oracle_cost(held.tool, after) > room:
                return Conflict  # the edited call would pass the budget
        if held.votes.get(approver.username) == arguments_digest(after):
            return Conflict  # already approved as it stands
        return None

    def _decided(
        self,
        held: Held,
        approver: Approver,
        verdict: Verdict,
        patch: dict[str, Any] | None,
        seen: dict[str, Any],
        remember: Remember | None,
    ) -> None:
        if verdict is Verdict.REJECT:
            held.status = RequestStatus.REJECTED
            held.actions.append("request.rejected")
            return
        if patch is not None and arguments_digest(merged(seen, patch)) != held.digest:
            held.review = merged(seen, patch)
            held.actions.append("request.edited")
            # The editor knows what they typed over what they were shown.
            held.seen.setdefault(approver.username, {})[held.digest] = canonical(held.review)
        held.votes[approver.username] = held.digest
        held.remember[approver.username] = remember
        counted = held.counted()
        if len(counted) < held.quorum:
            held.actions.append("request.vote")
            return
        held.status = RequestStatus.APPROVED
        held.actions.append("request.approved")
        asked = [held.remember[who] for who in counted]
        if all(r is not None for r in asked):
            scopes = {r.scope for r in asked if r is not None}
            seconds = min(r.duration.total_seconds() for r in asked if r is not None)
            digest = None if scopes == {"tool"} else held.digest
            self.standing.append(Standing(held.grant.id, held.tool, digest, self.world.clock.now + seconds))

    @precondition(lambda self: bool(self.requests))
    @rule(data=st.data())
    def grant_owner_tries_to_approve(self, data: st.DataObject) -> None:
        """The rule does not allow self-approval: the owner of the agent's grant may not release its call."""
        held = data.draw(st.sampled_from(sorted(self.requests.values(), key=lambda h: h.id)))
        owner = Approver(held.grant.owner, Role.APPROVER, "web")
        with reading(self.world.db) as session:
            assert not approvals.arguments_view(approvals.get(session, held.id), owner).full
        live = held.status is RequestStatus.PENDING and self.world.clock.now < held.deadline
        with pytest.raises(Forbidden if live else Conflict), unit_of_work(self.world.db) as session:
            approvals.apply_verdict(
                session, held.id, owner, Verdict.APPROVE, seen_digest=held.digest, now=self.world.now
            )

    # -- the gateway releases approved calls -----------------------------------------------------------------------

    @precondition(lambda self: any(h.status is RequestStatus.APPROVED for h in self.requests.values()))
    @rule(data=st.data(), restart_first=st.integers(0, 3))
    def gateway_runs(self, data: st.DataObject, restart_first: int) -> None:
        """The gateway releases an approved call (now and then one that is not, which must not run), maybe after a
        restart: approvals survive it."""
        if restart_first == 0:
            self._restart()
        approved = [h for h in self.requests.values() if h.status is RequestStatus.APPROVED]
        pool = approved if data.draw(st.integers(0, 4)) else list(self.requests.values())
        held = data.draw(st.sampled_from(sorted(pool, key=lambda h: h.id)))
        ran, calls = self.world.run(held)
        if held.status is not RequestStatus.APPROVED:
            assert not ran and calls == [], f"R-{held.id} ran while {held.status.value}"
            return
        assert ran and not held.grant.revoked
        assert [canonical(c) for c in calls] == [canonical([held.tool, held.review])]
        self._released_as_seen(held, calls[0][1])
        held.status = RequestStatus.SUCCEEDED
        held.actions.append("request.executed")
        held.runs += 1
        event("an approved call ran")
        self.calls_made.append(calls[0])
        again, calls = self.world.run(held)  # a second release (another replica, a double click) runs nothing
        assert not again and calls == []

    def _released_as_seen(self, held: Held, executed: dict[str, Any]) -> None:
        digest = arguments_digest(executed)
        approved = [d for action, d in self.world.audit_actions([held.id])[held.id] if action == "request.approved"]
        assert len(approved) == 1 and approved[0]["executed_digest"] == digest
        voters = approved[0]["approvers"]
        assert len(set(voters)) >= held.quorum and set(voters) == set(held.counted())
        for who in voters:
            assert held.votes[who] == digest, f"{who}'s vote carried another digest"
            assert held.seen[who][digest] == canonical(executed), f"{who} never had in full view what ran"

    # -- revocations, time, restarts -------------------------------------------------------------------------------

    @precondition(lambda self: bool(self.requests) and any(not g.revoked for g in self.grants))
    @rule(data=st.data())
    def admin_revokes_a_grant(self, data: st.DataObject) -> None:
        grant = data.draw(st.sampled_from([g for g in self.grants if not g.revoked]))
        with unit_of_work(self.world.db) as session:
            cancellation = revoke_grant(session, grant.name, actor="user:root")
        cancellation.settle(self.world.counters)
        grant.revoked = True
        for held in self.requests.values():
            if held.grant is grant and held.status in (RequestStatus.PENDING, RequestStatus.APPROVED):
                event(f"revocation cancelled a {held.status.value} call")
                held.status = RequestStatus.CANCELLED
                held.actions.append("request.cancelled")
        self.grants.append(self.world.new_grant())

    @precondition(lambda self: bool(self.requests))
    @rule(minutes=st.integers(1, 16), sweep=st.booleans(), restart=st.integers(0, 2))
    def time_passes(self, minutes: int, sweep: bool, restart: int) -> None:
        """The clock moves; the sweeper may not have run yet (a decision past the deadline is refused anyway), and
        Airlock may restart meanwhile."""
        self.world.clock.now += minutes * 60
        if restart == 0:
            self._restart()
        if sweep:
            self._sweep()

    def _sweep(self) -> None:
        with unit_of_work(self.world.db) as session:
            deadlines.expire_due(session, self.world.counters, now=self.world.now)
            deadlines.due_reminders(session, now=self.world.now)
        now = self.world.clock.now
        for held in self.requests.values():
            if held.status is not RequestStatus.PENDING:
                continue
            if now >= held.deadline:
                held.status = RequestStatus.EXPIRED
                held.actions.append("request.expired")
                event("expired")
                continue
            timeout = TIMEOUT_SECONDS[held.tool]
            due = sum(1 for p in REMINDER_POINTS if now - (held.deadline - timeout) >= p * timeout)
            if due > self.reminders.get(held.id, 0):
                held.actions.append("request.reminder")
                self.reminders[held.id] = due

    def _restart(self) -> None:
        """A new process on the same database and Redis: engines, counters, policy and gateway built again."""
        self.world.restart()
        event("restart")

    # -- after every step ------------------------------------------------------------------------------------------

    @invariant()
    def states_match(self) -> None:
        statuses = self.world.statuses(list(self.requests))
        assert statuses == {r: h.status for r, h in self.requests.items()}

    @invariant()
    def each_approval_ran_at_most_once_and_nothing_else_ran(self) -> None:
        assert all(h.runs <= 1 for h in self.requests.values())
        assert [canonical(c) for c in self.world.upstream.calls] == [canonical(c) for c in self.calls_made]

    @invariant()
    def budgets_hold_what_ran_and_what_waits(self) -> None:
        for grant in self.grants:
            for tool in (IMAGE_TOOL, POST_TOOL):
                assert self.world.budget(grant, tool) == self._reserved(grant, tool), (grant.name, tool)

    @invariant()
    def every_transition_is_audited_and_the_chain_verifies(self) -> None:
        recorded = self.world.audit_actions(list(self.requests))
        for request_id, held in self.requests.items():
            assert [action for action, _ in recorded[request_id]] == held.actions, f"R-{request_id}"
        with reading(self.world.db) as session:
            report = verify(session)
        assert report.ok, report


SETTINGS = settings(
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_the_approval_contract_holds_for_any_sequence_of_moves(
    engine: Engine, hasher: TokenHasher, redis_prefix: str
) -> None:
    bound = type(
        "ApprovalContractHere",
        (ApprovalContract,),
        {"url": engine.url.render_as_string(hide_password=False), "redis_prefix": redis_prefix, "hasher": hasher},
    )
    ApprovalContract.moves.clear()
    run_state_machine_as_test(bound, settings=SETTINGS)
    assert set(ApprovalContract.moves) >= EXPECTED_MOVES, EXPECTED_MOVES - set(ApprovalContract.moves)
