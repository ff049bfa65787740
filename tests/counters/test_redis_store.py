"""The Redis counter store against the real Redis: its connection heals, and Redis expires windows on its own clock.

Redis keeps the windows' expiry itself (PEXPIREAT): these tests use real, near windows on the wall clock rather than
the engine's injected clock, which only names the window.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest
import redis

from service.counters import RedisCounters
from service.counters.expiry import EXPIRY_GRACE_SECONDS
from service.policy.counters import CounterItem
from tests.conftest import REDIS_URL


@pytest.fixture
def named_store(redis_client: redis.Redis, redis_prefix: str) -> Iterator[tuple[RedisCounters, str]]:
    """A store whose connections carry a name of their own, so a test can find and kill exactly them."""
    name = f"airlock-test-{secrets.token_hex(4)}"
    client = redis.Redis.from_url(REDIS_URL, client_name=name, socket_timeout=2, socket_connect_timeout=2)
    store = RedisCounters(client, prefix=redis_prefix)
    yield store, name
    store.close()


def call_count(window_end: int, limit: int = 10) -> list[CounterItem]:
    return [CounterItem("calls|g=1", 1, False, limit, window_end)]


def test_the_next_reservation_after_redis_killed_the_connection_still_counts(
    named_store: tuple[RedisCounters, str], redis_client: redis.Redis
) -> None:
    store, name = named_store
    now = time.time()
    window_end = int(now) + 60
    assert store.reserve(call_count(window_end), now).values == (1,)
    ours = [client["id"] for client in redis_client.client_list() if client.get("name") == name]
    assert ours  # the store's own connection, and nobody else's
    for client_id in ours:
        assert redis_client.client_kill_filter(_id=client_id) == 1
    after = store.reserve(call_count(window_end), time.time())
    assert (after.ok, after.values) == (True, (2,))  # counted on a fresh connection, and the count survived


def test_redis_expires_a_window_after_its_end_and_the_grace(redis_client: redis.Redis, redis_prefix: str) -> None:
    store = RedisCounters(redis_client, prefix=redis_prefix)
    now = time.time()
    window_end = int(now) + 5  # a near, real window: Redis judges it by its own clock
    assert store.reserve(call_count(window_end), now).ok
    expires_in_ms = redis_client.pttl(redis_prefix + "calls|g=1")
    expected_ms = (window_end + EXPIRY_GRACE_SECONDS - now) * 1000
    assert expected_ms - 2000 < expires_in_ms <= expected_ms + 1000
