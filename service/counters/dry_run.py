"""A view of a counter store that reads and never reserves."""

from __future__ import annotations

from collections.abc import Sequence

from service.policy.counters import CounterItem, CounterStore, ReservedItem, ReserveResult


class DryRunCounters:
    """Reads real counters and reserves nothing: for `policy simulate` and the rules page."""

    def __init__(self, inner: CounterStore) -> None:
        self._inner = inner

    def reserve(self, items: Sequence[CounterItem], now: float) -> ReserveResult:
        current = self._inner.peek([i.key for i in items], now)
        for index, (item, value) in enumerate(zip(items, current, strict=True)):
            if item.limit is not None and value + item.amount > item.limit:
                return ReserveResult(False, (value,), index)
        return ReserveResult(True, tuple(v + i.amount for v, i in zip(current, items, strict=True)))

    def release(self, items: Sequence[ReservedItem]) -> None:
        return None

    def peek(self, keys: Sequence[str], now: float) -> list[int]:
        return self._inner.peek(keys, now)

    def close(self) -> None:
        """The store it reads belongs to someone else, who closes it."""
