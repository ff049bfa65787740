"""An approver who leaves takes their vote with them, end to end: a held call whose rule needs two approvers does
not run on a departed approver's vote plus one more (service/users/departures.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from service.db.engine import unit_of_work
from service.users import departures
from tests.gateway.harness import approve_via_api, mcp_client, run_gateway
from tests.gateway.test_edited_approvals import QUORUM_2
from tests.gateway.test_holds import held_call, sqlite_url

pytestmark = pytest.mark.anyio

ASKED: dict[str, Any] = {"prompt": "a lighthouse", "provider": "openai", "model": "gpt-image-1", "n": 1}


async def test_a_deactivated_approvers_vote_does_not_complete_a_quorum(tmp_path: Path) -> None:
    people = {"ana": "approver", "bo": "approver", "mallory": "approver"}
    with run_gateway(tmp_path, database_url=sqlite_url(tmp_path), policy=QUORUM_2, users=people) as gw:
        async with mcp_client(gw.mcp_url, gw.token) as client:
            async with held_call(gw, client, "generate_image", ASKED) as (request_id, results):
                async with gw.api("mallory") as mallory, gw.api("ana") as ana, gw.api("bo") as bo:
                    assert (await approve_via_api(mallory, request_id)).json()["status"] == "pending"
                    with unit_of_work(gw.state.runtime.engine) as session:
                        departure = departures.deactivate_user(session, "mallory", actor="user:root")
                    departure.settle(gw.state.runtime.counters, gw.state.bus)
                    second = await approve_via_api(ana, request_id)
                    assert second.status_code == 200, second.text
                    assert second.json()["status"] == "pending"
                    assert gw.upstream_calls() == []
                    third = await approve_via_api(bo, request_id)
                    assert third.json()["status"] in ("approved", "executing", "succeeded")
        assert not results[0].is_error
        assert [call["arguments"] for call in gw.upstream_calls("generate_image")] == [ASKED]
