"""Counters of one process, in a dict under a lock."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from service.counters.expiry import EXPIRY_GRACE_SECONDS
from service.policy.counters import CounterItem, ReservedItem, ReserveResult

_SWEEP_EVERY_OPS = 10_000


class MemoryCounters:
    """Counters of one process. Several replicas need RedisCounters to share them.

    It keeps no clock of its own: every call is told `now` by the engine, whose clock is injected, so a test moves
    time by moving that clock.
    """

    def __init__(self) -> None:
        self._values: dict[str, list[int]] = {}  # key -> [value, expires_at]
        self._lock = threading.Lock()
        self._ops_since_sweep = 0

    def reserve(self, items: Sequence[CounterItem], now: float) -> ReserveResult:
        with self._lock:
            self._ops_since_sweep += 1
            if self._ops_since_sweep >= _SWEEP_EVERY_OPS:
                self._sweep(now)
            values = self._values
            for index, item in enumerate(items):
                if item.limit is None:
                    continue
                slot = values.get(item.key)
                current = slot[0] if slot is not None and slot[1] > now else 0
                if current + item.amount > item.limit:
                    return ReserveResult(False, (current,), index)
            after = []
            for item in items:
                slot = values.get(item.key)
                if slot is None or slot[1] <= now:
                    slot = [0, item.window_end + EXPIRY_GRACE_SECONDS]
                    values[item.key] = slot
                slot[0] += item.amount
                after.append(slot[0])
            return ReserveResult(True, tuple(after))

    def release(self, items: Sequence[ReservedItem]) -> None:
        with self._lock:
            for item in items:
                slot = self._values.get(item.key)
                if slot is not None:
                    slot[0] = max(0, slot[0] - item.amount)

    def peek(self, keys: Sequence[str], now: float) -> list[int]:
        with self._lock:
            out = []
            for key in keys:
                slot = self._values.get(key)
                out.append(slot[0] if slot is not None and slot[1] > now else 0)
            return out

    def close(self) -> None:
        return None

    def _sweep(self, now: float) -> None:
        self._ops_since_sweep = 0
        for key in [k for k, slot in self._values.items() if slot[1] <= now]:
            del self._values[key]
