"""Real MCP clients in both protocol eras, through the real gateway, to real upstream child processes.

Whenever the policy says no, the upstream's own record proves it never saw the call.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from service.audit.service import verify
from service.db.engine import unit_of_work
from tests.clock import MovableClock
from tests.gateway.harness import mcp_client, run_gateway
from tests.policy.helpers import fixture

pytestmark = pytest.mark.anyio

ERAS = ["legacy", "2026-07-28"]
CHEAP: dict[str, Any] = {
    "prompt": "a lighthouse at dawn",
    "provider": "openai",
    "model": "gpt-image-1",
    "quality": "draft",
}


def db_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


@pytest.mark.parametrize("mode", ERAS)
async def test_demo_policy_allows_denies_and_holds(engine: Engine, tmp_path: Path, mode: str) -> None:
    with run_gateway(
        tmp_path, database_url=db_url(engine), policy=fixture("airlock-demo.yaml"), hold={"max_wait": "1s"}
    ) as gw:
        async with mcp_client(gw.mcp_url, gw.token, mode=mode) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert set(tools) == {"generate_image", "edit_image", "get_model_capabilities", "airlock_approval_status"}
            assert tools["generate_image"].annotations is not None
            assert tools["generate_image"].annotations.open_world_hint is True

            allowed = await client.call_tool("generate_image", CHEAP)
            assert not allowed.is_error
            assert allowed.content[0].type == "image"
            assert base64.b64decode(allowed.content[0].data).startswith(b"\x89PNG")
            assert allowed.structured_content is not None
            assert allowed.structured_content["image_count"] == 1

            denied = await client.call_tool("generate_image", {**CHEAP, "directory": "/srv/www"})
            assert denied.is_error
            assert denied.content[0].text.startswith("[POLICY DENIED] Saving images to server folders")  # type: ignore[union-attr]

            held = await client.call_tool("generate_image", {**CHEAP, "quality": "high", "n": 4})
            assert not held.is_error  # a pending answer is not an error: the call waits in the queue
            assert held.content[0].text.startswith("Not executed yet: approval pending (R-")  # type: ignore[union-attr]

            unlisted = await client.call_tool("delete_everything", {})
            assert unlisted.is_error
            assert unlisted.content[0].text.startswith("[UNKNOWN TOOL]")  # type: ignore[union-attr]

        executed = gw.upstream_calls("generate_image")
        assert [c["arguments"] for c in executed] == [CHEAP]
        with unit_of_work(engine) as session:
            assert verify(session).ok


async def test_the_31st_call_in_a_minute_is_rate_limited_and_never_reaches_the_upstream(
    engine: Engine, tmp_path: Path
) -> None:
    seed = fixture("policylayer-seed.json").replace('"generate_image"', '"get_model_capabilities"')
    # Windows are UTC minutes: the gateway's clock is held still, so the burst cannot straddle a boundary.
    with run_gateway(tmp_path, database_url=db_url(engine), policy=seed, clock=MovableClock.from_now()) as gw:
        async with mcp_client(gw.mcp_url, gw.token) as client:
            results = [await client.call_tool("get_model_capabilities", {}) for _ in range(31)]
        assert [r.is_error for r in results].count(False) == 30
        last = results[-1]
        assert last.is_error
        assert last.content[0].text.startswith("[RATE LIMITED] Rate limit of 30 per minute")  # type: ignore[union-attr]
        assert "Retry after" in last.content[0].text  # type: ignore[union-attr]
        assert len(gw.upstream_calls("get_model_capabilities")) == 30


async def test_hidden_tools_are_not_listed_and_not_callable(engine: Engine, tmp_path: Path) -> None:
    policy = 'version: "1"\ndefault: allow\nhide: [edit_image]\n'
    with run_gateway(tmp_path, database_url=db_url(engine), policy=policy) as gw:
        async with mcp_client(gw.mcp_url, gw.token, mode="2026-07-28") as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert names == {"generate_image", "get_model_capabilities", "airlock_approval_status"}
            result = await client.call_tool("edit_image", {**CHEAP, "images": ["https://example.com/a.png"]})
        assert result.is_error
        assert "hidden by policy" in result.content[0].text  # type: ignore[union-attr]
        assert gw.upstream_calls("edit_image") == []


async def test_decisions_are_in_the_audit_log_with_latency(engine: Engine, tmp_path: Path) -> None:
    with run_gateway(tmp_path, database_url=db_url(engine), policy=fixture("airlock-demo.yaml")) as gw:
        async with mcp_client(gw.mcp_url, gw.token) as client:
            await client.call_tool("get_model_capabilities", {})
            await client.call_tool("generate_image", {**CHEAP, "directory": "/x"})
        gw.state.writer.stop()  # flush the trailing outcome events
        from service.audit.service import export

        with unit_of_work(engine) as session:
            rows = [__import__("json").loads(line) for line in export(session, since=None, until=None, fmt="jsonl")]
    calls = [r for r in rows if r["kind"] == "call"]
    actions = [(r["action"], r["tool"]) for r in calls]
    assert actions == [
        ("call.allowed", "get_model_capabilities"),
        ("call.completed", "get_model_capabilities"),
        ("call.denied", "generate_image"),
    ]
    assert calls[0]["details"]["decision_us"] > 0
    assert calls[1]["details"]["latency_ms"] > 0
    assert calls[2]["rule"] == "/tools/generate_image/deny_if/0"
    assert calls[2]["argument_keys"] == sorted([*CHEAP, "directory"])
    assert "/x" not in __import__("json").dumps(calls[2])  # argument values never reach the audit log
