"""Faults on a PostgreSQL and a Redis of the test's own: with the database gone no call is forwarded without a
recorded decision and agents get a clear answer, and Airlock recovers by itself when it returns; with Redis gone,
rate limits fail closed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import anyio
import pytest
from sqlalchemy import text

from service.db.engine import make_engine
from tests.cluster.private import private_postgres, private_redis
from tests.gateway.harness import mcp_client, run_gateway

pytestmark = pytest.mark.anyio

# `make chaos` stops PostgreSQL for 20 s; `make test` for 5.
OUTAGE_SECONDS = float(os.environ.get("AIRLOCK_CHAOS_OUTAGE_SECONDS", "5"))

OPEN = 'version: "1"\ndefault: deny\ntools:\n  get_model_capabilities: {}\n'
LIMITED = (
    'version: "1"\ndefault: deny\ntools:\n'
    "  get_model_capabilities: {limits: [{counter: caps, window: minute, max: 1000, scope: grant}]}\n"
)


async def test_postgresql_stopped_under_load_fails_closed_and_recovers(tmp_path: Path) -> None:
    with private_postgres() as pg, run_gateway(tmp_path, database_url=pg.url, policy=OPEN) as gw:
        outcomes: list[tuple[float, str]] = []
        stop = anyio.Event()

        async def agent() -> None:
            while not stop.is_set():
                try:
                    async with mcp_client(gw.mcp_url, gw.token) as client:
                        while not stop.is_set():
                            result = await client.call_tool("get_model_capabilities", {})
                            text_ = result.content[0].text if result.content else ""  # type: ignore[union-attr]
                            outcomes.append((time.monotonic(), "error:" + text_[:14] if result.is_error else "ok"))
                            await anyio.sleep(0.02)
                except Exception as exc:  # the session or the grant check failed: a clear HTTP error, not a call
                    outcomes.append((time.monotonic(), f"refused:{type(exc).__name__}"))
                    await anyio.sleep(0.1)

        async with anyio.create_task_group() as group:
            group.start_soon(agent)
            with anyio.fail_after(30):  # the agent is under way before the database goes
                while sum(outcome == "ok" for _, outcome in outcomes) < 20:
                    await anyio.sleep(0.05)
            pg.stop()
            stopped_at = time.monotonic()
            await anyio.sleep(OUTAGE_SECONDS)
            pg.start()
            restarted_at = time.monotonic()
            with anyio.fail_after(30):  # recovery without restarting Airlock
                while not any(at > restarted_at and what == "ok" for at, what in outcomes):
                    await anyio.sleep(0.1)
            stop.set()
        during = [what for at, what in outcomes if stopped_at + 0.5 < at < restarted_at]
        assert during and all(what != "ok" for what in during)  # nothing succeeded without the database
        assert any(what.startswith("error:[UNAVAILABLE]") or what.startswith("refused") for what in during)
        assert any(what == "ok" for at, what in outcomes if at < stopped_at)
        engine = make_engine(pg.url)
        with engine.connect() as conn:
            allowed = conn.execute(text("SELECT count(*) FROM audit_events WHERE action = 'call.allowed'")).scalar_one()
        engine.dispose()
        # Every call the upstream executed has its decision recorded, committed before it was forwarded.
        assert len(gw.upstream_calls("get_model_capabilities")) == allowed


async def test_redis_stopped_makes_rate_limited_calls_fail_closed(tmp_path: Path) -> None:
    with (
        private_redis() as cache,
        run_gateway(
            tmp_path, database_url=f"sqlite:///{tmp_path}/airlock.db", policy=LIMITED, redis_url=cache.url
        ) as gw,
    ):
        async with mcp_client(gw.mcp_url, gw.token) as client:
            assert not (await client.call_tool("get_model_capabilities", {})).is_error
            cache.stop()
            refused = await client.call_tool("get_model_capabilities", {})
            assert refused.is_error and "counters are unavailable" in refused.content[0].text  # type: ignore[union-attr]
            cache.start()
            with anyio.fail_after(10):
                while (await client.call_tool("get_model_capabilities", {})).is_error:
                    await anyio.sleep(0.2)
        assert len(gw.upstream_calls("get_model_capabilities")) >= 2  # before and after, never during
