"""Security review of issue 13 (Slack): the edit modal is the decider's view of the arguments under review."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.gateway.harness import mcp_client
from tests.gateway.test_holds import held_call
from tests.policy.helpers import fixture
from tests.slack.fake_slack import fake_slack
from tests.slack.helpers import DEAR, click, slack_gateway

pytestmark = pytest.mark.anyio

SECRET = "hunter2-do-not-post-to-slack"
# The operator declares negative_prompt secret: approvers see it masked, and a reveal is audited.
REDACTING = fixture("airlock-demo.yaml").replace('version: "1"', 'version: "1"\nredact_keys: [negative_prompt]', 1)


async def test_the_edit_modal_masks_declared_secrets(tmp_path: Path) -> None:
    async with fake_slack() as fake:
        with slack_gateway(tmp_path, fake, policy=REDACTING) as gw:
            async with mcp_client(gw.mcp_url, gw.token) as client:
                asked = {**DEAR, "negative_prompt": SECRET}
                async with held_call(gw, client, "generate_image", asked) as (request_id, _results):
                    assert SECRET not in json.dumps([c.args for c in fake.calls])  # the card masks it
                    await click(gw, fake, "U0ANA", "edit", request_id)
                    view = (await fake.wait_for("views.open"))[0].args["view"]
                    async with gw.api("ana") as api:
                        await api.post(f"/api/requests/{request_id}/reject", json={"reason": "test over"})
            assert SECRET not in json.dumps(view)


QUORUM_2 = fixture("airlock-demo.yaml").replace(
    "approvers: {roles: [approver]}", "approvers: {roles: [approver]}\n      quorum: 2", 1
)


async def test_the_edit_modal_shows_the_arguments_under_review(tmp_path: Path) -> None:
    async with fake_slack() as fake:
        with slack_gateway(tmp_path, fake, policy=QUORUM_2) as gw:
            async with mcp_client(gw.mcp_url, gw.token) as client:
                async with held_call(gw, client, "generate_image", DEAR) as (request_id, _results):
                    async with gw.api("ana") as api:
                        digest = (await api.get(f"/api/requests/{request_id}")).json()["arguments_digest"]
                        body = {"arguments_digest": digest, "patch": {"n": 1, "prompt": "one lighthouse"}}
                        edited = await api.post(f"/api/requests/{request_id}/approve", json=body)
                        assert edited.json()["status"] == "pending"
                    await click(gw, fake, "U0ROOT", "edit", request_id)
                    view = (await fake.wait_for("views.open"))[0].args["view"]
                    async with gw.api("ana") as api:
                        await api.post(f"/api/requests/{request_id}/reject", json={"reason": "test over"})
            shown = json.loads(view["blocks"][1]["element"]["initial_value"])
            assert (shown["n"], shown["prompt"]) == (1, "one lighthouse")
