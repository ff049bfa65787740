"""An approver's edit, end to end: the upstream runs exactly the edited arguments, once the whole quorum approved
them, and never the agent's original."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.gateway.harness import approve_via_api, mcp_client, run_gateway
from tests.gateway.test_holds import held_call, sqlite_url
from tests.policy.helpers import fixture

pytestmark = pytest.mark.anyio

# A long prompt whose end matters: the edit must carry it over whole.
PROMPT = "three lighthouses on a cliff, " * 40 + "and a red door"
ASKED: dict[str, Any] = {"prompt": PROMPT, "provider": "openai", "model": "gpt-image-1", "n": 4}
QUORUM_2 = fixture("airlock-demo.yaml").replace(
    "approvers: {roles: [approver]}", "approvers: {roles: [approver]}\n      quorum: 2", 1
)


async def test_an_edited_approval_runs_exactly_the_edited_arguments(tmp_path: Path) -> None:
    users = {"ana": "approver", "bo": "approver"}
    with run_gateway(tmp_path, database_url=sqlite_url(tmp_path), policy=QUORUM_2, users=users) as gw:
        async with mcp_client(gw.mcp_url, gw.token) as client:
            async with held_call(gw, client, "generate_image", ASKED) as (request_id, results):
                async with gw.api("ana") as ana, gw.api("bo") as bo:
                    assert (await approve_via_api(ana, request_id)).status_code == 200
                    # Bo edits: Ana's vote was for four images, so the call waits for a second vote on one.
                    edited = await approve_via_api(bo, request_id, patch={"n": 1})
                    assert edited.status_code == 200, edited.text
                    assert edited.json()["status"] == "pending"
                    assert gw.upstream_calls() == []
                    again = await approve_via_api(bo, request_id)
                    assert again.status_code == 409  # Bo's edit is his vote already
                    released = await approve_via_api(ana, request_id)
                    assert released.json()["status"] in ("approved", "executing", "succeeded")
        assert not results[0].is_error
        assert [block.type for block in results[0].content] == ["image"]
        assert [call["arguments"] for call in gw.upstream_calls("generate_image")] == [{**ASKED, "n": 1}]
        async with gw.api("ana") as api:
            detail = (await api.get(f"/api/requests/{request_id}")).json()
        assert detail["cost_usd"] == pytest.approx(0.167)  # re-priced: one image, not four
