"""Sign-in throttling on its own: per username and per address, cleared by a success for its username only, in memory
and in Redis; and sign_in() refusing even the right password while it holds.

The memory store runs on a clock the test moves. Redis expires the counts on its own time, so the Redis case waits
through the real 2-second window, polling for the lock to lift rather than sleeping a guessed length.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import redis
from sqlalchemy import Engine

from service.config import SignInConfig
from service.db.engine import unit_of_work
from service.errors import NotAuthenticated, TooManyAttempts, Unavailable
from service.security import TokenHasher
from service.users import service
from service.users.models import Role
from service.users.throttle import LoginThrottle
from tests.clock import MovableClock
from tests.conftest import REDIS_URL

CONFIG = SignInConfig(failures_per_username=3, failures_per_address=5, window=timedelta(seconds=2))


class Window:
    """Lets the window pass: by moving the memory store's clock, or, for Redis, by waiting until it has."""

    def __init__(self, clock: MovableClock | None) -> None:
        self.clock = clock

    def passes(self, lifted: Callable[[], bool]) -> None:
        if self.clock is not None:
            assert not lifted()
            self.clock.advance(CONFIG.window.total_seconds())
            assert lifted()
            return
        started = time.monotonic()
        while not lifted():
            assert time.monotonic() - started < 10, "the window never passed"
            time.sleep(0.05)
        assert time.monotonic() - started > 0.5  # it was locked for real, not for no time at all


@pytest.fixture(params=["memory", "redis"])
def window(request: pytest.FixtureRequest) -> Window:
    return Window(MovableClock() if request.param == "memory" else None)


@pytest.fixture
def throttle(request: pytest.FixtureRequest, window: Window) -> Iterator[LoginThrottle]:
    if window.clock is not None:
        built = LoginThrottle.build(CONFIG, redis_url=None, redis_prefix="", clock=window.clock)
    else:
        request.getfixturevalue("redis_client")  # skips (or fails in CI) without Redis
        built = LoginThrottle.build(CONFIG, redis_url=REDIS_URL, redis_prefix=request.getfixturevalue("redis_prefix"))
    yield built
    built.close()


def test_failures_for_one_username_lock_it_alone_until_the_window_passes(
    throttle: LoginThrottle, window: Window
) -> None:
    for _ in range(3):
        assert throttle.retry_after("ana", "10.0.0.1") is None
        throttle.failed("ana", "10.0.0.1")
    wait = throttle.retry_after("ana", "10.0.0.1")
    assert wait is not None and 0 < wait <= 2
    assert throttle.retry_after("ana", "10.0.0.2") is not None  # from anywhere
    assert throttle.retry_after("bo", "10.0.0.1") is None  # another username from the same address
    window.passes(lambda: throttle.retry_after("ana", "10.0.0.1") is None)


def test_failures_from_one_address_lock_it_for_every_username(throttle: LoginThrottle) -> None:
    for name in ("a", "b", "c", "d", "e"):
        throttle.failed(name, "10.0.0.9")
    assert throttle.retry_after("f", "10.0.0.9") is not None
    assert throttle.retry_after("f", "10.0.0.8") is None


def test_a_success_clears_its_usernames_count_but_not_its_addresss(throttle: LoginThrottle) -> None:
    for _ in range(2):
        throttle.failed("ana", "10.0.0.1")
    throttle.succeeded("ana", "10.0.0.1")
    for _ in range(2):
        throttle.failed("ana", "10.0.0.1")
    assert throttle.retry_after("ana", "10.0.0.1") is None  # two since the success, not four
    throttle.failed("bo", "10.0.0.1")  # the address's fifth failure
    assert throttle.retry_after("cy", "10.0.0.1") is not None


def test_without_its_store_the_throttle_fails_closed() -> None:
    throttle = LoginThrottle.build(CONFIG, redis_url="redis://127.0.0.1:1/0", redis_prefix="x")
    try:
        with pytest.raises(Unavailable, match="sign-in throttle"):
            throttle.retry_after("ana", "10.0.0.1")
    finally:
        throttle.close()


def test_sign_in_refuses_even_the_right_password_while_the_username_is_locked(
    engine: Engine, hasher: TokenHasher
) -> None:
    clock = MovableClock()
    throttle = LoginThrottle.build(CONFIG, redis_url=None, redis_prefix="", clock=clock)
    with unit_of_work(engine) as session:
        password = service.create_user(session, hasher, username="ana", role=Role.VIEWER, actor="test").password
    for username in ("ana", "ana", "ana", "ghost", "ghost", "ghost"):
        with pytest.raises(NotAuthenticated), unit_of_work(engine) as session:
            service.sign_in(session, throttle, username, "wrong", address=f"10.0.0.{len(username)}")
    messages = set()
    for username, attempt in (("ana", password), ("ghost", "anything")):
        with pytest.raises(TooManyAttempts) as refused, unit_of_work(engine) as session:
            service.sign_in(session, throttle, username, attempt, address="10.0.0.7")
        assert refused.value.status_code == 429 and 0 < refused.value.retry_after <= 2
        messages.add(refused.value.message.replace("2 seconds", "1 second"))
    assert messages == {"too many failed sign-ins; try again in 1 second"}  # the same whether the user exists or not
    clock.advance(1.9)
    with pytest.raises(TooManyAttempts), unit_of_work(engine) as session:
        service.sign_in(session, throttle, "ana", password, address="10.0.0.7")
    clock.advance(0.1)
    with unit_of_work(engine) as session:
        assert service.sign_in(session, throttle, "ana", password, address="10.0.0.7").username == "ana"


def test_redis_holds_the_counts_under_the_deployments_prefix(redis_client: redis.Redis, redis_prefix: str) -> None:
    throttle = LoginThrottle.build(CONFIG, redis_url=REDIS_URL, redis_prefix=redis_prefix)
    try:
        throttle.failed("ana", "10.0.0.1")
        assert list(redis_client.scan_iter(match=redis_prefix + "*"))  # another replica would see them
    finally:
        throttle.close()
