"""Holding a call for a person's decision, as the agent experiences it (docs/architecture.md#hold-modes), for clients
that do not speak tasks: a blocking wait with progress heartbeats while the client is attached, then, just before the
client's patience runs out, a pending answer that `airlock_approval_status` (or the same call again) picks up.

A call held this way runs only when a caller is there to receive its result, at most once (the claim is one
conditional UPDATE), and only if the policy in force still allows it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import anyio
import mcp_types as types
from sqlalchemy import Engine

from service.approvals import service as approvals
from service.approvals.events import EventBus, Waiter
from service.approvals.models import RequestStatus, ToolCallRequest
from service.approvals.schemas import ApprovalEvent
from service.approvals.view import declared_secrets
from service.arguments import parse_request_id
from service.clock import SYSTEM_CLOCK, Clock
from service.config import HoldConfig
from service.counters import DryRunCounters
from service.db.engine import reading, unit_of_work
from service.errors import Unavailable
from service.gateway import answers
from service.gateway.client_waits import client_budget, status_wait_seconds
from service.gateway.pool import UpstreamPool
from service.gateway.upstreams import ProgressRelay, UpstreamUnavailable
from service.grants import service as grants
from service.grants.schemas import AuthenticatedGrant
from service.policy import Decision, GiveBack, Outcome, PolicyEngine, Reservation, ToolCall
from service.policy_versions.holder import PolicyHolder

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10.0
# On SQLite, decisions taken in another process (the CLI) are found by one query over every waiting request this
# often; on PostgreSQL, replicas hear them at once (service/replicas.py). In-process decisions wake the waiter at
# once through the event bus.
CROSS_PROCESS_CHECK_SECONDS = 1.0
_UNSETTLED = (RequestStatus.PENDING, RequestStatus.APPROVED, RequestStatus.EXECUTING)


@dataclass(frozen=True)
class HeldTask:
    """A held call answered as a task (either era): the request it is, persisted before the agent hears of it."""

    request: ToolCallRequest


@dataclass
class _Wait:
    """One blocking wait's bounds, on the coordinator's monotonic clock."""

    started: float
    deadline: float
    next_heartbeat: float  # the first one goes out at once

    @classmethod
    def starting(cls, now: float, budget: float) -> _Wait:
        return cls(started=now, deadline=now + budget, next_heartbeat=now)

    def wake_at(self, caller: Caller) -> float:
        """When to look again without news: at the deadline, or at the next heartbeat for a caller that takes them."""
        return min(self.deadline, self.next_heartbeat) if caller.progress is not None else self.deadline


@dataclass(frozen=True)
class _Look:
    """What the last look for decisions in other processes saw: the audit chain's head, and whom it checked."""

    mark: int | None
    checked: set[int]


def _always() -> bool:
    return True


@dataclass(frozen=True)
class Caller:
    grant: AuthenticatedGrant
    session_id: str | None
    client_name: str | None
    progress: ProgressRelay | None
    present: Callable[[], bool] = _always
    """Whether the agent is still there to receive the answer (False once it hung up or cancelled)."""


