"""Held calls as agents experience them: a blocking wait released by a decision made elsewhere (the REST API),
the pending answer and airlock_approval_status, re-attaching, expiry, rejection, and the policy re-check."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import anyio
import httpx2
import pytest
from mcp import Client

from service.audit.service import export
from service.db.engine import reading
from service.policy import counter_key, grant_owner
from tests.clock import MovableClock
from tests.gateway.harness import RunningGateway, approve_via_api, mcp_client, run_gateway
from tests.policy.helpers import fixture

pytestmark = pytest.mark.anyio

DEAR: dict[str, Any] = {"prompt": "four lighthouses", "provider": "openai", "model": "gpt-image-1", "n": 2}
USERS = {"ana": "approver", "root": "admin", "vic": "viewer"}
DENY_IMAGES = 'version: "1"\ndefault: deny\ntools:\n  generate_image: {action: deny, on_deny: "Images are off."}\n'


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/airlock.db"


def denial_rule(gw: RunningGateway) -> str | None:
    rule = gw.state.gateway.policy.current().policy.rule_for("generate_image")
    return rule.pointer if rule is not None and rule.action == "deny" else None


class QueueApi(Protocol):
    """Where the REST API of the queue is: a RunningGateway, or one replica of a cluster."""

    def api(self, user: str) -> httpx2.AsyncClient: ...


@asynccontextmanager
async def held_call(
    gw: QueueApi, client: Client, tool: str, arguments: dict[str, Any], **options: Any
) -> AsyncIterator[tuple[int, list[Any]]]:
    """An agent's call running in the background: yields its request id once it is held, and the list that holds its
    result when the block ends (the block waits for the call to return)."""
    results: list[Any] = []

    async def agent() -> None:
        results.append(await client.call_tool(tool, arguments, **options))

    async with anyio.create_task_group() as group:
        group.start_soon(agent)
        yield await pending_request_id(gw), results


async def pending_request_id(gw: QueueApi, timeout: float = 10) -> int:
    async with gw.api("ana") as api:
        with anyio.fail_after(timeout):
            while True:
                items = (await api.get("/api/requests", params={"status": "pending"})).json()["items"]
                if items:
                    return int(items[0]["id"])
                await anyio.sleep(0.05)


async def test_a_blocking_hold_is_released_by_an_approval(tmp_path: Path) -> None:
    with run_gateway(
        tmp_path, database_url=sqlite_url(tmp_path), policy=fixture("airlock-demo.yaml"), users=USERS
    ) as gw:
        async with mcp_client(gw.mcp_url, gw.token) as client:
            heartbeats: list[str] = []

            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                heartbeats.append(message or "")

            async with held_call(gw, client, "generate_image", DEAR, progress_callback=on_progress) as (
                request_id,
                results,
            ):
                assert gw.upstream_calls("generate_image") == []  # held: nothing ran yet
                async with gw.api("vic") as viewer:
                    refused = await approve_via_api(viewer, request_id)
                    assert refused.status_code == 403
                async with gw.api("ana") as api:
                    approved = await approve_via_api(api, request_id, comment="ok")
                    assert approved.status_code == 200, approved.text
                    again = await approve_via_api(api, request_id)
                    assert again.status_code == 409
                    assert "already approved by ana" in again.json()["error"]
        result = results[0]
        assert not result.is_error
        assert [block.type for block in result.content] == ["image", "image"]
        assert any("waiting for human approval" in h for h in heartbeats)
        assert len(gw.upstream_calls("generate_image")) == 1
        async with gw.api("root") as api:
            detail = (await api.get(f"/api/requests/{request_id}")).json()
        assert detail["status"] == "succeeded"
        assert [e["action"] for e in detail["events"]] == ["request.created", "request.approved", "request.executed"]


async def test_a_rejection_reaches_the_agent_with_the_reason(tmp_path: Path) -> None:
    with run_gateway(
        tmp_path, database_url=sqlite_url(tmp_path), policy=fixture("airlock-demo.yaml"), users=USERS
    ) as gw:
        async with mcp_client(gw.mcp_url, gw.token, mode="2026-07-28") as client:
            async with held_call(gw, client, "generate_image", DEAR) as (request_id, results):
                async with gw.api("ana") as api:
                    assert (
                        await api.post(f"/api/requests/{request_id}/reject", json={"reason": "too dear"})
                    ).status_code == 200
        assert results[0].is_error
        assert results[0].content[0].text.startswith("[REJECTED] by ana: too dear")
        assert gw.upstream_calls() == []


async def test_pending_answer_then_status_tool_then_stored_result(tmp_path: Path) -> None:
    with run_gateway(
        tmp_path,
        database_url=sqlite_url(tmp_path),
        policy=fixture("airlock-demo.yaml"),
        users=USERS,
        hold={"max_wait": "1s"},
    ) as gw:
        async with mcp_client(gw.mcp_url, gw.token) as client:
            first = await client.call_tool("generate_image", DEAR)
            assert not first.is_error
            text = first.content[0].text  # type: ignore[union-attr]
            assert text.startswith("Not executed yet: approval pending (R-")
            public_id = re.search(r"R-\d+", text).group(0)  # type: ignore[union-attr]
            structured = first.structured_content or {}
            assert (structured["status"], structured["request_id"]) == ("pending", public_id)
            again = await client.call_tool("generate_image", DEAR)  # the same call attaches to the same request
            assert public_id in again.content[0].text  # type: ignore[union-attr]
            async with gw.api("ana") as api:
                listed = (await api.get("/api/requests", params={"status": "pending"})).json()["items"]
                assert [item["public_id"] for item in listed] == [public_id]
                assert (await approve_via_api(api, public_id[2:])).status_code == 200
            assert gw.upstream_calls("generate_image") == []  # approved, but nobody was there to receive it yet
            picked = await client.call_tool("airlock_approval_status", {"request_id": public_id, "wait_seconds": 5})
            assert not picked.is_error
            assert picked.content[0].type == "image"
            second = await client.call_tool("airlock_approval_status", {"request_id": public_id})
            assert second.content[0].type == "image"
            assert len(gw.upstream_calls("generate_image")) == 1  # the second pickup did not run it again
            unknown = await client.call_tool("airlock_approval_status", {"request_id": "R-999"})
            assert unknown.is_error


async def test_expiry_never_runs_the_call(tmp_path: Path) -> None:
    clock = MovableClock.from_now()  # the gateway's: the test moves it past the 15 minutes
    with run_gateway(
        tmp_path,
        database_url=sqlite_url(tmp_path),
        policy=fixture("airlock-demo.yaml"),
        users=USERS,
        hold={"max_wait": "20m"},  # on the same clock: the call is still waiting at the deadline
        clock=clock,
    ) as gw:
        async with mcp_client(gw.mcp_url, gw.token) as client:
            with anyio.fail_after(20):
                async with held_call(gw, client, "generate_image", DEAR) as (_, results):
                    clock.advance(15 * 60 + 1)  # the sweeper's next pass finds the deadline passed
        result = results[0]
        assert result.is_error
        assert result.content[0].text.startswith("[EXPIRED] approval timed out, not executed")
        assert gw.upstream_calls() == []


def image_spend(gw: RunningGateway) -> int:
    """The demo policy's daily image budget of the first grant, in micro-dollars, as the counters hold it."""
    engine = gw.state.gateway.policy.current()
    now = time.time()
    return engine.counters.peek([counter_key("image_spend", grant_owner("1"), 86400, now)], now)[0]


