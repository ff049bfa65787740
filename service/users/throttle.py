"""Sign-in throttling: after repeated failed sign-ins for one username, or from one address, sign-in is refused for
a while, even with the right password, so that guessing a password takes years instead of hours.

Failures are counted in a moving window by the `limits` package: in this process's memory, or in Redis when Airlock
has one (replicas then share the counts). Only failures count, so people who sign in are never slowed down. A
username is counted whether or not such a user exists and the refusal reads the same either way, so the throttle
does not tell which usernames exist. A success clears its username's count, never its address's: one valid account
must not buy an address more guesses at the others.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter

from service.config import SignInConfig
from service.errors import Unavailable


class LoginThrottle:
    def __init__(self, storage: Storage, *, per_username: int, per_address: int, window: timedelta) -> None:
        self._storage = storage
        self._limiter = MovingWindowRateLimiter(storage)
        seconds = max(1, math.ceil(window.total_seconds()))
        self._username = RateLimitItemPerSecond(per_username, seconds, namespace="signin-username")
        self._address = RateLimitItemPerSecond(per_address, seconds, namespace="signin-address")

    @classmethod
    def build(cls, config: SignInConfig, *, redis_url: str | None, redis_prefix: str) -> LoginThrottle:
        storage: Storage = MemoryStorage()
        if redis_url:
            storage = RedisStorage(
                redis_url, key_prefix=redis_prefix, wrap_exceptions=True, socket_timeout=2, socket_connect_timeout=2
            )
        return cls(
            storage,
            per_username=config.failures_per_username,
            per_address=config.failures_per_address,
            window=config.window,
        )

    def retry_after(self, username: str, address: str) -> float | None:
        """Seconds until a sign-in for this username from this address may be tried, or None when it may be now."""
        waits = []
        with _failing_closed():
            for item, key in self._keys(username, address):
                if not self._limiter.test(item, key):
                    reset, _remaining = self._limiter.get_window_stats(item, key)
                    waits.append(max(1.0, reset - time.time()))
        return max(waits) if waits else None

    def failed(self, username: str, address: str) -> None:
        with _failing_closed():
            for item, key in self._keys(username, address):
                self._limiter.hit(item, key)

    def succeeded(self, username: str, address: str) -> None:
        item, key = self._keys(username, address)[0]
        with _failing_closed():
            self._limiter.clear(item, key)

    def close(self) -> None:
        if isinstance(self._storage, RedisStorage):
            self._storage.storage.close()

    def _keys(self, username: str, address: str) -> tuple[tuple[RateLimitItem, str], ...]:
        # A digest keeps the key short and plain whatever was typed into the username field.
        digest = hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return (self._username, digest), (self._address, address)


@contextmanager
def _failing_closed() -> Iterator[None]:
    """Without its counts the throttle cannot tell a guesser from a person, so sign-in fails closed."""
    try:
        yield
    except StorageError as exc:
        raise Unavailable(f"the sign-in throttle's store is unavailable: {exc.storage_error}") from exc
