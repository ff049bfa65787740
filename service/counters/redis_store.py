"""Counters shared by every replica, in Redis: one Lua script per decision, atomic across all of a call's limits."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from typing import Any

import redis
from redis.exceptions import NoScriptError

from service.counters.expiry import EXPIRY_GRACE_SECONDS
from service.policy.counters import CounterItem, CounterStoreUnavailable, ReservedItem, ReserveResult

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

    Reservations go over one connection of their own, under a lock, rather than through the client's pool:
    `bench/counters_bench.py` measures both, and the pool's checkout, liveness poll and retry layers add about
    35-70 µs to a round trip of about 45 µs, for a call made on every tool call; from four threads the lock still
    moves more reservations per second. Redis keeps the windows' expiry on its own clock (PEXPIREAT); the engine's
    clock only names the window.
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

    def reserve(self, items: Sequence[CounterItem], now: float) -> ReserveResult:
        if not items:
            return ReserveResult(True, ())
        keys = [self._prefix + item.key for item in items]
        args: list[int] = []
        for item in items:
            expire_ms = (item.window_end + EXPIRY_GRACE_SECONDS) * 1000
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

    def _run(self, script: str, keys: Sequence[str], args: Sequence[int]) -> Any:
        with self._lock:
            try:
                try:
                    return self._call(script, keys, args)
                except redis.TimeoutError:
                    raise
                except redis.ConnectionError:
                    # The health check: a connection Redis closed while it sat idle (a restart, CLIENT KILL, an idle
                    # timeout) fails on first use, before the script ran; it is replaced and the script sent once
                    # more. A timeout is not retried: a script whose reply is late may have run.
                    self._connection.disconnect()
                    return self._call(script, keys, args)
            except redis.RedisError as exc:
                self._connection.disconnect()  # the next call connects afresh
                raise CounterStoreUnavailable(f"rate-limit counters unavailable: {exc}") from exc

    def _call(self, script: str, keys: Sequence[str], args: Sequence[int]) -> Any:
        connection = self._connection
        connection.send_command("EVALSHA", self._scripts[script], len(keys), *keys, *args)
        try:
            return connection.read_response()
        except NoScriptError:  # a restarted Redis has forgotten the script: send it once in full
            connection.send_command("EVAL", script, len(keys), *keys, *args)
            return connection.read_response()