async def test_an_approval_does_not_run_what_the_policy_now_denies(tmp_path: Path) -> None:
    with run_gateway(
        tmp_path, database_url=sqlite_url(tmp_path), policy=fixture("airlock-demo.yaml"), users=USERS
    ) as gw:
        async with mcp_client(gw.mcp_url, gw.token) as client:
            async with held_call(gw, client, "generate_image", DEAR) as (request_id, results):
                # The file changes while the call waits; the holder imports it as a new version.
                Path(gw.settings.policy or "").write_text(DENY_IMAGES)
                with anyio.fail_after(10):
                    while denial_rule(gw) is None:
                        await anyio.sleep(0.2)
                async with gw.api("ana") as api:
                    assert (await approve_via_api(api, request_id)).status_code == 200
        assert results[0].is_error
        assert results[0].content[0].text.startswith("[POLICY DENIED] Images are off.")
        assert gw.upstream_calls() == []
        assert image_spend(gw) == 0  # refused at release, as a rejection: the held call's budget came back


async def test_an_agent_that_stops_waiting_leaves_a_decidable_request(tmp_path: Path) -> None:
    with run_gateway(
        tmp_path, database_url=sqlite_url(tmp_path), policy=fixture("airlock-demo.yaml"), users=USERS
    ) as gw:
        async with mcp_client(gw.mcp_url, gw.token) as client:
            with anyio.move_on_after(1.5):
                await client.call_tool("generate_image", DEAR)
        async with gw.api("ana") as api:
            with anyio.fail_after(10):
                while True:
                    item = (await api.get("/api/requests")).json()["items"][0]
                    if item["requester_gone"]:
                        break
                    await anyio.sleep(0.1)
            assert item["status"] == "pending"
            assert item["id"] not in gw.state.bus.waiting()  # no call in the gateway waits on it any more
            assert (await approve_via_api(api, item["id"])).status_code == 200
            # Approved, but never run for a caller who left: nothing that could run it heard the approval.
            assert (await api.get(f"/api/requests/{item['id']}")).json()["status"] == "approved"
        assert gw.upstream_calls() == []


