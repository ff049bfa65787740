"""A clock the test moves by hand (service/clock.py), so windows and deadlines pass without sleeping."""

from __future__ import annotations

import time
from datetime import UTC, datetime

# A fixed, ordinary moment: 2026-11-24T09:00:00Z.
START = 1795510800.0


class MovableClock:
    def __init__(self, at: float = START) -> None:
        self._wall = at
        self._monotonic = 1000.0

    @classmethod
    def from_now(cls) -> MovableClock:
        """Starting at the real time: for a whole gateway, whose database also holds rows stamped by the real one."""
        return cls(time.time())

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._wall, UTC)

    def time(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        self._wall += seconds
        self._monotonic += seconds
