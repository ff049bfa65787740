"""The once-a-second look for decisions taken in another process (SQLite has no NOTIFY): it wakes the calls whose
request was decided, and it never misses a call that started waiting since the last look, though the audit chain's
head (which lets a look skip its query) stood still."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from service.approvals.events import EventBus
from service.config import HoldConfig
from service.gateway.holds import HoldCoordinator
from service.security import TokenHasher
from tests.approvals.helpers import ANA, decide, held

pytestmark = pytest.mark.anyio


def coordinator(engine: Engine, bus: EventBus) -> HoldCoordinator:
    nothing: Any = None  # the look reads the database only
    return HoldCoordinator(engine, bus, nothing, nothing, HoldConfig())


async def test_a_call_that_began_waiting_after_the_last_look_is_checked_though_the_mark_stood_still(
    engine: Engine, hasher: TokenHasher
) -> None:
    bus = EventBus()
    holds = coordinator(engine, bus)
    first, _ = held(engine, hasher, prompt="first")
    second, _ = held(engine, hasher, prompt="second")
    bus.listen(first)
    assert await holds.look_for_outside_decisions() == []
    decide(engine, second, ANA)  # by the CLI, in another process: no event here
    assert await holds.look_for_outside_decisions() == []  # the mark moved; nobody waits for `second` yet
    # `second` starts waiting now: the chain's head has not moved since the last look, yet it is checked.
    waiter = bus.listen(second)
    assert await holds.look_for_outside_decisions() == [second]
    assert waiter.heard is not None and waiter.heard.request_id == second


async def test_a_look_finds_a_decision_on_a_request_it_checked_before_once_the_mark_moved(
    engine: Engine, hasher: TokenHasher
) -> None:
    bus = EventBus()
    holds = coordinator(engine, bus)
    waiting, _ = held(engine, hasher)
    waiter = bus.listen(waiting)
    assert await holds.look_for_outside_decisions() == []
    assert await holds.look_for_outside_decisions() == []
    assert waiter.heard is None
    decide(engine, waiting, ANA)
    assert await holds.look_for_outside_decisions() == [waiting]
    assert waiter.heard is not None and waiter.heard.request_id == waiting


async def test_with_nobody_waiting_a_look_asks_nothing(engine: Engine, hasher: TokenHasher) -> None:
    holds = coordinator(engine, EventBus())
    request_id, _ = held(engine, hasher)
    decide(engine, request_id, ANA)
    assert await holds.look_for_outside_decisions() == []