async def test_rest_api_needs_a_user_token_and_validates_input(tmp_path: Path) -> None:
    with run_gateway(
        tmp_path, database_url=sqlite_url(tmp_path), policy=fixture("airlock-demo.yaml"), users=USERS
    ) as gw:
        async with httpx2.AsyncClient(base_url=gw.base_url, timeout=10) as anonymous:
            assert (await anonymous.get("/api/requests")).status_code == 401
            agent_token = await anonymous.get("/api/requests", headers={"Authorization": f"Bearer {gw.token}"})
            assert agent_token.status_code == 401  # a grant token is not a user's API token
        async with gw.api("ana") as api:
            assert (await api.get("/api/requests", params={"status": "sleeping"})).status_code == 400
            assert (await api.get("/api/requests/424242")).status_code == 404
            assert (await api.post("/api/requests/424242/reject", json={})).status_code == 422
            assert (await api.post("/api/requests/424242/reject", json={"reason": "x"})).status_code == 404
            assert (await api.get("/openapi.json")).status_code == 200


async def _unused(client: Client) -> None:  # keeps the import honest for type checkers
    await client.list_tools()


async def test_approve_and_remember_lets_the_same_call_through_later(tmp_path: Path) -> None:
    with run_gateway(
        tmp_path,
        database_url=sqlite_url(tmp_path),
        policy=fixture("airlock-demo.yaml"),
        users=USERS,
        hold={"max_wait": "1s"},
    ) as gw:
        async with mcp_client(gw.mcp_url, gw.token) as client:
            first = await client.call_tool("generate_image", DEAR)
            public_id = re.search(r"R-\d+", first.content[0].text).group(0)  # type: ignore[union-attr]
            async with gw.api("ana") as api:
                remembered = await approve_via_api(
                    api, public_id[2:], remember={"scope": "arguments", "duration": "1h"}
                )
                assert remembered.status_code == 200
            assert (await client.call_tool("airlock_approval_status", {"request_id": public_id})).content[
                0
            ].type == "image"
            later = await client.call_tool("generate_image", DEAR)  # passes at once, under the standing approval
            assert later.content[0].type == "image"
            other = await client.call_tool("generate_image", {**DEAR, "prompt": "something else"})
            assert other.content[0].text.startswith("Not executed yet")  # type: ignore[union-attr]
        assert len(gw.upstream_calls("generate_image")) == 2


