"""Sign-in throttling: after repeated failed sign-ins for one username, or from one address, sign-in is refused for
a while, even with the right password, so that guessing a password takes years instead of hours.

Failures are counted in a moving window: in this process's memory (on the injected clock), or in Redis by the
`limits` package when Airlock has one (replicas then share the counts). Only failures count, so people who sign in
are never slowed down. A username is counted whether or not such a user exists and the refusal reads the same either
way, so the throttle does not tell which usernames exist. A success clears its username's count, never its
address's: one valid account must not buy an address more guesses at the others.

The moving window itself (`CountWindow`, built by `count_window`) is this module's public part: whatever else counts
requests per address in a window (OAuth's Dynamic Client Registration, service/oauth/registration.py) counts here.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Protocol

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from service.clock import SYSTEM_CLOCK, Clock
from service.config import SignInConfig
from service.errors import Unavailable


class LoginThrottle:
    def __init__(self, window: CountWindow, *, per_username: int, per_address: int, window_length: timedelta) -> None:
        self._window = window
        seconds = max(1, math.ceil(window_length.total_seconds()))
        self._username = RateLimitItemPerSecond(per_username, seconds, namespace="signin-username")
        self._address = RateLimitItemPerSecond(per_address, seconds, namespace="signin-address")

    @classmethod
    def build(
        cls, config: SignInConfig, *, redis_url: str | None, redis_prefix: str, clock: Clock = SYSTEM_CLOCK
    ) -> LoginThrottle:
        return cls(
            count_window(redis_url, redis_prefix, clock),
            per_username=config.failures_per_username,
            per_address=config.failures_per_address,
            window_length=config.window,
        )

    def retry_after(self, username: str, address: str) -> float | None:
        """Seconds until a sign-in for this username from this address may be tried, or None when it may be now."""
        waits = []
        with _failing_closed():
            for item, key in self._keys(username, address):
                wait = self._window.wait(item, key)
                if wait is not None:
                    waits.append(max(1.0, wait))
        return max(waits) if waits else None

    def failed(self, username: str, address: str) -> None:
        with _failing_closed():
            for item, key in self._keys(username, address):
                self._window.hit(item, key)

    def succeeded(self, username: str, address: str) -> None:
        item, key = self._keys(username, address)[0]
        with _failing_closed():
            self._window.clear(item, key)

    def close(self) -> None:
        self._window.close()

    def _keys(self, username: str, address: str) -> tuple[tuple[RateLimitItem, str], ...]:
        # A digest keeps the key short and plain whatever was typed into the username field.
        digest = hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return (self._username, digest), (self._address, address)


class CountWindow(Protocol):
    """Events (failed sign-ins, registrations) per key in a moving window of `item`'s length, at most `item.amount`
    of them counted."""

    def wait(self, item: RateLimitItem, key: str) -> float | None:
        """Seconds until the key is under its limit again; None when it is now."""
        ...

    def hit(self, item: RateLimitItem, key: str) -> None: ...

    def clear(self, item: RateLimitItem, key: str) -> None: ...

    def close(self) -> None: ...


class _MemoryWindow:
    """This process's memory, on the injected clock, with the semantics of the `limits` moving window used for
    Redis: a key stops counting at its limit, and is free again one window after the oldest failure it counts."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()  # sign-ins run in worker threads

    def wait(self, item: RateLimitItem, key: str) -> float | None:
        with self._lock:
            now = self._clock.time()
            failures = self._current(item, key, now)
            return failures[0] + item.get_expiry() - now if len(failures) >= item.amount else None

    def hit(self, item: RateLimitItem, key: str) -> None:
        with self._lock:
            now = self._clock.time()
            failures = self._current(item, key, now)
            if len(failures) < item.amount:
                failures.append(now)
                self._failures[item.key_for(key)] = failures

    def clear(self, item: RateLimitItem, key: str) -> None:
        with self._lock:
            self._failures.pop(item.key_for(key), None)

    def close(self) -> None:
        pass

    def _current(self, item: RateLimitItem, key: str, now: float) -> deque[float]:
        """The key's failures still inside the window; a key with none left is forgotten, so memory stays bounded."""
        failures = self._failures.pop(item.key_for(key), deque())
        while failures and failures[0] <= now - item.get_expiry():
            failures.popleft()
        if failures:
            self._failures[item.key_for(key)] = failures
        return failures


class _RedisWindow:
    """Redis, shared by replicas, through the `limits` package; Redis expires the counts on its own time, so tests
    of this store wait through a short real window."""

    def __init__(self, url: str, prefix: str, clock: Clock) -> None:
        self._storage = RedisStorage(
            url, key_prefix=prefix, wrap_exceptions=True, socket_timeout=2, socket_connect_timeout=2
        )
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._clock = clock

    def wait(self, item: RateLimitItem, key: str) -> float | None:
        if self._limiter.test(item, key):
            return None
        reset, _remaining = self._limiter.get_window_stats(item, key)
        return reset - self._clock.time()

    def hit(self, item: RateLimitItem, key: str) -> None:
        self._limiter.hit(item, key)

    def clear(self, item: RateLimitItem, key: str) -> None:
        self._limiter.clear(item, key)

    def close(self) -> None:
        self._storage.storage.close()


def count_window(redis_url: str | None, redis_prefix: str, clock: Clock = SYSTEM_CLOCK) -> CountWindow:
    """Redis when Airlock has one (replicas share the counts), else this process's memory on `clock`."""
    if redis_url:
        return _RedisWindow(redis_url, redis_prefix, clock)
    return _MemoryWindow(clock)


@contextmanager
def _failing_closed() -> Iterator[None]:
    """Without its counts the throttle cannot tell a guesser from a person, so sign-in fails closed."""
    try:
        yield
    except StorageError as exc:
        raise Unavailable(f"the sign-in throttle's store is unavailable: {exc.storage_error}") from exc
