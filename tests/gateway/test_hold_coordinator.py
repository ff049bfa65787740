"""The gateway's blocking wait for a held call (HoldCoordinator.wait_and_deliver) on its own, beside the end-to-end
tests in test_holds.py: a real database and event bus, an upstream that records what it runs, and a clock the test
moves, so that budgets and heartbeats pass without the test sleeping through them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import anyio
import mcp_types as types
import pytest
from anyio.abc import TaskGroup
from sqlalchemy import Engine

from service.approvals import service as approvals
from service.approvals.events import EventBus
from service.approvals.models import RequestStatus
from service.approvals.schemas import Approver, Verdict
from service.config import HoldConfig
from service.counters import MemoryCounters
from service.db.engine import reading, unit_of_work
from service.gateway.holds import HEARTBEAT_SECONDS, Caller, HoldCoordinator
from service.gateway.pool import UpstreamPool
from service.grants import service as grants
from service.policy import PolicyEngine
from service.policy_versions.holder import PolicyHolder
from service.security import TokenHasher
from tests.approvals.helpers import ANA, hold
from tests.clock import MovableClock
from tests.policy.helpers import engine_for, fixture

pytestmark = pytest.mark.anyio

BUDGET = 60.0


class RecordingUpstream:
    """The upstream pool as the coordinator sees it: every call it was asked to run."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def get(self, upstream: str) -> RecordingUpstream:
        return self

    async def call_tool(self, name: str, arguments: Mapping[str, Any], progress: object = None) -> types.CallToolResult:
        self.calls.append((name, dict(arguments)))
        return types.CallToolResult(content=[types.TextContent(type="text", text=f"ran {name}")])


class FixedPolicy:
    version_id = None

    def __init__(self, engine: PolicyEngine) -> None:
        self.engine = engine

    def current(self) -> PolicyEngine:
        return self.engine


@dataclass
class Setting:
    db: Engine
    bus: EventBus
    clock: MovableClock
    upstream: RecordingUpstream
    holds: HoldCoordinator
    request_id: int
    caller: Caller
    progress: list[tuple[float, str | None]] = field(default_factory=list)
    answer: types.CallToolResult | None = None

    async def wait_in(self, tasks: TaskGroup, budget: float = BUDGET) -> None:
        """Start the blocking wait, and return once it is waiting for news of its request."""

        async def wait() -> None:
            self.answer = await self.holds.wait_and_deliver(self.caller, self.request_id, budget)

        tasks.start_soon(wait)
        await self.waiting()

    async def waiting(self) -> None:
        with anyio.fail_after(10):
            while self.request_id not in self.bus.waiting():
                await anyio.sleep(0.01)

    async def answered(self) -> types.CallToolResult:
        with anyio.fail_after(10):
            while self.answer is None:
                await anyio.sleep(0.01)
        return self.answer

    def decide(self, approver: Approver, verdict: Verdict, **kwargs: Any) -> None:
        """A decision taken in this process: the waiting call hears of it through the bus."""
        with unit_of_work(self.db) as session:
            _request, events = approvals.apply_verdict(session, self.request_id, approver, verdict, **kwargs)
        self.bus.publish(events)

    def status(self) -> RequestStatus:
        with reading(self.db) as session:
            return approvals.get(session, self.request_id).status


@pytest.fixture
async def setting(engine: Engine, hasher: TokenHasher) -> AsyncIterator[Setting]:
    counters = MemoryCounters()
    policy = engine_for(fixture("airlock-demo.yaml"), counters=counters)
    request_id = hold(engine, hasher, policy)
    with reading(engine) as session:
        grant = grants.authenticated_by_id(session, 1)
    assert grant is not None
    bus, clock, upstream = EventBus(), MovableClock(), RecordingUpstream()
    holds = HoldCoordinator(
        engine,
        bus,
        cast(UpstreamPool, upstream),
        cast(PolicyHolder, FixedPolicy(policy)),
        HoldConfig(),
        clock=clock,
    )
    built = Setting(engine, bus, clock, upstream, holds, request_id, Caller(grant, None, None, None))

    async def record(progress: float, total: float | None, message: str | None) -> None:
        built.progress.append((progress, message))

    built.caller = Caller(grant, None, None, record)
    yield built
    counters.close()


async def test_an_approval_heard_on_the_bus_runs_the_call_once_and_answers_with_its_result(setting: Setting) -> None:
    async with anyio.create_task_group() as tasks:
        await setting.wait_in(tasks)
        assert setting.upstream.calls == []
        setting.decide(ANA, Verdict.APPROVE)
        answer = await setting.answered()
    assert answer.content == [types.TextContent(type="text", text="ran generate_image")]
    assert [name for name, _ in setting.upstream.calls] == ["generate_image"]
    assert setting.status() is RequestStatus.SUCCEEDED


async def test_a_rejection_answers_with_the_reason_and_runs_nothing(setting: Setting) -> None:
    async with anyio.create_task_group() as tasks:
        await setting.wait_in(tasks)
        setting.decide(ANA, Verdict.REJECT, reason="too dear")
        answer = await setting.answered()
    assert answer.is_error and "[REJECTED] by ana: too dear" in str(answer.content)
    assert setting.upstream.calls == []


async def test_the_wait_ends_with_a_pending_answer_when_the_budget_runs_out_on_the_clock(setting: Setting) -> None:
    async with anyio.create_task_group() as tasks:
        await setting.wait_in(tasks)
        setting.clock.advance(BUDGET - 1)
        setting.bus.wake_all()  # something woke it a second early: it looks, and waits again
        await setting.waiting()
        assert setting.answer is None
        setting.clock.advance(1)
        setting.bus.wake_all()
        answer = await setting.answered()
    assert answer.structured_content is not None and answer.structured_content["status"] == "pending"
    assert setting.status() is RequestStatus.PENDING  # still decidable; the same call or the status tool picks it up


async def test_a_heartbeat_goes_out_at_once_then_every_heartbeat_interval(setting: Setting) -> None:
    async with anyio.create_task_group() as tasks:
        await setting.wait_in(tasks)
        assert [message for _, message in setting.progress] == [
            f"waiting for human approval, R-{setting.request_id}, 0m00s"
        ]
        setting.clock.advance(HEARTBEAT_SECONDS - 1)
        setting.bus.wake_all()
        await setting.waiting()
        assert len(setting.progress) == 1  # not due yet
        setting.clock.advance(1)
        setting.bus.wake_all()
        await setting.waiting()
        with anyio.fail_after(10):
            while len(setting.progress) < 2:
                await anyio.sleep(0.01)
        assert setting.progress[1] == (11.0, f"waiting for human approval, R-{setting.request_id}, 0m10s")
        tasks.cancel_scope.cancel()


async def test_draining_answers_a_waiting_call_with_its_pending_answer_at_once(setting: Setting) -> None:
    async with anyio.create_task_group() as tasks:
        await setting.wait_in(tasks)
        setting.holds.drain()
        answer = await setting.answered()
    assert answer.structured_content is not None and answer.structured_content["status"] == "pending"


async def test_a_caller_that_hangs_up_leaves_its_request_marked_and_still_decidable(setting: Setting) -> None:
    async with anyio.create_task_group() as tasks:
        await setting.wait_in(tasks)
        tasks.cancel_scope.cancel()
    with reading(setting.db) as session:
        request = approvals.get(session, setting.request_id)
    assert request.requester_gone and request.status is RequestStatus.PENDING
    assert setting.request_id not in setting.bus.waiting()