async def test_pending_cap_denies_a_flood_of_held_calls(tmp_path: Path) -> None:
    with run_gateway(
        tmp_path,
        database_url=sqlite_url(tmp_path),
        policy=fixture("airlock-demo.yaml"),
        users=USERS,
        hold={"max_wait": "0.2s", "pending_cap": 3},
    ) as gw:
        async with mcp_client(gw.mcp_url, gw.token) as client:
            results = [await client.call_tool("generate_image", {**DEAR, "prompt": f"image {i}"}) for i in range(5)]
            again = await client.call_tool("generate_image", {**DEAR, "prompt": "image 0"})
        texts = [r.content[0].text for r in results]  # type: ignore[union-attr]
        assert [t.startswith("Not executed yet") for t in texts] == [True, True, True, False, False]
        assert texts[3].startswith("[POLICY DENIED] 3 of this agent's calls already wait for approval")
        # the same call again attaches to its open request: it is not refused by the cap
        assert again.content[0].text.startswith("Not executed yet")  # type: ignore[union-attr]
        async with gw.api("ana") as api:
            assert len((await api.get("/api/requests", params={"status": "pending"})).json()["items"]) == 3
        gw.state.writer.stop()
        with reading(gw.state.runtime.engine) as session:
            rows = [json.loads(line) for line in export(session, since=None, until=None, fmt="jsonl")]
    decisions = [(r["action"], r["outcome"]) for r in rows if r["kind"] == "call"]
    # a refusal by the cap is audited as the denial it is, never as a held call
    assert decisions == [("call.held", "hold")] * 3 + [("call.denied", "deny")] * 2 + [("call.held", "hold")]


async def test_task_mode_clients_get_a_task_and_collect_the_result(tmp_path: Path) -> None:
    import httpx2 as _httpx
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    from tests.gateway.tasks_client import TasksExtension

    with run_gateway(
        tmp_path, database_url=sqlite_url(tmp_path), policy=fixture("airlock-demo.yaml"), users=USERS
    ) as gw:
        extension = TasksExtension()
        http = _httpx.AsyncClient(headers={"Authorization": f"Bearer {gw.token}"}, timeout=30)
        async with (
            http,
            Client(
                streamable_http_client(gw.mcp_url, http_client=http),
                mode="2026-07-28",
                cache=None,
                extensions=[extension],
            ) as client,
        ):
            async with held_call(gw, client, "generate_image", DEAR) as (request_id, results):
                with anyio.fail_after(10):
                    while not extension.polls:
                        await anyio.sleep(0.05)
                assert extension.created[0].task_id == f"R-{request_id}"
                assert "awaiting approval" in (extension.polls[0].get("statusMessage") or "")
                async with gw.api("ana") as api:
                    assert (await approve_via_api(api, request_id)).status_code == 200
            rejected_results: list[Any] = []

            async def second() -> None:
                rejected_results.append(await client.call_tool("generate_image", {**DEAR, "prompt": "another"}))

            async with anyio.create_task_group() as group:
                group.start_soon(second)
                with anyio.fail_after(10):
                    while True:
                        async with gw.api("ana") as api:
                            items = (await api.get("/api/requests", params={"status": "pending"})).json()["items"]
                        if items:
                            break
                        await anyio.sleep(0.05)
                async with gw.api("ana") as api:
                    assert (
                        await api.post(f"/api/requests/{items[0]['id']}/reject", json={"reason": "no"})
                    ).status_code == 200
        assert [b.type for b in results[0].content] == ["image", "image"]
        assert rejected_results[0].is_error
        assert rejected_results[0].content[0].text.startswith("[REJECTED] by ana: no")
        assert len(gw.upstream_calls("generate_image")) == 1


