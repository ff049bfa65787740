"""Shared fixtures: real SQLite and PostgreSQL databases built by the migrations, real Redis.

When PostgreSQL or Redis cannot be reached the tests that need them skip with a reason that says how to run
them, unless AIRLOCK_REQUIRE_SERVICES=1 (as in CI), where they fail instead.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import psycopg
import pytest
import redis
from hypothesis import settings
from sqlalchemy import Engine, text
from sqlmodel import Session, SQLModel

import service.models  # noqa: F401  every table on the metadata, as the app and the migrations see it
from service.db import migrate
from service.db.engine import make_engine
from service.security import TokenHasher

PG_ADMIN_URL = os.environ.get("AIRLOCK_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("AIRLOCK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = os.environ.get("AIRLOCK_REQUIRE_SERVICES") == "1"

# CI (AIRLOCK_REQUIRE_SERVICES=1) runs the property tests on fixed examples, so a run of main is repeatable; a
# developer's run explores new ones, and a failure it finds prints the example to add with @example.
settings.register_profile("ci", derandomize=True, print_blob=True)
if REQUIRE_SERVICES:
    settings.load_profile("ci")


def skip_or_fail(message: str) -> None:
    """Something a test needs is not on this machine: a skip that says so, or a failure where it must be (CI)."""
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(f"{message}; or set AIRLOCK_REQUIRE_SERVICES=1 to make this a failure")


def _unavailable(what: str, error: Exception) -> None:
    skip_or_fail(f"{what} is not reachable ({error}); start it (see README, 'Running the tests')")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, built by `alembic upgrade head`."""
    name = f"airlock_test_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        _unavailable("PostgreSQL", exc)
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    migrate.upgrade(url)
    yield url
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("sqlite") / "airlock.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def _engines() -> Iterator[dict[str, Engine]]:
    engines: dict[str, Engine] = {}
    yield engines
    for engine in engines.values():
        engine.dispose()


def empty_tables(engine: Engine) -> None:
    """Every table emptied and the audit chain back at its genesis (also between a property test's examples)."""
    tables = [t.name for t in reversed(SQLModel.metadata.sorted_tables) if t.name != "audit_chain_head"]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))
        genesis = "0" * 64
        conn.execute(
            text(f"UPDATE audit_chain_head SET seq = 0, hash = '{genesis}', anchor_seq = 0, anchor_hash = '{genesis}'")
        )


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, _engines: dict[str, Engine]) -> Engine:
    """Every test that touches the database runs on both engines, with empty tables."""
    kind: str = request.param
    if kind not in _engines:
        url = request.getfixturevalue("sqlite_url" if kind == "sqlite" else "pg_url")
        _engines[kind] = make_engine(url)
    engine = _engines[kind]
    empty_tables(engine)
    return engine


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as s:
        yield s
        s.rollback()


@pytest.fixture
def hasher() -> TokenHasher:
    return TokenHasher(b"test-pepper-0123456789abcdef")


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        _unavailable("Redis", exc)
    yield client
    client.close()


@pytest.fixture
def redis_prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A key prefix of this test's own, removed afterwards, so tests never see each other's counters."""
    prefix = f"airlock-test:{secrets.token_hex(6)}:"
    yield prefix
    keys = list(redis_client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        redis_client.delete(*keys)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# What starts a gateway, replicas, the demo process or a browser. A test module that uses any of them is end to end
# (`-m e2e`), as is a test that asks for a browser page or a running gateway as a fixture. `make test-fast` runs the
# rest (`-m "not e2e"`); `make test`, which CI runs, runs everything.
_E2E_STARTERS = {
    ("tests.gateway.harness", "run_gateway"),
    ("tests.slack.helpers", "slack_gateway"),
    ("tests.cluster.harness", "replicas"),
    ("tests.cluster.private", "private_postgres"),
    ("tests.cluster.private", "private_redis"),
    ("tests.demo_process", "running_demo"),
}
_E2E_FIXTURES = {"gw", "browser", "page", "demo"}


def _starts_servers(item: pytest.Item) -> bool:
    if _E2E_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return True
    module = getattr(item, "module", None)
    return module is not None and any(
        (getattr(value, "__module__", None), getattr(value, "__name__", None)) in _E2E_STARTERS
        for value in vars(module).values()
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _starts_servers(item):
            item.add_marker(pytest.mark.e2e)
