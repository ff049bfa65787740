"""Two replicas as processes on one PostgreSQL and one Redis: a decision taken on one releases the call held on the
other through NOTIFY, exactly once; a revoked grant and a new policy take effect on the other at once; a rate
limit counts across both."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy import Engine
from sqlmodel import select

from service.approvals.standing import list_standing, revoke_standing
from service.db.engine import unit_of_work
from service.grants.service import revoke_grant
from service.policy.cost import EstimatorRegistry
from service.policy_versions import service as policy_versions
from service.users.models import Role, User
from service.users.service import set_role
from tests.cluster.harness import Cluster, replicas
from tests.conftest import REDIS_URL
from tests.gateway.harness import approve_via_api, mcp_client
from tests.gateway.tasks_client import TasksExtension, core_tasks_client
from tests.gateway.test_holds import DEAR, held_call, pending_request_id
from tests.policy.helpers import fixture
from tests.slack.fake_slack import BOT_TOKEN, SIGNING_SECRET, fake_slack, form_body

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("engine", ["postgresql"], indirect=True)]

USERS = {"ana": "approver"}
# The replicas are processes of their own, whose clocks a test cannot move: a window that cannot end during the test
# (ten years, aligned to the epoch) keeps the burst in one window. Boundaries are tested with a moved clock in
# tests/policy/test_limits.py.
LIMITED = """
version: "1"
default: deny
tools:
  get_model_capabilities:
    limits: [{counter: capabilities, window: 3650d, max: 30, scope: global}]