async def test_pending_requests_and_tasks_survive_a_restart(tmp_path: Path) -> None:
    import httpx2 as _httpx
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    from tests.gateway.tasks_client import RAW, TaskCreated, TasksExtension

    count = 100
    options: dict[str, Any] = {"hold": {"pending_cap": 1000}}
    roomy = fixture("airlock-demo.yaml").replace("max: 30,", "max: 1000,").replace("max: 20.0,", "max: 1000.0,")
    with run_gateway(tmp_path, database_url=sqlite_url(tmp_path), policy=roomy, users=USERS, **options) as gw:
        http = _httpx.AsyncClient(headers={"Authorization": f"Bearer {gw.token}"}, timeout=30)
        async with (
            http,
            Client(
                streamable_http_client(gw.mcp_url, http_client=http),
                mode="2026-07-28",
                cache=None,
                extensions=[TasksExtension()],
            ) as client,
        ):
            task_ids = []
            for i in range(count):
                created = await client.session.call_tool(
                    "generate_image", {**DEAR, "prompt": f"image {i}"}, allow_claimed=True
                )
                assert isinstance(created, TaskCreated)
                task_ids.append(created.task_id)
        first = gw
    # A new process on the same database: everything is still there and decidable.
    with run_gateway(tmp_path, database_url=sqlite_url(tmp_path), policy=roomy, reuse=first, **options) as gw:
        async with gw.api("ana") as api:
            pending = (await api.get("/api/requests", params={"status": "pending", "limit": 200})).json()["items"]
            assert len(pending) == count
            for item in pending:
                assert (await approve_via_api(api, item["id"])).status_code == 200
        http = _httpx.AsyncClient(headers={"Authorization": f"Bearer {gw.token}"}, timeout=30)
        async with (
            http,
            Client(
                streamable_http_client(gw.mcp_url, http_client=http),
                mode="2026-07-28",
                cache=None,
                extensions=[TasksExtension()],
            ) as client,
        ):
            completed = 0
            with anyio.fail_after(120):
                for task_id in task_ids:
                    while True:
                        view = await client.session.send_request(  # type: ignore[type-var]
                            __import__("mcp_types").GetTaskRequest(
                                params=__import__("mcp_types").GetTaskRequestParams(task_id=task_id)
                            ),
                            RAW,
                        )
                        if view["status"] == "completed":
                            assert view["result"]["content"][0]["type"] == "image"
                            completed += 1
                            break
                        await anyio.sleep(0.1)
        assert completed == count
        assert len(gw.upstream_calls("generate_image")) == count


async def test_a_decision_taken_in_another_process_wakes_the_waiting_call(tmp_path: Path) -> None:
    """The CLI decides straight in the database; the held call notices within about a second."""
    from service.approvals import service as approvals
    from service.approvals.schemas import Approver, Verdict
    from service.db.engine import make_engine, unit_of_work
    from service.users.models import Role

    with run_gateway(
        tmp_path, database_url=sqlite_url(tmp_path), policy=fixture("airlock-demo.yaml"), users=USERS
    ) as gw:
        async with mcp_client(gw.mcp_url, gw.token) as client:
            async with held_call(gw, client, "generate_image", DEAR) as (request_id, results):
                engine = make_engine(sqlite_url(tmp_path))
                with unit_of_work(engine) as session:  # not through the server: no event reaches its bus
                    approvals.apply_verdict(session, request_id, Approver("ana", Role.APPROVER, "cli"), Verdict.APPROVE)
                engine.dispose()
                decided = anyio.current_time()
                with anyio.fail_after(5):
                    while not results:
                        await anyio.sleep(0.05)
                assert anyio.current_time() - decided < 3
        assert results[0].content[0].type == "image"
