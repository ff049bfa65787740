"""Durations as people write them in config and policy: "90s", "15m", "24h", "7d", "500ms", or seconds."""

from __future__ import annotations

import re
from datetime import timedelta

MAX_DURATION = timedelta(days=36500)
"""The longest duration anything takes (config, policy, "approve and remember"): a deadline a century away is already
"never", and a longer one overflows the dates computed from it."""
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """Read a duration; raises ValueError with a message fit to show a user."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError("expected a duration such as 90s, 15m, 24h or 7d")
    elif isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _PATTERN.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a duration; write it like 90s, 15m, 24h or 7d")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if not seconds > 0:  # also NaN
        raise ValueError("a duration must be positive")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"a duration is at most {format_duration(MAX_DURATION)}")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """The shortest exact spelling, so a parsed value reads back the way people write it."""
    total = delta.total_seconds()
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS[unit]
        if total >= size and total % size == 0:
            return f"{int(total // size)}{unit}"
    return f"{round(total * 1000)}ms"
