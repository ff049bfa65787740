"""What the engine asks of a counter store: reserve all of a call's counters at once, give them back on failure.

The stores themselves do I/O and live outside `policy/`, in `service.counters`. Money is counted in integer
micro-dollars, so budgets are exact. Why the `limits` package is not used: docs/performance.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from service.errors import Unavailable


class GiveBack(Enum):
    """Why a call gives back what it reserved, which says how much comes back."""

    NOT_COUNTED = "not_counted"
    """It does not count as made: its decision was not recorded, the upstream failed, or it joined an open request
    for the same call. Every counter comes back."""
    RAN_NOTHING = "ran_nothing"
    """It was made and stays counted, so a looping agent stays capped, but it ran nothing: rejected, refused on
    recheck, its grant revoked on the way, or answered by a replay. Its budgets come back."""


@dataclass(slots=True)
class ReservedItem:
    key: str
    amount: int
    budget: bool
    """Budgets are given back when a held call is rejected; count limits only when the upstream call fails."""


@dataclass(slots=True)
class CounterItem(ReservedItem):
    limit: int | None
    """None for a soft limit: always counted, never refused here (the policy escalates instead)."""
    window_end: int


@dataclass(slots=True)
class Reservation:
    items: tuple[ReservedItem, ...]

    def to_give_back(self, why: GiveBack) -> list[ReservedItem]:
        return list(self.items) if why is GiveBack.NOT_COUNTED else self.for_rejection()

    def for_rejection(self) -> list[ReservedItem]:
        """A rejected, expired or withdrawn call keeps its count (a looping agent stays capped)."""
        return [item for item in self.items if item.budget]

    def to_json(self) -> list[dict[str, Any]]:
        return [{"key": i.key, "amount": i.amount, "budget": i.budget} for i in self.items]

    @classmethod
    def from_json(cls, data: Sequence[dict[str, Any]]) -> Reservation:
        return cls(tuple(ReservedItem(str(d["key"]), int(d["amount"]), bool(d["budget"])) for d in data))


@dataclass(slots=True)
class ReserveResult:
    ok: bool
    values: tuple[int, ...]
    """After the reservation when ok; otherwise the value of the refused counter only."""
    refused: int | None = None
    """Index of the first item that would have passed its limit."""


class CounterStoreUnavailable(Unavailable):
    pass


class CounterStore(Protocol):
    def reserve(self, items: Sequence[CounterItem], now: float) -> ReserveResult:
        """All or nothing: either every item is counted, or none is."""
        ...

    def release(self, items: Sequence[ReservedItem]) -> None: ...

    def peek(self, keys: Sequence[str], now: float) -> list[int]: ...

    def close(self) -> None: ...
