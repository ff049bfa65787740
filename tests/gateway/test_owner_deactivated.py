"""A deactivated person is cut off at the MCP edge and the REST API: their agent's held call is cancelled and never
runs, their grant is refused saying why, their API token and their standing approvals stop working, and reactivation
gives the grant back (service/users/departures.py)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx2
import pytest
from sqlalchemy import Engine

from service.db.engine import unit_of_work
from service.users.departures import deactivate_user, reactivate_user
from tests.gateway.harness import RunningGateway, approve_via_api, mcp_client, run_gateway
from tests.gateway.test_edges import HEADERS, INIT
from tests.gateway.test_gateway import db_url
from tests.gateway.test_holds import DEAR, USERS, held_call, sqlite_url
from tests.policy.helpers import fixture

pytestmark = pytest.mark.anyio

SUSPENDED = "grant suspended: its owner is deactivated"


def deactivate(engine: Engine, username: str) -> None:
    """As an admin does; the engine decides where: the test's own (another process, like the CLI) or the gateway's
    (the web UI's, whose commit drops the gateway's cached grant lookups at once)."""
    with unit_of_work(engine) as session:
        departure = deactivate_user(session, username, actor="user:root")
    departure.settle(None)  # the gateway hears of the cancels through the database


async def test_an_agent_of_a_deactivated_owner_is_cancelled_mid_hold_and_nothing_runs(
    engine: Engine, tmp_path: Path
) -> None:
    with run_gateway(tmp_path, database_url=db_url(engine), policy=fixture("airlock-demo.yaml"), users=USERS) as gw:
        async with mcp_client(gw.mcp_url, gw.token) as client:
            async with held_call(gw, client, "generate_image", DEAR) as (request_id, results):
                deactivate(engine, "owner")
        assert results[0].is_error
        assert results[0].content[0].text.startswith(f"[CANCELLED] {SUSPENDED}, not executed")
        async with gw.api("ana") as api:
            late = await approve_via_api(api, request_id)
        assert late.status_code == 409
        assert late.json()["error"] == f"R-{request_id} was cancelled: {SUSPENDED}"
        assert gw.upstream_calls() == []
        async with gw.api("root") as api:
            detail = (await api.get(f"/api/requests/{request_id}")).json()
        assert detail["status"] == "cancelled"


async def initialize(gw: RunningGateway) -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=10) as http:
        return await http.post(gw.mcp_url, json=INIT, headers={**HEADERS, "Authorization": f"Bearer {gw.token}"})


async def test_a_suspended_grant_is_refused_saying_why_until_its_owner_is_reactivated(tmp_path: Path) -> None:
    with run_gateway(tmp_path, database_url=sqlite_url(tmp_path), policy=fixture("airlock-demo.yaml")) as gw:
        assert (await initialize(gw)).status_code == 200  # the grant's lookup is now cached
        deactivate(gw.state.runtime.engine, "owner")
        refused = await initialize(gw)
        assert refused.status_code == 403
        assert refused.json()["error"] == "grant 'agent' is suspended: its owner owner is deactivated"
        with unit_of_work(gw.state.runtime.engine) as session:
            assert reactivate_user(session, "owner", actor="user:root") == ["agent"]
        assert (await initialize(gw)).status_code == 200


async def test_a_deactivated_approver_loses_their_token_and_their_standing_approvals(tmp_path: Path) -> None:
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
                remembered = await approve_via_api(api, public_id[2:], remember={"scope": "tool", "duration": "1h"})
                assert remembered.status_code == 200
            assert (await client.call_tool("airlock_approval_status", {"request_id": public_id})).content[
                0
            ].type == "image"
            assert len(gw.upstream_calls("generate_image")) == 1
            deactivate(gw.state.runtime.engine, "ana")
            # Another prompt: ana's approval for the whole tool would have let it through, but it ended with her.
            later = await client.call_tool("generate_image", {**DEAR, "prompt": "a second lighthouse"})
            assert later.content[0].text.startswith("Not executed yet")  # type: ignore[union-attr]
            held_id = re.search(r"R-(\d+)", later.content[0].text).group(1)  # type: ignore[union-attr]
            async with gw.api("ana") as api:
                assert (await api.get("/api/requests")).status_code == 401
                refused = await approve_via_api(api, held_id)
            assert refused.status_code == 401
        assert len(gw.upstream_calls("generate_image")) == 1
        async with gw.api("root") as api:
            assert (await api.get(f"/api/requests/{held_id}")).json()["status"] == "pending"
