"""A held call runs only for a live grant: revoking the grant (here from another process, as the CLI does) ends the
agent's blocking wait and its task with `[CANCELLED] grant revoked`, and the upstream never sees the call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from service.db.engine import unit_of_work
from service.grants.service import revoke_grant
from tests.gateway.harness import RunningGateway, approve_via_api, mcp_client, run_gateway
from tests.gateway.tasks_client import core_tasks_client
from tests.gateway.test_gateway import db_url
from tests.gateway.test_holds import DEAR, USERS, held_call, pending_request_id
from tests.gateway.test_tasks_2025 import call_as_task, raw
from tests.policy.helpers import fixture

pytestmark = pytest.mark.anyio


def revoke_elsewhere(engine: Engine) -> None:
    with unit_of_work(engine) as session:
        cancellation = revoke_grant(session, "agent", actor="cli")
    cancellation.settle(None)  # the gateway's counters are its own; it hears of the cancel through the database


async def assert_decision_refused(gw: RunningGateway, request_id: int) -> None:
    async with gw.api("ana") as api:
        refused = await approve_via_api(api, request_id)
    assert refused.status_code == 409
    assert refused.json()["error"] == f"R-{request_id} was cancelled: grant revoked"


async def test_a_blocked_agent_hears_its_grant_was_revoked_and_nothing_runs(engine: Engine, tmp_path: Path) -> None:
    with run_gateway(tmp_path, database_url=db_url(engine), policy=fixture("airlock-demo.yaml"), users=USERS) as gw:
        async with mcp_client(gw.mcp_url, gw.token) as client:
            async with held_call(gw, client, "generate_image", DEAR) as (request_id, results):
                revoke_elsewhere(engine)
        result = results[0]
        assert result.is_error
        assert result.content[0].text.startswith("[CANCELLED] grant revoked")
        await assert_decision_refused(gw, request_id)
        assert gw.upstream_calls() == []
        async with gw.api("root") as api:
            detail = (await api.get(f"/api/requests/{request_id}")).json()
        assert detail["status"] == "cancelled"
        cancel = next(e for e in detail["events"] if e["action"] == "request.cancelled")
        assert (cancel["actor"], cancel["reason"]) == ("cli", "grant revoked")


async def test_a_task_ends_with_the_revocation(engine: Engine, tmp_path: Path) -> None:
    import anyio

    with run_gateway(tmp_path, database_url=db_url(engine), policy=fixture("airlock-demo.yaml"), users=USERS) as gw:
        async with core_tasks_client(gw.mcp_url, gw.token) as client:
            task = await call_as_task(client, "generate_image", DEAR)
            request_id = await pending_request_id(gw)
            results: list[dict[str, Any]] = []

            async def collect() -> None:  # tasks/result blocks until the task is final
                results.append(await raw(client, "tasks/result", {"taskId": task["taskId"]}))

            async with anyio.create_task_group() as group:
                group.start_soon(collect)
                with anyio.fail_after(10):  # revoke once tasks/result waits (a revoked token could not ask)
                    while request_id not in gw.state.bus.waiting():
                        await anyio.sleep(0.02)
                revoke_elsewhere(engine)
        payload = results[0]
        assert payload["isError"] is True
        assert payload["content"][0]["text"].startswith("[CANCELLED] grant revoked")
        await assert_decision_refused(gw, request_id)
        assert gw.upstream_calls() == []
