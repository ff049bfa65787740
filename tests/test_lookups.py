"""The token lookup cache's rules (service/lookups.py): an answer is kept for its window of the clock, refusals too,
and a full cache is emptied rather than grown."""

from __future__ import annotations

from functools import partial

import pytest

from service.lookups import TokenLookups
from tests.clock import MovableClock

pytestmark = pytest.mark.anyio


class Loader:
    def __init__(self) -> None:
        self.loads: list[str] = []

    def __call__(self, key: str) -> str | None:
        self.loads.append(key)
        return None if key.startswith("bad") else f"grant of {key}"


async def test_an_answer_is_kept_for_its_window_of_the_clock_and_then_looked_up_again() -> None:
    clock, loader = MovableClock.from_now(), Loader()
    lookups: TokenLookups[str | None] = TokenLookups(clock, ttl_seconds=2.0)
    assert await lookups.get("a", lambda: loader("a")) == "grant of a"
    clock.advance(1.9)
    assert await lookups.get("a", lambda: loader("a")) == "grant of a"
    assert loader.loads == ["a"]
    clock.advance(0.2)
    await lookups.get("a", lambda: loader("a"))
    assert loader.loads == ["a", "a"]


async def test_a_refusal_is_kept_too_and_clear_forgets_everything() -> None:
    clock, loader = MovableClock.from_now(), Loader()
    lookups: TokenLookups[str | None] = TokenLookups(clock)
    for _ in range(3):
        assert await lookups.get("bad-1", lambda: loader("bad-1")) is None
    assert loader.loads == ["bad-1"]
    lookups.clear()
    await lookups.get("bad-1", lambda: loader("bad-1"))
    assert loader.loads == ["bad-1", "bad-1"]


async def test_a_flood_of_tokens_empties_a_full_cache_instead_of_growing_it() -> None:
    clock, loader = MovableClock.from_now(), Loader()
    lookups: TokenLookups[str | None] = TokenLookups(clock, max_entries=3)
    for key in ("a", "bad-1", "bad-2"):
        await lookups.get(key, partial(loader, key))
    await lookups.get("bad-3", lambda: loader("bad-3"))  # the fourth empties the three before it
    await lookups.get("a", lambda: loader("a"))
    assert loader.loads == ["a", "bad-1", "bad-2", "bad-3", "a"]