class HoldCoordinator:
    def __init__(
        self,
        db: Engine,
        bus: EventBus,
        pool: UpstreamPool,
        policy: PolicyHolder,
        config: HoldConfig,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._db = db
        self._bus = bus
        self._pool = pool
        self._policy = policy
        self._config = config
        self._clock = clock
        self._draining = False
        self._look = _Look(None, set())

    def drain(self) -> None:
        """The process is shutting down: every call held here in blocking mode gets its pending answer now, while
        its connection is still open, rather than an error when the graceful-shutdown window closes. Its request
        stays pending in the database; the same call again, or airlock_approval_status, picks it up on another
        replica or after the restart. Calls held from now on are answered at once the same way. (A `tasks/result`
        waiting in `wait_settled` has no such answer to give; its task is durable and any replica answers for it.)"""
        self._draining = True
        self._bus.wake_all()

    async def hold(
        self,
        caller: Caller,
        name: str,
        upstream: str,
        upstream_tool: str,
        arguments: dict[str, Any],
        decision: Decision,
        *,
        as_task: bool = False,
    ) -> types.CallToolResult | HeldTask:
        """Open (or attach to) the request for this call; then wait for it as long as the client will, or, for a
        client that speaks tasks, answer at once with the task."""
        engine = self._policy.current()
        existing = await anyio.to_thread.run_sync(self._find_open, caller.grant.id, name, arguments)
        if existing is not None:
            # The same call again attaches to the open request: it is not a second request, nor counted twice.
            engine.release(decision.reservation, GiveBack.NOT_COUNTED)
            request_id = existing
            if as_task:  # a task is answered by the task runner, so the request it attached to becomes one
                await anyio.to_thread.run_sync(self._as_task, existing)
        else:
            opened = await anyio.to_thread.run_sync(
                self._open,
                caller,
                name,
                upstream,
                upstream_tool,
                arguments,
                decision,
                "task" if as_task else "blocking",
            )
            if opened is None:  # the grant was revoked while this call was on its way: nothing is queued
                engine.release(decision.reservation, GiveBack.RAN_NOTHING)
                return answers.grant_revoked()
            request_id = opened
        if as_task:
            request = await anyio.to_thread.run_sync(self._load, request_id)
            assert request is not None
            return HeldTask(request)
        return await self.wait_and_deliver(caller, request_id, client_budget(self._config, caller.client_name))

    async def status(self, caller: Caller, arguments: Mapping[str, Any]) -> types.CallToolResult:
        """The gateway's own tool: no policy, bound to the grant that made the request, its own wait bound."""
        if arguments.get("request_id") is None:
            return answers.recent_requests(await anyio.to_thread.run_sync(self._recent, caller.grant.id))
        request_id = parse_request_id(arguments.get("request_id"))
        if request_id is None:
            return answers.error_result("[NOT FOUND] request_id must look like R-123.")
        wait_seconds = status_wait_seconds(arguments, client_budget(self._config, caller.client_name))
        request = await anyio.to_thread.run_sync(self._load, request_id)
        if request is None or request.grant_id != caller.grant.id:
            return answers.error_result(f"[NOT FOUND] No request R-{request_id} for this agent.")
        return await self.wait_and_deliver(caller, request_id, wait_seconds)

    async def replayable(self, grant_id: int, name: str, arguments: Mapping[str, Any]) -> ToolCallRequest | None:
        """The held call whose stored result answers this same call again (hold.replay_window), if any."""
        window = self._config.replay_window
        if not window:
            return None
        return await anyio.to_thread.run_sync(self._replayable, grant_id, name, arguments, window)

    async def watch_other_processes(self) -> None:
        """Wake the calls whose request was decided elsewhere, looking once a second."""
        while True:
            await anyio.sleep(CROSS_PROCESS_CHECK_SECONDS)
            await self.look_for_outside_decisions()

    async def look_for_outside_decisions(self) -> list[int]:
        """One look for decisions taken in another process: wakes the waiting calls whose request was decided and
        returns their ids. One query for all of them, and only for the newly waiting ones while the database has
        not changed since the last look."""
        waiting = self._bus.waiting()
        if not waiting:
            return []
        try:
            mark, decided = await anyio.to_thread.run_sync(
                self._decided_since, self._look.mark, self._look.checked, waiting
            )
        except Unavailable:
            return []
        self._look = _Look(mark, set(waiting))
        self._bus.publish(ApprovalEvent("changed", request_id, "") for request_id in decided)
        return decided

    def _decided_since(self, mark: int | None, checked: set[int], waiting: list[int]) -> tuple[int, list[int]]:
        """Thousands of held calls made this query the whole idle cost of holding them. Each decision appends to the
        audit chain in its own transaction, so while the chain's head stands still, no request that the last look
        checked can have been decided since. The head is read before the query: a decision committed after that
        read moves it for the next look. Requests that started waiting since the last look are always checked (a
        decision may have come between the last look's read and their wait)."""
        with reading(self._db) as session:
            now_mark = approvals.change_mark(session)
            ask = waiting if now_mark != mark else [r for r in waiting if r not in checked]
            return now_mark, approvals.decided_among(session, ask) if ask else []

    async def wait_and_deliver(self, caller: Caller, request_id: int, budget: float) -> types.CallToolResult:
        """The request's answer once it is decided (running it if approved), or its pending answer when the budget
        runs out or the process drains. Progress heartbeats go out meanwhile to a caller that takes them."""
        wait = _Wait.starting(self._clock.monotonic(), budget)
        heard: ToolCallRequest | None = None
        try:
            while True:
                listening = self._bus.listen(request_id)
                try:
                    from_event = heard is not None
                    request = heard or await self._read(request_id)
                    heard = None
                    finished = await self._settle(caller, request)
                    if finished is not None:
                        return finished
                    if from_event:
                        continue  # the event's row only saves a read; before waiting again, read what is current
                    now = self._clock.monotonic()
                    if now >= wait.deadline or self._draining:
                        return answers.pending(request)
                    public_id = request.public_id
                    del request  # a held call keeps no row while it waits: memory per held call is the budget
                    await self._heartbeat(caller, public_id, wait, now)
                    heard = await self._next_event(listening, wait.wake_at(caller) - now)
                finally:
                    self._bus.forget(request_id, listening)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._requester_gone, request_id)
            raise

    async def _read(self, request_id: int) -> ToolCallRequest:
        request = await anyio.to_thread.run_sync(self._load, request_id)
        assert request is not None
        return request

    @staticmethod
    async def _heartbeat(caller: Caller, public_id: str, wait: _Wait, now: float) -> None:
        """Tell a caller that takes progress that its call still waits, every HEARTBEAT_SECONDS from the start."""
        if caller.progress is None or now < wait.next_heartbeat:
            return
        wait.next_heartbeat = now + HEARTBEAT_SECONDS
        waited = int(now - wait.started)
        await caller.progress(
            float(waited + 1), None, f"waiting for human approval, {public_id}, {waited // 60}m{waited % 60:02d}s"
        )

    @staticmethod
    async def _next_event(listening: Waiter, seconds: float) -> ToolCallRequest | None:
        """The row an event about the request carried, or None when it carried none or `seconds` passed first."""
        with anyio.move_on_after(seconds):
            await listening.wait()
        return listening.heard.snapshot if listening.heard is not None else None

    async def wait_settled(self, request_id: int) -> types.CallToolResult:
        """Wait, without running anything, until a task-mode request reaches its final state (the task runner
        runs approved ones), then its result: what `tasks/result` answers."""
        while True:
            listening = self._bus.listen(request_id)
            try:
                request = await anyio.to_thread.run_sync(self._load, request_id)
                assert request is not None
                if request.status not in _UNSETTLED:
                    result = await self.settled_result(request)
                    assert result is not None
                    return result
                # Events wake us at once; the timeout only covers a decision or run in another process.
                with anyio.move_on_after(CROSS_PROCESS_CHECK_SECONDS * 5):
                    await listening.wait()
            finally:
                self._bus.forget(request_id, listening)

    async def _settle(self, caller: Caller, request: ToolCallRequest) -> types.CallToolResult | None:
        """The answer for a request in this state, or None while it is still undecided."""
        status = request.status
        if status is RequestStatus.PENDING or status is RequestStatus.EXECUTING:
            return None  # undecided, or another caller is running it (its result arrives as an event)
        if status is RequestStatus.APPROVED:
            return await self.run_approved(caller, request, delivered=True)
        return await self.settled_result(request)

    async def settled_result(self, request: ToolCallRequest) -> types.CallToolResult | None:
        """The result a decided, finished request answers with (a stored result is marked delivered)."""
        status = request.status
        if status is RequestStatus.REJECTED:
            return answers.rejected(request)
        if status is RequestStatus.EXPIRED:
            return answers.expired(request)
        if status is RequestStatus.CANCELLED:
            return answers.cancelled(request)
        if status is RequestStatus.SUCCEEDED or status is RequestStatus.FAILED:
            if request.result is None:
                return answers.expired(request)
            await anyio.to_thread.run_sync(self._delivered, request.id)
            return types.CallToolResult.model_validate(request.result)
        return None

    async def withdraw(self, request_id: int, reason: str) -> None:
        def run() -> list[ApprovalEvent]:
            with unit_of_work(self._db) as session:
                return approvals.withdraw(session, request_id, reason=reason, counters=self._policy.current().counters)

        self._bus.publish(await anyio.to_thread.run_sync(run))

    async def run_approved(
        self, caller: Caller, request: ToolCallRequest, *, delivered: bool
    ) -> types.CallToolResult | None:
        """Claim and run an approved request; None when another caller claimed it first.

        From the claim to the stored result nothing may interrupt: an agent that hangs up mid-call must not leave
        the request `executing` for ever with its budget neither spent nor given back. The call finishes (within
        the upstream timeout), its result is stored, and it counts as delivered only if the agent is still there;
        otherwise the same call or airlock_approval_status picks it up later."""
        assert request.id is not None
        with anyio.CancelScope(shield=True):
            if not await anyio.to_thread.run_sync(self._claim, request.id):
                return None  # someone else claimed it first
            result, succeeded, give_back = await self._run_claimed(caller, request)
            delivered = delivered and caller.present()
            await anyio.to_thread.run_sync(self._finish, request, succeeded, result, delivered)
            if give_back is not None:  # only once the request's end is committed
                self._policy.current().release(_reservation(request), give_back)
            status = RequestStatus.SUCCEEDED if succeeded else RequestStatus.FAILED
            self._bus.publish([ApprovalEvent("executed", request.id, status.value)])
        return result

    async def _run_claimed(
        self, caller: Caller, request: ToolCallRequest
    ) -> tuple[types.CallToolResult, bool, GiveBack | None]:
        """The result, whether it succeeded, and what of its reservation comes back once its end is committed."""
        arguments = request.edited_arguments if request.edited_arguments is not None else request.arguments
        engine = self._policy.current()
        recheck = self._recheck(engine, caller, request, arguments)
        if recheck is not None:
            return answers.denied(recheck), False, GiveBack.RAN_NOTHING  # as a rejection: the budget
        try:
            result = await self._pool.get(request.upstream).call_tool(
                request.upstream_tool or request.tool, arguments, progress=_while_present(caller)
            )
        except UpstreamUnavailable as exc:
            return answers.upstream_failed(str(exc)), False, GiveBack.NOT_COUNTED
        return result, True, None

    def _recheck(
        self, engine: PolicyEngine, caller: Caller, request: ToolCallRequest, arguments: dict[str, Any]
    ) -> Decision | None:
        """At release the current deny rules apply again: an approval never lets through what the policy now denies.
        Counters are only read here (the call was counted when it was held)."""
        checker = PolicyEngine(engine.policy, DryRunCounters(engine.counters), clock=engine.clock)
        call = ToolCall(
            caller.grant.info, request.tool, arguments, upstream=request.upstream, session_id=caller.session_id
        )
        decision = checker.evaluate(call)
        return decision if decision.outcome is Outcome.DENY else None

    # -- database steps, run in a worker thread -----------------------------------------------------------

    def _find_open(self, grant_id: int, tool: str, arguments: dict[str, Any]) -> int | None:
        with reading(self._db) as session:
            found = approvals.find_open(session, grant_id, tool, arguments)
            return found.id if found is not None else None

    def _replayable(
        self, grant_id: int, name: str, arguments: Mapping[str, Any], window: timedelta
    ) -> ToolCallRequest | None:
        with reading(self._db) as session:
            return approvals.find_replayable(session, grant_id, name, arguments, window=window, now=self._clock.now())

    def _recent(self, grant_id: int) -> list[ToolCallRequest]:
        with reading(self._db) as session:
            return approvals.recent_of(session, grant_id)

    def _as_task(self, request_id: int) -> None:
        with unit_of_work(self._db) as session:
            approvals.hold_as_task(session, request_id)

    def _open(
        self,
        caller: Caller,
        name: str,
        upstream: str,
        upstream_tool: str,
        arguments: dict[str, Any],
        decision: Decision,
        mode: str,
    ) -> int | None:
        definition = self._pool.catalog.tool(name)
        secrets = declared_secrets(
            definition.input_schema if definition is not None else None,
            self._policy.current().policy.redact_keys_for(name),
        )
        with unit_of_work(self._db) as session:
            if not grants.hold_live(session, caller.grant.id):
                return None
            request, events = approvals.open_request(
                session,
                grant_id=caller.grant.id,
                grant_name=caller.grant.info.name,
                grant_owner=caller.grant.info.owner,
                upstream=upstream,
                tool=name,
                upstream_tool=upstream_tool,
                arguments=arguments,
                decision=decision,
                policy_version_id=self._policy.version_id,
                hold_mode=mode,
                secrets=secrets,
                now=self._clock.now(),  # its deadline and reminders, on the clock the sweeper reads
            )
        assert request.id is not None
        anyio.from_thread.run_sync(self._bus.publish, events)
        return request.id

    def _load(self, request_id: int) -> ToolCallRequest | None:
        with reading(self._db) as session:
            return approvals.find(session, request_id)

    def _claim(self, request_id: int) -> bool:
        with unit_of_work(self._db) as session:
            return approvals.claim(session, request_id)

    def _finish(self, request: ToolCallRequest, succeeded: bool, result: types.CallToolResult, delivered: bool) -> None:
        assert request.id is not None
        with unit_of_work(self._db) as session:
            approvals.finish(
                session,
                request.id,
                succeeded=succeeded,
                result=result.model_dump(mode="json", by_alias=True, exclude_none=True),
                summary=answers.summarise(result.model_dump(mode="json", by_alias=True, exclude_none=True)),
                retention=self._config.result_retention,
                delivered=delivered,
                now=self._clock.now(),  # a delivery starts the replay window (hold.replay_window)
            )

    def _delivered(self, request_id: int | None) -> None:
        if request_id is None:
            return
        with unit_of_work(self._db) as session:
            approvals.mark_delivered(session, request_id, self._clock.now())

    def _requester_gone(self, request_id: int) -> None:
        try:
            with unit_of_work(self._db) as session:
                events = approvals.requester_gone(
                    session,
                    request_id,
                    cancel=self._config.on_requester_gone == "cancel",
                    counters=self._policy.current().counters,
                )
            anyio.from_thread.run_sync(self._bus.publish, events)
        except Unavailable:
            log.warning("could not mark R-%s as requester-gone: database unavailable", request_id)


def _while_present(caller: Caller) -> ProgressRelay | None:
    """Progress for the agent while it is there; a relay that fails (it hung up) never fails the call."""
    relay = caller.progress
    if relay is None:
        return None

    async def tolerant(progress: float, total: float | None, message: str | None) -> None:
        if caller.present():
            try:
                await relay(progress, total, message)
            except Exception:  # the agent's stream is gone; the call goes on and its result is stored
                log.debug("progress not delivered", exc_info=True)

    return tolerant


def _reservation(request: ToolCallRequest) -> Reservation | None:
    return Reservation.from_json(request.reservation) if request.reservation else None
