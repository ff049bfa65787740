"""Bad input at the MCP endpoint, upstream failures, HTTP upstreams, scoping, pass-through and the stdio bridge."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters

from tests.gateway.harness import FIXTURE_SERVER, demo_upstream, fixture_upstream, free_port, mcp_client, run_gateway

pytestmark = pytest.mark.anyio

STATUS = "airlock_approval_status"
ALLOW_ALL = 'version: "1"\ndefault: allow\n'
CHEAP: dict[str, Any] = {"prompt": "a lighthouse", "provider": "openai", "model": "gpt-image-1", "quality": "draft"}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/airlock.db"


async def test_http_answers_for_bad_requests(tmp_path: Path) -> None:
    with run_gateway(tmp_path, database_url=sqlite_url(tmp_path), policy=ALLOW_ALL, max_request_bytes=64 * 1024) as gw:
        auth = {"Authorization": f"Bearer {gw.token}", **HEADERS}
        async with httpx2.AsyncClient(timeout=10) as http:
            missing = await http.post(gw.mcp_url, json=INIT, headers=HEADERS)
            assert missing.status_code == 401
            assert missing.headers["www-authenticate"].startswith("Bearer")
            wrong = await http.post(gw.mcp_url, json=INIT, headers={**HEADERS, "Authorization": "Bearer alk_forged"})
            assert wrong.status_code == 401
            assert "unknown or revoked" in wrong.json()["error"]
            malformed = await http.post(gw.mcp_url, content=b'{"jsonrpc": "2.0", "id": 1, "method": ', headers=auth)
            assert malformed.status_code == 400
            huge = await http.post(gw.mcp_url, content=b"[" + b"1," * 40_000 + b"1]", headers=auth)
            assert huge.status_code == 413
            evil = await http.post(gw.mcp_url, json=INIT, headers={**auth, "Origin": "https://evil.example"})
            assert evil.status_code == 403
            unknown_upstream = await http.post(gw.mcp_url + "/nope", json=INIT, headers=auth)
            assert unknown_upstream.status_code == 404
            ok = await http.post(gw.mcp_url, json=INIT, headers=auth)
            assert ok.status_code == 200
            assert await http.get(gw.base_url + "/healthz") and (await http.get(gw.base_url + "/healthz")).json() == {
                "status": "ok"
            }
            ready = (await http.get(gw.base_url + "/readyz")).json()
            assert ready == {"ready": True, "database": True, "upstreams": {"imagegen": True}}
        assert gw.upstream_calls() == []


async def test_upstream_names_are_not_told_before_authentication_nor_beyond_the_grant(tmp_path: Path) -> None:
    """/mcp/NAME checks the grant first, and answers alike for a name that does not exist and one that the grant may
    not reach: neither anonymous callers nor a narrow grant can list the upstreams."""
    with run_gateway(
        tmp_path,
        database_url=sqlite_url(tmp_path),
        policy=ALLOW_ALL,
        grants={"wide": None, "narrow": ["elsewhere"]},
    ) as gw:
        async with httpx2.AsyncClient(timeout=10) as http:

            async def answer(name: str, token: str | None) -> tuple[int, str]:
                headers = {**HEADERS, "Authorization": f"Bearer {token}"} if token else HEADERS
                got = await http.post(f"{gw.mcp_url}/{name}", json=INIT, headers=headers)
                return got.status_code, got.text.replace(repr(name), "NAME")

            for token in (None, "alk_forged"):
                existing, missing = await answer("imagegen", token), await answer("nope", token)
                assert existing == missing and existing[0] == 401
            narrow = gw.tokens["narrow"]
            existing, missing = await answer("imagegen", narrow), await answer("nope", narrow)
            assert existing == missing and existing[0] == 404
            assert (await answer("nope", gw.tokens["wide"]))[0] == 404
            assert (await answer("imagegen", gw.tokens["wide"]))[0] == 200
        assert gw.upstream_calls() == []


async def test_a_session_cannot_be_used_with_another_grant(tmp_path: Path) -> None:
    with run_gateway(
        tmp_path, database_url=sqlite_url(tmp_path), policy=ALLOW_ALL, grants={"a": None, "b": None}
    ) as gw:
        async with httpx2.AsyncClient(timeout=10) as http:
            opened = await http.post(
                gw.mcp_url, json=INIT, headers={**HEADERS, "Authorization": f"Bearer {gw.tokens['a']}"}
            )
            session = opened.headers["mcp-session-id"]
            call = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
            stolen = await http.post(
                gw.mcp_url,
                json=call,
                headers={
                    **HEADERS,
                    "Authorization": f"Bearer {gw.tokens['b']}",
                    "mcp-session-id": session,
                    "mcp-protocol-version": "2025-11-25",
                },
            )
            assert stolen.status_code == 404


async def test_upstream_crash_is_an_error_result_then_it_restarts_and_the_count_is_given_back(tmp_path: Path) -> None:
    policy = 'version: "1"\ntools:\n  get_model_capabilities:\n    limits: [{counter: caps, window: 3650d, max: 2}]\n'
    with run_gateway(tmp_path, database_url=sqlite_url(tmp_path), policy=policy) as gw:
        async with mcp_client(gw.mcp_url, gw.token) as client:
            assert not (await client.call_tool("get_model_capabilities", {})).is_error
            first_pid = gw.upstream_pids()[-1]
            os.kill(first_pid, signal.SIGKILL)
            failed = await client.call_tool("get_model_capabilities", {})
            assert failed.is_error
            assert failed.content[0].text.startswith("[UPSTREAM ERROR]")  # type: ignore[union-attr]
            assert "imagegen" in failed.content[0].text  # type: ignore[union-attr]
            connection = gw.state.pool.get("imagegen")
            with anyio.fail_after(20):
                while not connection.state.connected or gw.upstream_pids()[-1] == first_pid:
                    await anyio.sleep(0.1)
            # The failed call gave its count back: one more call fits under max 2, then the limit holds.
            assert not (await client.call_tool("get_model_capabilities", {})).is_error
            limited = await client.call_tool("get_model_capabilities", {})
            assert limited.content[0].text.startswith("[RATE LIMITED]")  # type: ignore[union-attr]
        assert connection.state.restarts >= 1
        assert len(gw.upstream_calls("get_model_capabilities")) == 2


async def test_http_upstream_with_prefix_progress_and_pass_through(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "upstream.log"
    child = subprocess.Popen(
        [sys.executable, str(FIXTURE_SERVER), "--http", str(port)],
        env={**os.environ, "AIRLOCK_DEMO_UPSTREAM_LOG": str(log)},
    )
    try:
        with anyio.fail_after(20):
            while True:
                try:
                    httpx2.get(f"http://127.0.0.1:{port}/mcp", timeout=1)
                    break
                except httpx2.TransportError:
                    await anyio.sleep(0.1)
        upstreams = {
            "imagegen": demo_upstream(log),
            "remote": {"url": f"http://127.0.0.1:{port}/mcp", "headers": {"X-Test": "1"}, "prefix": "remote_"},
        }
        with run_gateway(tmp_path, database_url=sqlite_url(tmp_path), policy=ALLOW_ALL, upstreams=upstreams) as gw:
            async with mcp_client(gw.mcp_url, gw.token, mode="2026-07-28") as client:
                tools = {t.name: t for t in (await client.list_tools()).tools}
                assert {"remote_echo", "remote_sloppy", "generate_image"} <= set(tools)
                assert tools["remote_sloppy"].input_schema["type"] == "object"  # mended on the way through

                seen: list[tuple[float, str | None]] = []

                async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                    seen.append((progress, message))

                echoed = await client.call_tool("remote_echo", {"text": "hi"}, progress_callback=on_progress)
                assert echoed.content[0].text == "hi"  # type: ignore[union-attr]
                assert echoed.structured_content == {"echo": "hi"}
                assert (echoed.meta or {}).get("fixture/trace") == "kept"
                assert seen and seen[0][1] == "halfway"

                resources = (await client.list_resources()).resources
                assert [str(r.uri) for r in resources] == ["fixture://greeting"]
                read = await client.read_resource("fixture://greeting")
                assert read.contents[0].text == "hello from the fixture"  # type: ignore[union-attr]
                prompts = (await client.list_prompts()).prompts
                assert [p.name for p in prompts] == ["remote_haiku"]
                prompt = await client.get_prompt("remote_haiku", {"topic": "airlocks"})
                assert "airlocks" in prompt.messages[0].content.text  # type: ignore[union-attr]
        assert [
            c["tool"]
            for c in json.loads("[" + ",".join(log.read_text().splitlines()) + "]")
            if c.get("event") == "call"
        ] == ["echo"]
    finally:
        child.terminate()
        child.wait(10)


async def test_scoped_endpoint_and_grant_upstream_access(tmp_path: Path) -> None:
    log = tmp_path / "upstream.log"
    upstreams = {"imagegen": demo_upstream(log), "fixture": fixture_upstream(log, prefix="fx_")}
    grants = {"both": None, "images-only": ["imagegen"]}
    with run_gateway(
        tmp_path, database_url=sqlite_url(tmp_path), policy=ALLOW_ALL, upstreams=upstreams, grants=grants
    ) as gw:
        async with mcp_client(gw.mcp_url + "/fixture", gw.tokens["both"]) as client:
            assert {t.name for t in (await client.list_tools()).tools} == {
                "fx_echo",
                "fx_sloppy",
                "fx_slow",
                "fx_odd",
                STATUS,
            }
            assert (await client.call_tool("generate_image", CHEAP)).content[0].text.startswith("[UNKNOWN TOOL]")  # type: ignore[union-attr]
        async with mcp_client(gw.mcp_url, gw.tokens["images-only"]) as client:
            assert {t.name for t in (await client.list_tools()).tools} == {
                "generate_image",
                "edit_image",
                "get_model_capabilities",
                STATUS,
            }
            refused = await client.call_tool("fx_echo", {"text": "x"})
            assert refused.content[0].text.startswith("[UNKNOWN TOOL]")  # type: ignore[union-attr]
        async with httpx2.AsyncClient(timeout=10) as http:
            unreachable = await http.post(
                gw.mcp_url + "/fixture",
                json=INIT,
                headers={**HEADERS, "Authorization": f"Bearer {gw.tokens['images-only']}"},
            )
            assert unreachable.status_code == 404  # as for a name that does not exist: a grant learns no other names
        assert gw.upstream_calls("echo") == []


async def test_a_name_clash_between_upstreams_refuses_to_start(tmp_path: Path) -> None:
    log = tmp_path / "upstream.log"
    upstreams = {"one": fixture_upstream(log), "two": fixture_upstream(log)}
    with pytest.raises(RuntimeError, match="did not start"):
        with run_gateway(tmp_path, database_url=sqlite_url(tmp_path), policy=ALLOW_ALL, upstreams=upstreams):
            pass


async def test_stdio_bridge_forwards_to_the_gateway(tmp_path: Path) -> None:
    policy = 'version: "1"\ndefault: deny\ntools:\n  get_model_capabilities: {}\n'
    with run_gateway(tmp_path, database_url=sqlite_url(tmp_path), policy=policy) as gw:
        airlock = Path(sys.executable).parent / "airlock"
        params = StdioServerParameters(command=str(airlock), args=["connect", "--url", gw.mcp_url, "--token", gw.token])
        async with Client(params, mode="legacy", cache=None) as client:
            assert "get_model_capabilities" in {t.name for t in (await client.list_tools()).tools}
            ok = await client.call_tool("get_model_capabilities", {})
            assert not ok.is_error
            denied = await client.call_tool("generate_image", CHEAP)
            assert denied.content[0].text.startswith("[POLICY DENIED]")  # type: ignore[union-attr]
        assert [c["tool"] for c in gw.upstream_calls()] == ["get_model_capabilities"]


async def test_metrics_count_calls_by_outcome(tmp_path: Path) -> None:
    policy = 'version: "1"\ndefault: deny\ntools:\n  get_model_capabilities: {}\n'
    with run_gateway(tmp_path, database_url=sqlite_url(tmp_path), policy=policy) as gw:
        async with mcp_client(gw.mcp_url, gw.token) as client:
            await client.call_tool("get_model_capabilities", {})
            await client.call_tool("generate_image", CHEAP)
        text = httpx2.get(gw.base_url + "/metrics", timeout=10).text
    assert 'airlock_tool_calls_total{outcome="allow",tool="get_model_capabilities"} 1.0' in text
    assert 'airlock_tool_calls_total{outcome="deny",tool="generate_image"} 1.0' in text
    assert 'airlock_upstream_up{upstream="imagegen"} 1.0' in text
    time.sleep(0)


async def test_answer_format_is_chosen_per_request(tmp_path: Path) -> None:
    """Plain JSON when nothing can stream; SSE when progress was asked for or a person may have to decide."""
    policy = (
        'version: "1"\ndefault: allow\ntools:\n'
        '  generate_image: {require_approval: {when: "cost.usd > 0.10"}, cost: {estimator: image_gen_mcp}}\n'
    )
    with run_gateway(tmp_path, database_url=sqlite_url(tmp_path), policy=policy) as gw:
        auth = {"Authorization": f"Bearer {gw.token}", **HEADERS}
        async with httpx2.AsyncClient(timeout=30) as http:
            opened = await http.post(gw.mcp_url, json=INIT, headers=auth)
            session = {**auth, "mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
            await http.post(gw.mcp_url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)

            def call(
                request_id: int, name: str, arguments: dict[str, Any], meta: dict[str, Any] | None = None
            ) -> dict[str, Any]:
                params: dict[str, Any] = {"name": name, "arguments": arguments}
                if meta:
                    params["_meta"] = meta
                return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}

            plain = await http.post(gw.mcp_url, json=call(2, "get_model_capabilities", {}), headers=session)
            assert plain.headers["content-type"].startswith("application/json")
            assert plain.json()["result"]["isError"] is False
            streamed = await http.post(
                gw.mcp_url, json=call(3, "get_model_capabilities", {}, {"progressToken": "p1"}), headers=session
            )
            assert streamed.headers["content-type"].startswith("text/event-stream")
            holdable = await http.post(gw.mcp_url, json=call(4, "generate_image", CHEAP), headers=session)
            assert holdable.headers["content-type"].startswith("text/event-stream")
            assert '"isError":false' in holdable.text.replace(" ", "")
            listing = await http.post(
                gw.mcp_url, json={"jsonrpc": "2.0", "id": 5, "method": "tools/list"}, headers=session
            )
            assert listing.headers["content-type"].startswith("application/json")
        assert len(gw.upstream_calls()) == 3


async def test_a_cancelled_call_is_cancelled_upstream(tmp_path: Path) -> None:
    log = tmp_path / "upstream.log"
    with run_gateway(
        tmp_path, database_url=sqlite_url(tmp_path), policy=ALLOW_ALL, upstreams={"fixture": fixture_upstream(log)}
    ) as gw:
        async with mcp_client(gw.mcp_url, gw.token) as client:
            with anyio.move_on_after(1.0):
                await client.call_tool("slow", {})
            with anyio.fail_after(10):
                while not gw.upstream_calls("slow.cancelled"):
                    await anyio.sleep(0.1)
        assert len(gw.upstream_calls("slow")) == 1
