"""Tasks only in the era the session negotiated (issue 13, section 5): raw JSON-RPC over HTTP, because the SDK client
cannot declare the 2026 tasks extension on a handshake-era session, nor settle on an older revision."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx2
import pytest

from service.gateway.tasks import TASKS_EXTENSION
from tests.gateway.harness import RunningGateway, approve_via_api, run_gateway
from tests.gateway.test_direct import call, sse_messages
from tests.gateway.test_edges import HEADERS
from tests.gateway.test_holds import DEAR, USERS, sqlite_url
from tests.policy.helpers import fixture

pytestmark = pytest.mark.anyio

OTHER: dict[str, Any] = {**DEAR, "prompt": "three harbours"}


def inspector_gateway(tmp_path: Path) -> AbstractContextManager[RunningGateway]:
    """The demo gateway, where a client named like the MCP Inspector gets its pending answer after 1 s."""
    return run_gateway(
        tmp_path,
        database_url=sqlite_url(tmp_path),
        policy=fixture("airlock-demo.yaml"),
        users=USERS,
        hold={"client_budgets": {"inspector": "1s"}},
    )


def initialize(version: str, capabilities: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": version,
            "capabilities": capabilities,
            "clientInfo": {"name": "inspector-cli", "version": "2.12"},
        },
    }


async def handshake(
    http: httpx2.AsyncClient, gw: RunningGateway, version: str, capabilities: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The initialize result, and the headers of the session it opened."""
    auth = {"Authorization": f"Bearer {gw.token}", **HEADERS}
    opened = await http.post(gw.mcp_url, json=initialize(version, capabilities), headers=auth)
    assert opened.status_code == 200, opened.text
    answer = opened.json() if opened.headers["content-type"].startswith("application/json") else None
    result: dict[str, Any] = (answer or sse_messages(opened.text)[-1])["result"]
    session = {**auth, "mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": version}
    await http.post(gw.mcp_url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
    return result, session


async def answer(http: httpx2.AsyncClient, gw: RunningGateway, session: dict[str, str], body: Any) -> dict[str, Any]:
    response = await http.post(gw.mcp_url, json=body, headers=session)
    assert response.status_code == 200, response.text
    if response.headers["content-type"].startswith("application/json"):
        message: dict[str, Any] = response.json()
        return message
    return [m for m in sse_messages(response.text) if "id" in m][-1]


def task_augmented(request_id: int, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    body = call(request_id, name, arguments)
    body["params"]["task"] = {"ttl": 60_000}
    return body


def pending_id(message: dict[str, Any]) -> str:
    """The R-number of a pending answer, which a plain (non-task) result carries."""
    result = message["result"]
    assert "resultType" not in result and "task" not in result, result
    assert result["content"][0]["text"].startswith("Not executed yet: approval pending (R-")
    request_id: str = result["structuredContent"]["request_id"]
    return request_id


@pytest.mark.parametrize("version", ["2024-11-05", "2025-03-26", "2025-06-18"])
async def test_revisions_before_tasks_never_see_task_fields(tmp_path: Path, version: str) -> None:
    with inspector_gateway(tmp_path) as gw:
        async with httpx2.AsyncClient(timeout=30) as http:
            declared: dict[str, Any] = {"tasks": {}, "extensions": {TASKS_EXTENSION: {}}}
            result, session = await handshake(http, gw, version, declared)
            assert result["protocolVersion"] == version
            assert "tasks" not in result["capabilities"]
            assert TASKS_EXTENSION not in result["capabilities"].get("extensions", {})
            tools = (await answer(http, gw, session, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))["result"]
            assert {t["name"] for t in tools["tools"]} >= {"generate_image", "airlock_approval_status"}
            assert all("execution" not in t for t in tools["tools"])
            # A task-augmented call (SDK path) and a plain one (direct path) are both plain holds here.
            first = pending_id(await answer(http, gw, session, task_augmented(3, "generate_image", DEAR)))
            second = pending_id(await answer(http, gw, session, call(4, "generate_image", OTHER)))
            assert first != second
        assert gw.upstream_calls("generate_image") == []


async def test_the_2026_tasks_extension_on_a_2025_session_is_ignored(tmp_path: Path) -> None:
    """The MCP Inspector CLI's default: 2025-11-25, declaring the 2026 extension and not the revision's `tasks`. It
    must learn its R-number in a shape it can read, and get its result once approved."""
    with inspector_gateway(tmp_path) as gw:
        async with httpx2.AsyncClient(timeout=30) as http:
            declared: dict[str, Any] = {"extensions": {TASKS_EXTENSION: {}, "io.modelcontextprotocol/ui": {}}}
            result, session = await handshake(http, gw, "2025-11-25", declared)
            assert result["protocolVersion"] == "2025-11-25"
            assert "tasks" in result["capabilities"]  # the revision's own tasks, which this client did not declare
            assert TASKS_EXTENSION not in result["capabilities"].get("extensions", {})
            direct = pending_id(await answer(http, gw, session, call(2, "generate_image", DEAR)))
            # Without the `tasks` capability, params.task is ignored: the SDK path answers a plain hold too.
            through_sdk = pending_id(await answer(http, gw, session, task_augmented(3, "generate_image", OTHER)))
            assert gw.upstream_calls("generate_image") == []
            async with gw.api("ana") as api:
                for public_id in (direct, through_sdk):
                    approved = await approve_via_api(api, public_id[2:])
                    assert approved.status_code == 200, approved.text
            for number, public_id in enumerate((direct, through_sdk), start=4):
                status = call(number, "airlock_approval_status", {"request_id": public_id, "wait_seconds": 10})
                picked = (await answer(http, gw, session, status))["result"]
                assert [block["type"] for block in picked["content"]] == ["image", "image"]
        assert len(gw.upstream_calls("generate_image")) == 2  # each approved call ran once
