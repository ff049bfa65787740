"""Sign-in throttling on its own: per username and per address, cleared by a success for its username only, in memory
and in Redis; and sign_in() refusing even the right password while it holds."""

from __future__ import annotations

import time
from collections.abc import Iterator
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
from tests.conftest import REDIS_URL

CONFIG = SignInConfig(failures_per_username=3, failures_per_address=5, window=timedelta(seconds=2))


@pytest.fixture(params=["memory", "redis"])
def throttle(request: pytest.FixtureRequest) -> Iterator[LoginThrottle]:
    if request.param == "memory":
        built = LoginThrottle.build(CONFIG, redis_url=None, redis_prefix="")
    else:
        request.getfixturevalue("redis_client")  # skips (or fails in CI) without Redis
        built = LoginThrottle.build(CONFIG, redis_url=REDIS_URL, redis_prefix=request.getfixturevalue("redis_prefix"))
    yield built
    built.close()


def test_failures_for_one_username_lock_it_alone_until_the_window_passes(throttle: LoginThrottle) -> None:
    for _ in range(3):
        assert throttle.retry_after("ana", "10.0.0.1") is None
        throttle.failed("ana", "10.0.0.1")
    wait = throttle.retry_after("ana", "10.0.0.1")
    assert wait is not None and 0 < wait <= 2
    assert throttle.retry_after("ana", "10.0.0.2") is not None  # from anywhere
    assert throttle.retry_after("bo", "10.0.0.1") is None  # another username from the same address
    time.sleep(2.1)
    assert throttle.retry_after("ana", "10.0.0.1") is None


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
    throttle = LoginThrottle.build(CONFIG, redis_url=None, redis_prefix="")
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
    time.sleep(2.1)
    with unit_of_work(engine) as session:
        assert service.sign_in(session, throttle, "ana", password, address="10.0.0.7").username == "ana"


def test_redis_holds_the_counts_under_the_deployments_prefix(redis_client: redis.Redis, redis_prefix: str) -> None:
    throttle = LoginThrottle.build(CONFIG, redis_url=REDIS_URL, redis_prefix=redis_prefix)
    try:
        throttle.failed("ana", "10.0.0.1")
        assert list(redis_client.scan_iter(match=redis_prefix + "*"))  # another replica would see them
    finally:
        throttle.close()
