"""The once-a-second look for decisions taken in another process (SQLite has no NOTIFY): it skips its query while
the audit chain's head stands still, yet never misses a call that started waiting since the last look."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from service.approvals import service
from service.approvals.events import EventBus
from service.config import HoldConfig
from service.db.engine import unit_of_work
from service.gateway.holds import HoldCoordinator
from service.security import TokenHasher
from tests.approvals.helpers import ANA, decide, held


def coordinator(engine: Engine) -> HoldCoordinator:
    nothing: Any = None  # the look reads the database only
    return HoldCoordinator(engine, EventBus(), nothing, nothing, HoldConfig())


def mark_of(engine: Engine) -> int:
    with unit_of_work(engine) as session:
        return service.change_mark(session)


def test_a_call_that_began_waiting_after_the_last_look_is_checked_though_the_mark_stood_still(
    engine: Engine, hasher: TokenHasher
) -> None:
    holds = coordinator(engine)
    first, _ = held(engine, hasher, prompt="first")
    mark, decided = holds._decided_since(None, set(), [first])
    assert decided == []
    # Between that look's read of the mark and its query, a second call started waiting and the CLI decided it.
    # That look's list did not have it; the next look sees the same mark as the one it read after the decision.
    second, _ = held(engine, hasher, prompt="second")
    decide(engine, second, ANA)
    mark = mark_of(engine)
    assert holds._decided_since(mark, {first}, [first, second]) == (mark, [second])


def test_a_look_finds_a_decision_on_a_request_it_checked_before_once_the_mark_moved(
    engine: Engine, hasher: TokenHasher
) -> None:
    holds = coordinator(engine)
    waiting, _ = held(engine, hasher)
    mark, decided = holds._decided_since(None, set(), [waiting])
    assert decided == [] and holds._decided_since(mark, {waiting}, [waiting]) == (mark, [])
    decide(engine, waiting, ANA)
    later, decided = holds._decided_since(mark, {waiting}, [waiting])
    assert later > mark and decided == [waiting]
