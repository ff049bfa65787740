"""Expiry and reminders from the persisted deadlines, never from timers in memory: a restart loses nothing.

Each sweep reads the time from the injected clock (service/clock.py). The pause between sweeps stays a real one: a
test that moves the clock past a deadline sees the sweep that follows within one period.
"""

from __future__ import annotations

import logging

import anyio
from sqlalchemy import Engine

from service.approvals import deadlines
from service.approvals.events import EventBus
from service.approvals.schemas import ApprovalEvent
from service.clock import SYSTEM_CLOCK, Clock
from service.db.engine import reading, unit_of_work
from service.errors import AirlockError
from service.policy import CounterStore

log = logging.getLogger(__name__)

SWEEP_SECONDS = 1.0


def sweep_once(db: Engine, counters: CounterStore | None, clock: Clock = SYSTEM_CLOCK) -> list[ApprovalEvent]:
    now = clock.now()
    with reading(db) as session:
        if not deadlines.sweep_due(session, now):
            return []  # the usual case: no write lock taken, no rows loaded
    with unit_of_work(db) as session:
        events = deadlines.expire_due(session, counters, now)
        events += deadlines.due_reminders(session, now)
    return events


async def sweep_forever(
    db: Engine,
    bus: EventBus,
    counters: CounterStore | None,
    *,
    clock: Clock = SYSTEM_CLOCK,
    interval_seconds: float = SWEEP_SECONDS,
) -> None:
    while True:
        try:
            events = await anyio.to_thread.run_sync(sweep_once, db, counters, clock)
        except AirlockError as exc:
            log.warning("approval sweep failed, retrying: %s", exc.message)
        else:
            if events:
                bus.publish(events)
        await anyio.sleep(interval_seconds)
