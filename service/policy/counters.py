"""Rate-limit counters and budgets: reserve at admission, give back on failure.

The `limits` package was measured first (see docs/performance.md): in memory one hit costs about 5 µs, on Redis each
limit is its own round trip, its windows start at the first hit instead of UTC boundaries, and it cannot
give a hit back or reserve several counters all-or-nothing. A call under the demo policy needs two counters
reserved together and released together, so this module does that itself: a dict in one process, or one Lua
script per decision on Redis. Money is counted in integer micro-dollars, so budgets are exact.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import redis
from redis.exceptions import NoScriptError

from service.errors import Unavailable

# A released reservation must still find its key for a while after the window ends (a held call can be
# rejected long after it was counted); the key is dropped by Redis after this grace.
_EXPIRY_GRACE_SECONDS = 60


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

    def for_upstream_failure(self) -> list[ReservedItem]:
        return list(self.items)

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


class MemoryCounters:
    """Counters of one process. Several replicas need RedisCounters to share them."""

    def __init__(self) -> None:
        self._values: dict[str, list[int]] = {}  # key -> [value, expires_at]
        self._lock = threading.Lock()
        self._ops_since_sweep = 0

    def reserve(self, items: Sequence[CounterItem], now: float) -> ReserveResult:
        with self._lock:
            self._ops_since_sweep += 1
            if self._ops_since_sweep >= 10_000:
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
                    slot = [0, item.window_end + _EXPIRY_GRACE_SECONDS]
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


# KEYS: the counters. ARGV: per key, amount, limit (-1 for none) and expiry (unix ms), in that order.
_RESERVE_LUA = """
local n = #KEYS
for i = 1, n do
  local limit = tonumber(ARGV[(i - 1) * 3 + 2])
  if limit >= 0 then
    local current = tonumber(redis.call('GET', KEYS[i]) or '0')
    if current + tonumber(ARGV[(i - 1) * 3 + 1]) > limit then
      return {0, i - 1, current}
    end
  end
end
local out = {1}
for i = 1, n do
  local value = redis.call('INCRBY', KEYS[i], ARGV[(i - 1) * 3 + 1])
  if value == tonumber(ARGV[(i - 1) * 3 + 1]) then
    redis.call('PEXPIREAT', KEYS[i], ARGV[(i - 1) * 3 + 3])
  end
  out[i + 1] = value
end
return out
"""

# Never resurrect an expired key (it would live forever) and never go below zero.
_RELEASE_LUA = """
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    if redis.call('DECRBY', KEYS[i], ARGV[i]) < 0 then
      redis.call('SET', KEYS[i], 0, 'KEEPTTL')
    end
  end
end
return 1
"""


class RedisCounters:
    """Counters shared by every replica: one round trip per decision, atomic across all of a call's limits.

    Reservations go over a connection of their own rather than through the client's command path: the
    round trip itself is about 30 µs here, and redis-py's pooling, retry and instrumentation layers
    tripled it (measured with the policy benchmark), for a call made on every tool call.
    """

    def __init__(self, client: redis.Redis, prefix: str = "airlock:ctr:") -> None:
        self._client = client
        self._prefix = prefix
        # redis-py leaves its connection methods untyped; Any keeps mypy strict everywhere else.
        self._connection: Any = client.connection_pool.make_connection()
        self._lock = threading.Lock()
        self._scripts = {
            _RESERVE_LUA: hashlib.sha1(_RESERVE_LUA.encode()).hexdigest(),  # noqa: S324 - Redis names scripts by SHA-1
            _RELEASE_LUA: hashlib.sha1(_RELEASE_LUA.encode()).hexdigest(),  # noqa: S324
        }

    @classmethod
    def from_url(cls, url: str, timeout_seconds: float = 0.5, prefix: str = "airlock:ctr:") -> RedisCounters:
        client = redis.Redis.from_url(url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds)
        return cls(client, prefix)

    def _run(self, script: str, keys: Sequence[str], args: Sequence[int]) -> Any:
        connection = self._connection
        with self._lock:
            try:
                try:
                    connection.send_command("EVALSHA", self._scripts[script], len(keys), *keys, *args)
                    return connection.read_response()
                except NoScriptError:  # a restarted Redis has forgotten the script: send it once in full
                    connection.send_command("EVAL", script, len(keys), *keys, *args)
                    return connection.read_response()
            except redis.RedisError as exc:
                connection.disconnect()
                raise CounterStoreUnavailable(f"rate-limit counters unavailable: {exc}") from exc

    def reserve(self, items: Sequence[CounterItem], now: float) -> ReserveResult:
        if not items:
            return ReserveResult(True, ())
        keys = [self._prefix + item.key for item in items]
        args: list[int] = []
        for item in items:
            expire_ms = (item.window_end + _EXPIRY_GRACE_SECONDS) * 1000
            args += [item.amount, -1 if item.limit is None else item.limit, expire_ms]
        reply = self._run(_RESERVE_LUA, keys, args)
        if reply[0] == 1:
            return ReserveResult(True, tuple(int(v) for v in reply[1:]))
        return ReserveResult(False, (int(reply[2]),), int(reply[1]))

    def release(self, items: Sequence[ReservedItem]) -> None:
        if items:
            self._run(_RELEASE_LUA, [self._prefix + i.key for i in items], [i.amount for i in items])

    def peek(self, keys: Sequence[str], now: float) -> list[int]:
        if not keys:
            return []
        try:
            values = self._client.mget([self._prefix + k for k in keys])
        except redis.RedisError as exc:
            raise CounterStoreUnavailable(f"rate-limit counters unavailable: {exc}") from exc
        return [int(v) if v is not None else 0 for v in values]

    def close(self) -> None:
        self._connection.disconnect()
        self._client.close()


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
