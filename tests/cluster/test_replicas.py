"""Two replicas as processes on one PostgreSQL and one Redis: a decision taken on one releases the call held on the
other through NOTIFY, exactly once; a revoked grant and a new policy take effect on the other at once; a rate
limit counts across both."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from sqlalchemy import Engine

from service.db.engine import unit_of_work
from service.grants.service import revoke_grant
from service.policy.cost import EstimatorRegistry
from service.policy_versions import service as policy_versions
from tests.cluster.harness import Cluster, replicas
from tests.conftest import REDIS_URL
from tests.gateway.harness import mcp_client
from tests.gateway.test_holds import DEAR
from tests.policy.helpers import fixture

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("engine", ["postgresql"], indirect=True)]

USERS = {"ana": "approver"}
LIMITED = """
version: "1"
default: deny
tools:
  get_model_capabilities:
    limits: [{counter: capabilities, window: minute, max: 30, scope: global}]
"""


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


async def pending_on(cluster: Cluster, replica: int) -> int:
    async with cluster.api(replica, "ana") as api:
        with anyio.fail_after(15):
            while True:
                items = (await api.get("/api/requests", params={"status": "pending"})).json()["items"]
                if items:
                    return int(items[0]["id"])
                await anyio.sleep(0.05)


async def test_a_call_held_on_one_replica_is_released_by_a_decision_on_the_other(
    engine: Engine, tmp_path: Path
) -> None:
    with replicas(
        tmp_path, count=2, database_url=url_of(engine), policy=fixture("airlock-demo.yaml"), users=USERS
    ) as cluster:
        async with mcp_client(cluster.mcp_url(0), cluster.tokens["agent"]) as agent_on_a:
            results: list[Any] = []
            received_at: list[float] = []

            async def agent() -> None:
                results.append(await agent_on_a.call_tool("generate_image", DEAR))
                received_at.append(time.perf_counter())

            async with anyio.create_task_group() as group:
                group.start_soon(agent)
                request_id = await pending_on(cluster, 1)  # B lists what A holds: one queue
                async with cluster.api(1, "ana") as api_on_b:
                    decided_at = time.perf_counter()
                    approved = await api_on_b.post(f"/api/requests/{request_id}/approve", json={})
                    assert approved.status_code == 200
        assert [block.type for block in results[0].content] == ["image", "image"]
        # Without NOTIFY nothing on A would look again before the call's 50 s budget ran out.
        assert received_at[0] - decided_at < 2.0
        assert len(cluster.upstream_calls("generate_image")) == 1


async def test_a_revoked_grant_and_a_new_policy_reach_the_other_replica_at_once(engine: Engine, tmp_path: Path) -> None:
    with replicas(
        tmp_path, count=2, database_url=url_of(engine), policy=fixture("airlock-demo.yaml"), users=USERS
    ) as cluster:
        async with mcp_client(cluster.mcp_url(0), cluster.tokens["agent"]) as client:
            assert not (await client.call_tool("get_model_capabilities", {})).is_error
            with unit_of_work(engine) as session:  # what the CLI or web UI of another replica does
                policy_versions.apply(
                    session,
                    'version: "1"\ndefault: deny\n',
                    EstimatorRegistry.default({}),
                    origin="test",
                    actor="test",
                    comment="lock everything down",
                )
            await anyio.sleep(0.5)  # well inside the 2 s the policy would otherwise take to be re-read
            denied = await client.call_tool("get_model_capabilities", {})
            assert denied.is_error and denied.content[0].text.startswith("[POLICY DENIED]")  # type: ignore[union-attr]
            with unit_of_work(engine) as session:
                revoke_grant(session, "agent", actor="test")
            await anyio.sleep(0.5)  # inside the grant cache's 2 s
            async with httpx2.AsyncClient(timeout=10) as http:
                refused = await http.post(
                    cluster.mcp_url(0),
                    json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                    headers={"Authorization": f"Bearer {cluster.tokens['agent']}"},
                )
            assert refused.status_code == 401


async def test_a_rate_limit_counts_across_replicas(engine: Engine, tmp_path: Path, redis_prefix: str) -> None:
    with replicas(
        tmp_path,
        count=2,
        database_url=url_of(engine),
        policy=LIMITED,
        users=USERS,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
    ) as cluster:
        outcomes: list[str] = []
        async with (
            mcp_client(cluster.mcp_url(0), cluster.tokens["agent"]) as on_a,
            mcp_client(cluster.mcp_url(1), cluster.tokens["agent"]) as on_b,
        ):
            for i in range(60):
                result = await (on_a if i % 2 == 0 else on_b).call_tool("get_model_capabilities", {})
                outcomes.append("limited" if result.is_error else "allowed")
        assert outcomes.count("allowed") == 30 and outcomes.count("limited") == 30
        assert len(cluster.upstream_calls("get_model_capabilities")) == 30


async def test_a_replica_killed_with_pending_requests_leaves_them_to_the_survivor(
    engine: Engine, tmp_path: Path
) -> None:
    from tests.gateway.test_tasks_2025 import call_as_task, raw

    with replicas(
        tmp_path,
        count=2,
        database_url=url_of(engine),
        policy=fixture("airlock-demo.yaml"),
        users=USERS,
        hold={"pending_cap": 100, "max_wait": "30s"},
    ) as cluster:
        tasks: list[str] = []
        async with mcp_client(cluster.mcp_url(0), cluster.tokens["agent"]) as on_a:
            for i in range(20):
                tasks.append((await call_as_task(on_a, "generate_image", {**DEAR, "prompt": f"task {i}"}))["taskId"])
        blocking = [{**DEAR, "prompt": f"blocking {i}"} for i in range(5)]
        async with mcp_client(cluster.mcp_url(0), cluster.tokens["agent"]) as waiting_on_a:
            async with anyio.create_task_group() as group:
                for arguments in blocking:
                    group.start_soon(waiting_on_a.call_tool, "generate_image", arguments)
                async with cluster.api(1, "ana") as api_on_b:
                    with anyio.fail_after(15):
                        while (
                            len((await api_on_b.get("/api/requests", params={"status": "pending"})).json()["items"])
                            < 25
                        ):
                            await anyio.sleep(0.1)
                cluster.processes[0].kill()  # kill -9 while 25 calls wait
                cluster.processes[0].wait(10)
                group.cancel_scope.cancel()
        async with cluster.api(1, "ana") as api_on_b:
            pending = (await api_on_b.get("/api/requests", params={"status": "pending", "limit": 100})).json()["items"]
            assert len(pending) == 25  # nothing was lost with the replica
            for item in pending:
                assert (await api_on_b.post(f"/api/requests/{item['id']}/approve", json={})).status_code == 200
        async with mcp_client(cluster.mcp_url(1), cluster.tokens["agent"]) as on_b:
            for task_id in tasks:  # the survivor's task runner ran them; any replica answers
                payload = await raw(on_b, "tasks/result", {"taskId": task_id})
                assert [block["type"] for block in payload["content"]] == ["image", "image"]
            for arguments in blocking:  # the same call again attaches to its approved request and gets the result
                result = await on_b.call_tool("generate_image", arguments)
                assert [block.type for block in result.content] == ["image", "image"]
        assert len(cluster.upstream_calls("generate_image")) == 25  # each approved call ran once
