"""The one clock services read when time decides what they do (STYLE.md rule 5: the clock is injected).

Production passes `SYSTEM_CLOCK`; a test passes a clock it moves by hand (tests/clock.py), so that a window, a
deadline or a keep-alive passes without the test sleeping through it.
"""

from __future__ import annotations

import time as _time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The wall time, in UTC (what is stored and shown)."""
        ...

    def time(self) -> float:
        """The wall time in seconds since the epoch (what windows shared with other processes are measured in)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (what in-process waits and deadlines are measured in)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    # The functions themselves, not methods that call them: a read on the per-call path costs what it did before
    # the clock was injected (docs/performance.md).
    time = staticmethod(_time.time)
    monotonic = staticmethod(_time.monotonic)


SYSTEM_CLOCK: Clock = SystemClock()