"""


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


@dataclass(frozen=True)
class OnReplica:
    """One replica's REST API, for the gateway tests' helpers (held_call, pending_request_id)."""

    cluster: Cluster
    replica: int

    def api(self, user: str) -> httpx2.AsyncClient:
        return self.cluster.api(self.replica, user)


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
                request_id = await pending_request_id(
                    OnReplica(cluster, 1), timeout=15
                )  # B lists what A holds: one queue
                async with cluster.api(1, "ana") as api_on_b:
                    decided_at = time.perf_counter()
                    approved = await approve_via_api(api_on_b, request_id)
                    assert approved.status_code == 200
        assert [block.type for block in results[0].content] == ["image", "image"]
        # Without NOTIFY nothing on A would look again before the call's 50 s budget ran out.
        assert received_at[0] - decided_at < 2.0
        assert len(cluster.upstream_calls("generate_image")) == 1


async def test_a_slack_click_delivered_to_the_other_replica_releases_the_call(engine: Engine, tmp_path: Path) -> None:
    async with fake_slack() as fake:
        slack = {
            "bot_token": BOT_TOKEN,
            "signing_secret": SIGNING_SECRET,
            "channel": "#airlock",
            "api_base_url": fake.api_url,
        }
        with replicas(
            tmp_path,
            count=2,
            database_url=url_of(engine),
            policy=fixture("airlock-demo.yaml"),
            users=USERS,
            slack=slack,
            public_url="http://airlock.test",
        ) as cluster:
            with unit_of_work(engine) as session:
                ana = session.exec(select(User).where(User.username == "ana")).one()
                ana.slack_user_id = "U0ANA"
                session.add(ana)
            async with (
                mcp_client(cluster.mcp_url(0), cluster.tokens["agent"]) as agent_on_a,
                held_call(OnReplica(cluster, 1), agent_on_a, "generate_image", DEAR) as (request_id, results),
            ):
                body = form_body(await fake.press("U0ANA", "approve", request_id))
                headers = {"Content-Type": "application/x-www-form-urlencoded", **fake.signed(body)}
                async with httpx2.AsyncClient(base_url=cluster.urls[1], timeout=10) as http:  # Slack calls B
                    answer = await http.post("/slack/interactions", content=body, headers=headers)
                assert (answer.status_code, answer.text) == (200, "")
            assert [block.type for block in results[0].content] == ["image", "image"]
            # A posted the card (the call was held there); B's decision is shown on that one card, not a new one.
            await fake.wait_for("chat.update", contains="*Approved* by ana")
            assert len([c for c in fake.cards() if f"R-{request_id}: " in str(c.args.get("text"))]) == 1
        assert len(cluster.upstream_calls("generate_image")) == 1


class RoundRobin(httpx2.AsyncBaseTransport):
    """What a load balancer without stickiness does: each HTTP request to the next replica in turn."""

    def __init__(self, urls: list[str]) -> None:
        self._targets = [httpx2.URL(url) for url in urls]
        self._inner = httpx2.AsyncHTTPTransport()
        self.served = [0] * len(urls)
        self._next = 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        replica, self._next = self._next, (self._next + 1) % len(self._targets)
        self.served[replica] += 1
        target = self._targets[replica]
        request.url = request.url.copy_with(host=target.host, port=target.port)
        request.headers["Host"] = f"{target.host}:{target.port}"
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_stateless_2026_requests_are_served_by_any_replica_held_calls_included(
    engine: Engine, tmp_path: Path
) -> None:
    with replicas(
        tmp_path, count=2, database_url=url_of(engine), policy=fixture("airlock-demo.yaml"), users=USERS
    ) as cluster:
        balancer = RoundRobin(cluster.urls)
        extension = TasksExtension(poll_seconds=0.05)
        http = httpx2.AsyncClient(
            transport=balancer, headers={"Authorization": f"Bearer {cluster.tokens['agent']}"}, timeout=30
        )
        async with (
            http,
            Client(
                streamable_http_client(cluster.mcp_url(0), http_client=http),
                mode="2026-07-28",
                cache=None,
                extensions=[extension],
            ) as client,
        ):
            for _ in range(4):
                assert not (await client.call_tool("get_model_capabilities", {})).is_error
            async with held_call(OnReplica(cluster, 1), client, "generate_image", DEAR) as (request_id, results):
                with anyio.fail_after(10):
                    while len(extension.polls) < 4:  # tasks/get has been answered by both replicas by now
                        await anyio.sleep(0.05)
                async with cluster.api(1, "ana") as api_on_b:
                    assert (await approve_via_api(api_on_b, request_id)).status_code == 200
        assert [block.type for block in results[0].content] == ["image", "image"]
        assert extension.created[0].task_id == f"R-{request_id}"
        assert min(balancer.served) >= 5  # neither replica sat idle: no request needed the one before it
        assert len(cluster.upstream_calls("generate_image")) == 1
        assert len(cluster.upstream_calls("get_model_capabilities")) == 4


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


async def test_a_role_changed_on_one_replica_applies_on_the_other_at_once(engine: Engine, tmp_path: Path) -> None:
    from tests.gateway.test_tasks_2025 import call_as_task

    with replicas(
        tmp_path, count=2, database_url=url_of(engine), policy=fixture("airlock-demo.yaml"), users=USERS
    ) as cluster:
        async with core_tasks_client(cluster.mcp_url(0), cluster.tokens["agent"]) as on_a:
            await call_as_task(on_a, "generate_image", DEAR)
        request_id = await pending_request_id(OnReplica(cluster, 1), timeout=15)
        async with cluster.api(1, "ana") as api_on_b:
            with unit_of_work(engine) as session:  # what the web UI or CLI on A does
                set_role(session, "ana", Role.VIEWER, actor="test")
            refused = await approve_via_api(api_on_b, request_id)
            assert refused.status_code == 403
            with unit_of_work(engine) as session:
                set_role(session, "ana", Role.APPROVER, actor="test")
            assert (await approve_via_api(api_on_b, request_id)).status_code == 200


async def test_a_standing_approval_made_and_revoked_on_one_replica_applies_on_the_other_at_once(
    engine: Engine, tmp_path: Path
) -> None:
    with replicas(
        tmp_path, count=2, database_url=url_of(engine), policy=fixture("airlock-demo.yaml"), users=USERS
    ) as cluster:
        async with mcp_client(cluster.mcp_url(0), cluster.tokens["agent"]) as on_a:
            # A looks the grant's standing approvals up (none) and holds the call.
            async with held_call(OnReplica(cluster, 1), on_a, "generate_image", DEAR) as (request_id, _):
                async with cluster.api(1, "ana") as api_on_b:
                    remember = {"remember": {"scope": "tool", "duration": "1h"}}
                    approved = await approve_via_api(api_on_b, request_id, **remember)
                    assert approved.status_code == 200
            # Well inside the 2 s A would otherwise keep its "none": the next image is not held.
            with anyio.fail_after(1.5):
                passed = await on_a.call_tool("generate_image", {**DEAR, "prompt": "remembered"})
            assert [block.type for block in passed.content] == ["image", "image"]
            with unit_of_work(engine) as session:  # B's web UI revokes it
                [standing] = list_standing(session)
                assert standing.id is not None
                revoke_standing(session, standing.id, actor="user:ana")
            async with anyio.create_task_group() as group:
                group.start_soon(on_a.call_tool, "generate_image", {**DEAR, "prompt": "after the revoke"})
                with anyio.fail_after(1.5):  # held again at once, not let through on a stale cache
                    await pending_request_id(OnReplica(cluster, 1), timeout=15)
                group.cancel_scope.cancel()
        assert len(cluster.upstream_calls("generate_image")) == 2


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


async def all_pending(api: httpx2.AsyncClient) -> list[dict[str, Any]]:
    """Every pending request, page by page, as an approver's script would list them."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"status": "pending", "limit": 200, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/api/requests", params=params)).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


