"""A per-process cache of what a presented token stands for (a grant token's grant, an OAuth access token's grant),
so the per-call path does not hit the database on every request. One home for its rules: an answer is kept for
`ttl_seconds` of the clock; refusals are kept too, so a flood of bad tokens costs one lookup each per window; and a
full cache is emptied rather than grown, so such a flood cannot grow memory without bound. The services drop it
when a revocation commits (service/caches.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import anyio

from service.clock import SYSTEM_CLOCK, Clock

Answer = TypeVar("Answer")


class TokenLookups(Generic[Answer]):
    def __init__(self, clock: Clock = SYSTEM_CLOCK, ttl_seconds: float = 2.0, max_entries: int = 10_000) -> None:
        self._clock = clock
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        self._entries: dict[str, tuple[float, Answer]] = {}

    async def get(self, key: str, load: Callable[[], Answer]) -> Answer:
        """The answer kept for `key` (a token's hash), or `load()`'s, run in a worker thread and kept."""
        now = self._clock.monotonic()
        cached = self._entries.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        answer = await anyio.to_thread.run_sync(load)
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        self._entries[key] = (now + self._ttl, answer)
        return answer

    def clear(self) -> None:
        self._entries.clear()
