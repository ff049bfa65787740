"""Expiry and reminders from the persisted deadlines, never from timers in memory: a restart loses nothing."""

from __future__ import annotations

import logging

import anyio
from sqlalchemy import Engine

from service.approvals import deadlines
from service.approvals.events import EventBus
from service.approvals.schemas import ApprovalEvent
from service.db.engine import reading, unit_of_work
from service.errors import AirlockError
from service.policy import CounterStore

log = logging.getLogger(__name__)


def sweep_once(db: Engine, counters: CounterStore | None) -> list[ApprovalEvent]:
    with reading(db) as session:
        if not deadlines.sweep_due(session):
            return []  # the usual case: no write lock taken, no rows loaded
    with unit_of_work(db) as session:
        events = deadlines.expire_due(session, counters)
        events += deadlines.due_reminders(session)
    return events


async def sweep_forever(
    db: Engine, bus: EventBus, counters: CounterStore | None, interval_seconds: float = 1.0
) -> None:
    while True:
        try:
            events = await anyio.to_thread.run_sync(sweep_once, db, counters)
        except AirlockError as exc:
            log.warning("approval sweep failed, retrying: %s", exc.message)
        else:
            if events:
                bus.publish(events)
        await anyio.sleep(interval_seconds)