HELD_UNLIMITED = """
version: "1"
default: deny
tools:
  generate_image:
    require_approval: {when: "true", approvers: {roles: [approver]}, timeout: 15m}
"""
# `make chaos` and `make test` run it with 500; AIRLOCK_CHAOS_PENDING scales it down on a slow machine.
PENDING = int(os.environ.get("AIRLOCK_CHAOS_PENDING", "500"))


async def test_a_replica_killed_with_pending_requests_leaves_them_to_the_survivor(
    engine: Engine, tmp_path: Path
) -> None:
    from tests.gateway.test_tasks_2025 import call_as_task, raw

    blocking = [{**DEAR, "prompt": f"blocking {i}"} for i in range(max(2, PENDING // 10))]
    task_count = PENDING - len(blocking)
    with replicas(
        tmp_path,
        count=2,
        database_url=url_of(engine),
        policy=HELD_UNLIMITED,  # the demo policy caps a grant at 30 images a minute
        users=USERS,
        hold={"pending_cap": PENDING + 10, "max_wait": "60s"},
    ) as cluster:
        tasks: list[str] = []

        async def open_tasks(first: int, step: int) -> None:
            async with core_tasks_client(cluster.mcp_url(0), cluster.tokens["agent"]) as on_a:
                for i in range(first, task_count, step):
                    tasks.append(
                        (await call_as_task(on_a, "generate_image", {**DEAR, "prompt": f"task {i}"}))["taskId"]
                    )

        async with anyio.create_task_group() as group:
            for first in range(8):
                group.start_soon(open_tasks, first, 8)
        async with mcp_client(cluster.mcp_url(0), cluster.tokens["agent"]) as waiting_on_a:
            async with anyio.create_task_group() as group:
                for arguments in blocking:
                    group.start_soon(waiting_on_a.call_tool, "generate_image", arguments)
                async with cluster.api(1, "ana") as api_on_b:
                    with anyio.fail_after(60):
                        while len(await all_pending(api_on_b)) < PENDING:
                            await anyio.sleep(0.2)
                cluster.processes[0].kill()  # kill -9 while every call waits
                cluster.processes[0].wait(10)
                group.cancel_scope.cancel()
        half = len(blocking) // 2
        reissued: list[Any] = []
        async with (
            mcp_client(cluster.mcp_url(1), cluster.tokens["agent"]) as on_b,
            cluster.api(1, "ana") as api_on_b,
        ):
            pending = await all_pending(api_on_b)
            assert len(pending) == PENDING  # nothing was lost with the replica

            async def reissue(arguments: dict[str, Any]) -> None:
                reissued.append(await on_b.call_tool("generate_image", arguments))

            async with anyio.create_task_group() as group:
                # Half the blocking agents reconnect to the survivor before anyone decides: they wait there again.
                for arguments in blocking[:half]:
                    group.start_soon(reissue, arguments)
                for item in pending:
                    assert (await approve_via_api(api_on_b, item["id"])).status_code == 200
            for arguments in blocking[half:]:  # the other half come back after the decision
                await reissue(arguments)
            assert len(reissued) == len(blocking)
            assert all([block.type for block in result.content] == ["image", "image"] for result in reissued)
            for task_id in tasks:  # the survivor's task runner ran them; any replica answers
                payload = await raw(on_b, "tasks/result", {"taskId": task_id})
                assert [block["type"] for block in payload["content"]] == ["image", "image"]
        assert len(cluster.upstream_calls("generate_image")) == PENDING  # each approved call ran once
