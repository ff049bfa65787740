"""Fixed counting windows.

A named window (second, minute, hour, day) is aligned to UTC calendar boundaries, which is what PolicyLayer
and Intercept mean by it. A duration such as "90s" is aligned to multiples of itself since the Unix epoch.
Both come down to the same arithmetic because the epoch is a UTC midnight and POSIX time has no leap seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.durations import parse_duration

NAMED_WINDOWS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True, slots=True)
class Window:
    seconds: int
    label: str

    def start(self, now: float) -> int:
        return int(now // self.seconds) * self.seconds

    def end(self, now: float) -> int:
        return self.start(now) + self.seconds


def parse_window(value: object) -> Window:
    """Raises ValueError naming what is accepted."""
    if isinstance(value, str) and value in NAMED_WINDOWS:
        return Window(NAMED_WINDOWS[value], value)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("unknown window; use second, minute, hour, day or a duration such as 90s")
    try:
        seconds = parse_duration(value).total_seconds()
    except ValueError:
        raise ValueError(f"unknown window {value!r}; use second, minute, hour, day or a duration such as 90s") from None
    if seconds != int(seconds):
        raise ValueError("a window must be a whole number of seconds")
    return Window(int(seconds), str(value))
