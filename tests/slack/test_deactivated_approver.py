"""A deactivated approver's Slack click is refused, says why, and decides nothing (service/users/departures.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.db.engine import unit_of_work
from service.slack.identity import DEACTIVATED
from service.users.departures import deactivate_user
from tests.gateway.harness import mcp_client
from tests.gateway.test_holds import held_call
from tests.slack.fake_slack import fake_slack
from tests.slack.helpers import DEAR, click, slack_gateway

pytestmark = pytest.mark.anyio


async def test_a_deactivated_approvers_click_is_refused_and_decides_nothing(tmp_path: Path) -> None:
    async with fake_slack() as fake:
        with slack_gateway(tmp_path, fake) as gw:
            async with mcp_client(gw.mcp_url, gw.token) as client:
                async with held_call(gw, client, "generate_image", DEAR) as (request_id, results):
                    with unit_of_work(gw.state.runtime.engine) as session:
                        deactivate_user(session, "ana", actor="user:root")
                    for action in ("approve", "approve_remember", "reject", "edit"):
                        assert (await click(gw, fake, "U0ANA", action, request_id)).status_code == 200
                    told = await fake.wait_for("chat.postEphemeral", count=4)
                    assert [(c.args["user"], c.args["text"]) for c in told] == [("U0ANA", DEACTIVATED)] * 4
                    assert fake.called("views.open") == []
                    async with gw.api("root") as api:
                        detail = (await api.get(f"/api/requests/{request_id}")).json()
                        assert detail["status"] == "pending"
                        assert [e["action"] for e in detail["events"]] == ["request.created"]
                        assert fake.called("chat.update") == []
                        await api.post(f"/api/requests/{request_id}/reject", json={"reason": "end of test"})
            assert results[0].content[0].text.startswith("[REJECTED] by root")
        assert gw.upstream_calls() == []
