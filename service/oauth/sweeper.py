"""Expired and revoked OAuth rows are deleted, so a client cannot grow the tables by starting authorizations it never
finishes or by letting tokens lapse (docs/security.md#oauth-for-agents). What can still work is never touched: a pending
request or an unused code before its expiry, a live token, a spent refresh token before its expiry (kept so that
its reuse is caught), and an authorization with any token left.

A pass runs every `SWEEP_EVERY` of the app's clock (service/clock.py); the loop looks at the clock once a second, as
the approvals sweeper does (service/approvals/sweeper.py), so a test that moves the clock sees the pass that
follows within a second.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import anyio
from sqlalchemy import Engine

from service.approvals.sweeper import SWEEP_SECONDS
from service.clock import SYSTEM_CLOCK, Clock
from service.db.engine import reading, unit_of_work
from service.errors import AirlockError
from service.oauth.repository import OAuthRepository

log = logging.getLogger(__name__)

SWEEP_EVERY = timedelta(minutes=1)


def sweep_once(db: Engine, clock: Clock = SYSTEM_CLOCK) -> tuple[int, int]:
    """(tokens, authorizations) deleted."""
    now = clock.now()
    with reading(db) as session:
        if not OAuthRepository(session).any_dead(now):
            return 0, 0  # the usual case: no write lock taken
    with unit_of_work(db) as session:
        return OAuthRepository(session).delete_dead(now)


async def sweep_forever(
    db: Engine, *, clock: Clock = SYSTEM_CLOCK, every: timedelta = SWEEP_EVERY, interval_seconds: float = SWEEP_SECONDS
) -> None:
    due = clock.time()
    while True:
        if clock.time() >= due:
            try:
                tokens, authorizations = await anyio.to_thread.run_sync(sweep_once, db, clock)
            except AirlockError as exc:
                log.warning("OAuth sweep failed, retrying: %s", exc.message)
            else:
                if tokens or authorizations:
                    log.info("OAuth sweep: %d token(s), %d authorization(s) deleted", tokens, authorizations)
            due = clock.time() + every.total_seconds()
        await anyio.sleep(interval_seconds)
