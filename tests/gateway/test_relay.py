"""Upstream tool results relayed as sent (service/gateway/relay.py): plain results reach the agent exactly as the
upstream wrote them, anything else gets the SDK's treatment, and garbage, hangs and crashes end as clear errors."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest

from service.gateway.relay import RelayedResult, UpstreamUnavailable, is_plain
from tests.gateway.harness import RunningGateway, mcp_client, run_gateway
from tests.gateway.test_direct import call, open_session
from tests.gateway.test_edges import ALLOW_ALL, sqlite_url

pytestmark = pytest.mark.anyio

RAW_SERVER = Path(__file__).with_name("raw_server.py")

TEXT = {"content": [{"type": "text", "text": 'héllo \u2028 "quoted"'}]}
IMAGE = {
    "content": [
        {"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png", "_meta": {"seed": 7}},
        {"type": "audio", "data": "UklGRg==", "mimeType": "audio/wav"},
    ],
    "isError": False,
}
STRUCTURED = {
    "content": [{"type": "text", "text": '{"n": 2}'}],
    "structuredContent": {"n": 2, "ratio": 0.25, "nested": {"list": [1, None, True]}},
    "_meta": {"upstream/trace": "abc"},
}
ERROR = {"content": [{"type": "text", "text": "the tool failed"}], "isError": True}


def raw_upstream(log: Path) -> dict[str, Any]:
    return {"command": sys.executable, "args": [str(RAW_SERVER)], "env": {"AIRLOCK_DEMO_UPSTREAM_LOG": str(log)}}


def gateway(tmp_path: Path, **overrides: Any) -> Any:
    log = tmp_path / "upstream.log"
    return run_gateway(
        tmp_path, database_url=sqlite_url(tmp_path), policy=ALLOW_ALL, upstreams={"raw": raw_upstream(log)}, **overrides
    )


async def direct_call(http: httpx2.AsyncClient, gw: RunningGateway, session: dict[str, str], result: Any) -> Any:
    answer = await http.post(gw.mcp_url, json=call(5, "relay", {"result": result}), headers=session)
    assert answer.status_code == 200
    return answer.json()


# -- the shape check, on its own ---------------------------------------------------------------------------


@pytest.mark.parametrize("result", [TEXT, IMAGE, STRUCTURED, ERROR, {"content": []}])
def test_plain_results_are_relayed_as_they_are(result: dict[str, Any]) -> None:
    assert is_plain(result)
    relayed = RelayedResult.checked(result, "2025-11-25")
    assert relayed.for_version("2025-06-18") is result
    assert relayed.is_error is (result.get("isError") is True)
    # The SDK's model of it, for the paths that store results or hand them to the SDK, is what the SDK would make.
    assert relayed.model() == types.CallToolResult.model_validate(result, by_name=False)


@pytest.mark.parametrize(
    "result",
    [
        {"content": [{"type": "text", "text": "x", "annotations": {"audience": ["user"]}}]},
        {"content": [{"type": "resource_link", "uri": "file:///a", "name": "a"}]},
        {"content": [{"type": "text", "text": "x"}], "isError": None},
        {"content": [{"type": "text", "text": "x"}], "somethingNew": 1},
        {"content": [{"type": "text", "text": "x", "extra": 1}]},
        {"content": [{"type": "image", "data": "AAAA"}]},
        {"content": [{"type": "text", "text": "x"}], "isError": "true"},
        {"content": "x"},
        {"content": [{"type": "text", "text": "x"}], "structuredContent": [1]},
        [],
    ],
)
def test_anything_unusual_is_not_plain(result: Any) -> None:
    assert not is_plain(result)


def test_unusual_results_get_the_sdks_treatment() -> None:
    result = {
        "content": [{"type": "text", "text": "x", "annotations": {"audience": ["user"]}, "extra": 1}],
        "somethingNew": 1,
    }
    shaped = RelayedResult.checked(result, "2025-11-25").for_version("2025-11-25")
    kept = {"type": "text", "text": "x", "annotations": {"audience": ["user"]}}
    assert shaped == {"content": [kept], "isError": False}


@pytest.mark.parametrize(
    "garbage",
    [{"content": "x"}, {"content": [{"type": "nonsense"}]}, {"structuredContent": {}}, {"content": [{"type": "text"}]}],
)
def test_a_malformed_result_is_refused(garbage: Any) -> None:
    with pytest.raises(UpstreamUnavailable, match="malformed"):
        RelayedResult.checked(garbage, "2025-11-25")


# -- through the gateway ------------------------------------------------------------------------------------


async def test_the_agent_gets_exactly_what_the_upstream_sent(tmp_path: Path) -> None:
    with gateway(tmp_path) as gw:
        async with httpx2.AsyncClient(timeout=30) as http:
            session = await open_session(http, gw, gw.token)
            for result in (TEXT, IMAGE, STRUCTURED, ERROR):
                answer = await direct_call(http, gw, session, result)
                assert answer == {"jsonrpc": "2.0", "id": 5, "result": result}
            unusual = {"content": [{"type": "text", "text": "x", "annotations": {"priority": 0.5}}], "new": 1}
            shaped = await direct_call(http, gw, session, unusual)
            assert shaped["result"] == {
                "content": [{"type": "text", "text": "x", "annotations": {"priority": 0.5}}],
                "isError": False,
            }
        # The 2026-07-28 revision goes through the SDK's own server, which gets the same result as a model.
        async with mcp_client(gw.mcp_url, gw.token, mode="2026-07-28") as client:
            modern = await client.call_tool("relay", {"result": STRUCTURED})
            assert modern.structured_content == STRUCTURED["structuredContent"]
            assert (modern.meta or {})["upstream/trace"] == "abc"  # beside the serverInfo stamp of 2026-07-28
            assert isinstance(modern.content[0], types.TextContent)
            failed = await client.call_tool("relay", {"result": ERROR})
            assert failed.is_error


async def test_a_garbage_answer_is_an_upstream_error_and_gives_the_count_back(tmp_path: Path) -> None:
    limited = 'version: "1"\ntools:\n  relay:\n    limits: [{counter: relay, window: 3650d, max: 1}]\n'
    log = tmp_path / "upstream.log"
    with run_gateway(
        tmp_path, database_url=sqlite_url(tmp_path), policy=limited, upstreams={"raw": raw_upstream(log)}
    ) as gw:
        async with httpx2.AsyncClient(timeout=30) as http:
            session = await open_session(http, gw, gw.token)
            for garbage in ({"content": "not a list"}, {"content": [{"type": "text", "text": 5}]}):
                answer = await direct_call(http, gw, session, garbage)
                assert answer["result"]["isError"] is True
                text = answer["result"]["content"][0]["text"]
                assert text == "[UPSTREAM ERROR] upstream raw returned a malformed result. The call may not have run."
            assert (await direct_call(http, gw, session, TEXT))["result"] == TEXT  # the failed calls gave it back
            over = await direct_call(http, gw, session, TEXT)
            assert over["result"]["content"][0]["text"].startswith("[RATE LIMITED]")


async def test_a_hanging_upstream_times_out_and_is_told_to_stop(tmp_path: Path) -> None:
    with gateway(tmp_path, upstream_call_timeout="1s") as gw:
        async with httpx2.AsyncClient(timeout=30) as http:
            session = await open_session(http, gw, gw.token)
            answer = await http.post(gw.mcp_url, json=call(6, "hang", {}), headers=session)
            text = answer.json()["result"]["content"][0]["text"]
            assert text.startswith("[UPSTREAM ERROR] upstream raw did not answer within 1 s")
            with anyio.fail_after(10):
                while not gw.upstream_calls("hang.cancelled"):
                    await anyio.sleep(0.05)
            assert (await direct_call(http, gw, session, TEXT))["result"] == TEXT  # the connection is still good


async def test_an_upstream_that_dies_during_a_call_fails_it_at_once(tmp_path: Path) -> None:
    with gateway(tmp_path) as gw:
        async with httpx2.AsyncClient(timeout=30) as http:
            session = await open_session(http, gw, gw.token)
            answers: list[dict[str, Any]] = []

            async def hang() -> None:
                answers.append((await http.post(gw.mcp_url, json=call(7, "hang", {}), headers=session)).json())

            async with anyio.create_task_group() as group:
                group.start_soon(hang)
                with anyio.fail_after(10):
                    while not gw.upstream_calls("hang"):
                        await anyio.sleep(0.05)
                first_pid = gw.upstream_pids()[-1]
                os.kill(first_pid, signal.SIGKILL)
            text = answers[0]["result"]["content"][0]["text"]
            assert text.startswith("[UPSTREAM ERROR] upstream raw went away during the call")
            connection = gw.state.pool.get("raw")
            with anyio.fail_after(20):
                while not connection.state.connected or gw.upstream_pids()[-1] == first_pid:
                    await anyio.sleep(0.1)
            assert (await direct_call(http, gw, session, IMAGE))["result"] == IMAGE
