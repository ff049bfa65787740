"""An upstream that hangs, answers garbage, answers with the wrong shape or dies mid-call: each call ends within the
configured timeout as an `isError` result the agent can read, the gateway keeps no task behind for it, and the
next good call goes through."""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from pathlib import Path

import anyio
import pytest

from tests.gateway.harness import mcp_client, run_gateway

pytestmark = pytest.mark.anyio

SERVER = Path(__file__).with_name("misbehaving_server.py")
ALLOW_ALL = 'version: "1"\ndefault: allow\n'
TIMEOUT_SECONDS = 2.0


def gateway_tasks() -> int:
    """Unfinished asyncio tasks on loops other than the test's own: the gateway's, which runs in its own thread."""
    mine = asyncio.get_running_loop()
    return sum(1 for o in gc.get_objects() if isinstance(o, asyncio.Task) and not o.done() and o.get_loop() is not mine)


async def test_hangs_garbage_wrong_shapes_and_crashes_end_as_error_results_within_the_timeout(tmp_path: Path) -> None:
    upstreams = {"odd": {"command": sys.executable, "args": [str(SERVER)]}}
    with run_gateway(
        tmp_path,
        database_url=f"sqlite:///{tmp_path}/airlock.db",
        policy=ALLOW_ALL,
        upstreams=upstreams,
        upstream_call_timeout=f"{TIMEOUT_SECONDS:g}s",
    ) as gw:
        async with mcp_client(gw.mcp_url, gw.token) as client:
            assert (await client.call_tool("echo", {"n": 1})).content[0].text == '{"n": 1}'  # type: ignore[union-attr]
            baseline = gateway_tasks()
            for tool in ("hang", "garbage", "bad_shape", "hang", "garbage", "bad_shape"):
                started = time.monotonic()
                result = await client.call_tool(tool, {})
                took = time.monotonic() - started
                assert result.is_error, tool
                assert result.content[0].text.startswith("[UPSTREAM ERROR]"), result  # type: ignore[union-attr]
                assert took < TIMEOUT_SECONDS + 1.5, (tool, took)
                # The connection is still good: the next call is answered at once.
                assert not (await client.call_tool("echo", {"after": tool})).is_error
            with anyio.fail_after(5):  # nothing left waiting for the answers that never came
                while gateway_tasks() > baseline + 1:
                    await anyio.sleep(0.05)
            crashed = await client.call_tool("crash", {})
            assert crashed.is_error and crashed.content[0].text.startswith("[UPSTREAM ERROR]")  # type: ignore[union-attr]
            with anyio.fail_after(20):  # restarted, then good again
                while (await client.call_tool("echo", {})).is_error:
                    await anyio.sleep(0.2)
