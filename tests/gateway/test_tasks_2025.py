"""2025-11-25 task-augmented tools/call, from a real mcp 2.3 client on the 2025 handshake. The SDK client has no
tasks API, so the task methods go through its dispatcher as raw requests, exactly as they travel on the wire."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from service.gateway.sdk_compat import raw_request
from tests.gateway.harness import RunningGateway, approve_via_api, run_gateway
from tests.gateway.tasks_client import core_tasks_client
from tests.gateway.test_holds import DEAR, USERS, pending_request_id, sqlite_url
from tests.policy.helpers import fixture

pytestmark = pytest.mark.anyio

CHEAP: dict[str, Any] = {"prompt": "a pebble", "provider": "openai", "model": "gpt-image-1", "quality": "draft"}
RELATED_TASK = "io.modelcontextprotocol/related-task"


async def raw(client: Client, method: str, params: dict[str, Any]) -> dict[str, Any]:
    return await raw_request(client, method, params)


async def call_as_task(client: Client, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    created = await raw(client, "tools/call", {"name": name, "arguments": arguments, "task": {"ttl": 60_000}})
    task: dict[str, Any] = created["task"]
    return task


async def decide(gw: RunningGateway, request_id: int, verdict: str, **body: Any) -> None:
    async with gw.api("ana") as api:
        if verdict == "approve":
            answer = await approve_via_api(api, request_id, **body)
        else:
            answer = await api.post(f"/api/requests/{request_id}/{verdict}", json=body)
        assert answer.status_code == 200, answer.text


async def test_a_held_call_becomes_a_task_that_an_approval_completes(tmp_path: Path) -> None:
    with run_gateway(
        tmp_path, database_url=sqlite_url(tmp_path), policy=fixture("airlock-demo.yaml"), users=USERS
    ) as gw:
        async with core_tasks_client(gw.mcp_url, gw.token) as client:
            assert client.protocol_version == "2025-11-25"
            tasks = client.server_capabilities.tasks
            assert tasks is not None and tasks.requests is not None and tasks.requests.tools is not None
            assert tasks.requests.tools.call is not None and tasks.list is not None and tasks.cancel is not None
            listed = {t["name"]: t for t in (await raw(client, "tools/list", {}))["tools"]}
            assert listed["generate_image"]["execution"] == {"taskSupport": "optional"}  # the policy may hold it
            assert "execution" not in listed["get_model_capabilities"]  # never held: no task support advertised
            assert "execution" not in listed["airlock_approval_status"]

            task = await call_as_task(client, "generate_image", DEAR)
            request_id = await pending_request_id(gw)
            assert task["taskId"] == f"R-{request_id}"
            assert task["status"] == "working"
            assert "awaiting approval by approver" in task["statusMessage"]
            assert task["ttl"] >= 15 * 60 * 1000 and task["pollInterval"] > 0
            assert gw.upstream_calls("generate_image") == []  # held: nothing ran

            assert (await raw(client, "tasks/get", {"taskId": task["taskId"]}))["status"] == "working"
            listed_tasks = (await raw(client, "tasks/list", {}))["tasks"]
            assert [t["taskId"] for t in listed_tasks] == [task["taskId"]]

            results: list[dict[str, Any]] = []

            async def collect() -> None:  # tasks/result blocks until the task is final
                results.append(await raw(client, "tasks/result", {"taskId": task["taskId"]}))

            async with anyio.create_task_group() as group:
                group.start_soon(collect)
                await anyio.wait_all_tasks_blocked()  # tasks/result is sent and waits for its answer
                # A request sent after it is answered while it still waits: it blocks on the held task.
                assert (await raw(client, "tasks/get", {"taskId": task["taskId"]}))["status"] == "working"
                assert results == []
                await decide(gw, request_id, "approve")
            payload = results[0]
            assert [block["type"] for block in payload["content"]] == ["image", "image"]
            assert payload["_meta"][RELATED_TASK] == {"taskId": task["taskId"]}
            final = await raw(client, "tasks/get", {"taskId": task["taskId"]})
            assert final["status"] == "completed"
            assert "approved by ana" not in final["statusMessage"]  # final states say so, not "running"
        assert len(gw.upstream_calls("generate_image")) == 1
        async with gw.api("ana") as api:
            detail = (await api.get(f"/api/requests/{request_id}")).json()
        created = next(e for e in detail["events"] if e["action"] == "request.created")
        assert created["details"]["hold_mode"] == "task"


async def test_rejection_fails_the_task_and_cancel_withdraws_it(tmp_path: Path) -> None:
    with run_gateway(
        tmp_path, database_url=sqlite_url(tmp_path), policy=fixture("airlock-demo.yaml"), users=USERS
    ) as gw:
        async with core_tasks_client(gw.mcp_url, gw.token) as client:
            rejected = await call_as_task(client, "generate_image", DEAR)
            await decide(gw, int(rejected["taskId"][2:]), "reject", reason="too dear")
            assert (await raw(client, "tasks/get", {"taskId": rejected["taskId"]}))["status"] == "failed"
            payload = await raw(client, "tasks/result", {"taskId": rejected["taskId"]})
            assert payload["isError"] is True
            assert payload["content"][0]["text"].startswith("[REJECTED] by ana: too dear")

            withdrawn = await call_as_task(client, "generate_image", {**DEAR, "prompt": "a second one"})
            cancelled = await raw(client, "tasks/cancel", {"taskId": withdrawn["taskId"]})
            assert cancelled["taskId"] == withdrawn["taskId"] and cancelled["status"] == "cancelled"
            with pytest.raises(MCPError) as again:
                await raw(client, "tasks/cancel", {"taskId": withdrawn["taskId"]})
            assert again.value.error.code == -32602 and "already cancelled" in again.value.error.message
            with pytest.raises(MCPError) as late:  # a decided request is no longer the agent's to withdraw
                await raw(client, "tasks/cancel", {"taskId": rejected["taskId"]})
            assert late.value.error.code == -32602
            async with gw.api("ana") as api:
                refused = await approve_via_api(api, withdrawn["taskId"][2:])
            assert refused.status_code == 409  # cancelled: an approval can no longer run it
        assert gw.upstream_calls("generate_image") == []


async def test_a_call_the_policy_answers_at_once_is_a_finished_task_bound_to_its_grant(tmp_path: Path) -> None:
    with run_gateway(
        tmp_path,
        database_url=sqlite_url(tmp_path),
        policy=fixture("airlock-demo.yaml"),
        users=USERS,
        grants={"agent": None, "other": None},
    ) as gw:
        async with core_tasks_client(gw.mcp_url, gw.tokens["agent"]) as client:
            allowed = await call_as_task(client, "generate_image", CHEAP)
            assert allowed["status"] == "completed" and allowed["taskId"].startswith("T-")
            payload = await raw(client, "tasks/result", {"taskId": allowed["taskId"]})
            assert payload["content"][0]["type"] == "image"
            assert payload["_meta"][RELATED_TASK] == {"taskId": allowed["taskId"]}
            denied = await call_as_task(client, "generate_image", {**CHEAP, "directory": "/etc"})
            assert denied["status"] == "failed"  # an isError result fails a 2025 task
            denial = await raw(client, "tasks/result", {"taskId": denied["taskId"]})
            assert denial["content"][0]["text"].startswith("[POLICY DENIED]")
            with pytest.raises(MCPError) as malformed:
                await raw(client, "tools/call", {"name": 42, "task": {}})
            assert malformed.value.error.code == -32602
        assert len(gw.upstream_calls("generate_image")) == 1  # the denied one never reached the upstream
        async with core_tasks_client(gw.mcp_url, gw.tokens["other"]) as stranger:
            for method in ("tasks/get", "tasks/result", "tasks/cancel"):
                with pytest.raises(MCPError) as unknown:
                    await raw(stranger, method, {"taskId": allowed["taskId"]})
                assert unknown.value.error.code == -32602
            assert (await raw(stranger, "tasks/list", {}))["tasks"] == []


async def test_a_task_attached_to_a_call_held_the_plain_way_is_completed_by_the_runner(tmp_path: Path) -> None:
    with run_gateway(
        tmp_path,
        database_url=sqlite_url(tmp_path),
        policy=fixture("airlock-demo.yaml"),
        users=USERS,
        hold={"max_wait": "0.3s"},
    ) as gw:
        async with core_tasks_client(gw.mcp_url, gw.token) as client:
            pending = await client.call_tool("generate_image", DEAR)  # the pending answer: R-1, held "blocking"
            assert pending.content[0].text.startswith("Not executed yet")  # type: ignore[union-attr]
            with pytest.raises(MCPError) as not_a_task:
                await raw(client, "tasks/get", {"taskId": "R-1"})  # a plain hold is no task
            assert not_a_task.value.error.code == -32602
            task = await call_as_task(client, "generate_image", DEAR)  # the same call again, now as a task
            assert task["taskId"] == "R-1"
            await decide(gw, 1, "approve")
            payload = await raw(client, "tasks/result", {"taskId": "R-1"})
            assert [block["type"] for block in payload["content"]] == ["image", "image"]
            for odd in ("R-²", "R-99999999999999999999", "²"):
                with pytest.raises(MCPError) as unknown:
                    await raw(client, "tasks/get", {"taskId": odd})
                assert unknown.value.error.code == -32602
            with pytest.raises(MCPError) as cursor:
                await raw(client, "tasks/list", {"cursor": "²"})
            assert cursor.value.error.code == -32602
            status = await client.call_tool("airlock_approval_status", {"request_id": "R-²"})
            assert status.is_error and status.content[0].text.startswith("[NOT FOUND]")  # type: ignore[union-attr]
        assert len(gw.upstream_calls("generate_image")) == 1


def test_results_of_at_once_tasks_are_kept_within_a_byte_budget() -> None:
    from mcp_types import CallToolResult, TextContent

    from service.gateway.tasks_2025 import FinishedTasks

    kept = FinishedTasks(max_bytes=3_000)
    big = CallToolResult(content=[TextContent(type="text", text="x" * 1_000)])
    first, second, third = kept.add(1, big), kept.add(1, big), kept.add(1, big)
    assert kept.get(1, first.task_id) is None  # the oldest went first
    assert kept.get(1, second.task_id) is not None and kept.get(1, third.task_id) is not None
    assert kept.get(2, third.task_id) is None  # bound to its grant
