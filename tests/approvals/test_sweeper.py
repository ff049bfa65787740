"""The sweeper (service/approvals/sweeper.py) on a clock the test moves: the reminders at 50% and 90% of the timeout
and the expiry come when the clock reaches them, not a second before, and the running loop reads the clock on every
pass."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import anyio
import pytest
from sqlalchemy import Engine

from service.approvals import service as approvals
from service.approvals.events import EventBus
from service.approvals.models import RequestStatus
from service.approvals.schemas import ApprovalEvent
from service.approvals.sweeper import sweep_forever, sweep_once
from service.counters import MemoryCounters
from service.db.engine import reading
from service.security import TokenHasher
from tests.approvals.helpers import hold
from tests.clock import MovableClock
from tests.policy.helpers import engine_for, fixture

TIMEOUT = timedelta(minutes=15).total_seconds()  # generate_image's in the demo policy


@dataclass
class Held:
    db: Engine
    counters: MemoryCounters
    clock: MovableClock
    request_id: int

    def status(self) -> RequestStatus:
        with reading(self.db) as session:
            return approvals.get(session, self.request_id).status

    def sweep(self) -> list[tuple[str, object]]:
        return [(e.kind, e.detail.get("percent")) for e in sweep_once(self.db, self.counters, self.clock)]


@pytest.fixture
def held(engine: Engine, hasher: TokenHasher) -> Iterator[Held]:
    """A held call, and a clock standing at the moment it was held."""
    counters = MemoryCounters()
    request_id = hold(engine, hasher, engine_for(fixture("airlock-demo.yaml"), counters=counters))
    with reading(engine) as session:
        created = approvals.get(session, request_id).created_at
    yield Held(engine, counters, MovableClock(created.timestamp()), request_id)
    counters.close()


def test_reminders_and_the_expiry_come_when_the_clock_reaches_them(held: Held) -> None:
    held.clock.advance(0.5 * TIMEOUT - 1)
    assert held.sweep() == []
    held.clock.advance(2)
    assert held.sweep() == [("reminder", 50)]
    assert held.sweep() == []  # sent once
    held.clock.advance(0.4 * TIMEOUT - 2)
    assert held.sweep() == []
    held.clock.advance(2)
    assert held.sweep() == [("reminder", 90)]
    held.clock.advance(0.1 * TIMEOUT - 2)
    assert held.sweep() == []
    assert held.status() is RequestStatus.PENDING
    held.clock.advance(2)
    assert held.sweep() == [("expired", None)]
    assert held.status() is RequestStatus.EXPIRED


@pytest.mark.anyio
async def test_the_running_sweeper_reads_the_clock_on_every_pass(held: Held) -> None:
    bus, heard = EventBus(), list[ApprovalEvent]()
    bus.subscribe(heard.append)

    async def hear(kind: str) -> None:
        with anyio.fail_after(10):
            while not any(event.kind == kind for event in heard):
                await anyio.sleep(0.01)

    async with anyio.create_task_group() as tasks:
        # A short real pause between passes: the test waits for the pass after each move of the clock.
        tasks.start_soon(lambda: sweep_forever(held.db, bus, held.counters, clock=held.clock, interval_seconds=0.01))
        held.clock.advance(0.5 * TIMEOUT + 1)
        await hear("reminder")
        assert held.status() is RequestStatus.PENDING  # the passes since saw no deadline
        held.clock.advance(0.5 * TIMEOUT)
        await hear("expired")
        tasks.cancel_scope.cancel()
    assert [(e.kind, e.request_id) for e in heard] == [("reminder", held.request_id), ("expired", held.request_id)]
    assert held.status() is RequestStatus.EXPIRED
