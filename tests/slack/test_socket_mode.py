"""Socket Mode: the same click over a websocket Airlock opens itself (apps.connections.open), no public URL."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import httpx2
import pytest

from tests.gateway.harness import mcp_client
from tests.gateway.test_holds import held_call
from tests.slack.fake_slack import APP_TOKEN, fake_slack, typed, view_submission
from tests.slack.helpers import DEAR, card_of, has_buttons, slack_gateway

pytestmark = pytest.mark.anyio


async def test_a_click_over_socket_mode_releases_a_held_image(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with fake_slack() as fake:
        with slack_gateway(tmp_path, fake, socket_mode=True) as gw:
            opened = (await fake.wait_for("apps.connections.open"))[0]
            assert opened.token == APP_TOKEN
            async with mcp_client(gw.mcp_url, gw.token) as client:
                async with held_call(gw, client, "generate_image", DEAR) as (request_id, results):
                    channel, ts = await card_of(fake, request_id)
                    ack = await fake.send_envelope(await fake.press("U0ANA", "approve", request_id))
                    assert set(ack) == {"envelope_id"}  # acknowledged, with nothing to say
            result = results[0]
            assert [block.type for block in result.content] == ["image", "image"]
            update = (await fake.wait_for("chat.update", contains="Ran: succeeded"))[-1]
            assert (update.args["channel"], update.args["ts"]) == (channel, ts)
            assert "*Approved* by ana" in json.dumps(update.args["blocks"])
            assert not has_buttons(update.args)
            done = (await fake.wait_for("files.completeUploadExternal"))[0]
            assert done.args["thread_ts"] == ts
            assert list(fake.uploads.values()) == [base64.b64decode(result.content[0].data)]
            async with httpx2.AsyncClient(base_url=gw.base_url) as http:
                # no signing secret configured: the HTTP endpoint is off
                assert (await http.post("/slack/interactions", content=b"payload=%7B%7D")).status_code == 404
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors == []  # connecting, serving and closing the socket are all quiet


async def test_modal_errors_travel_in_the_socket_mode_acknowledgement(tmp_path: Path) -> None:
    async with fake_slack() as fake:
        with slack_gateway(tmp_path, fake, socket_mode=True) as gw:
            async with mcp_client(gw.mcp_url, gw.token) as client:
                async with held_call(gw, client, "generate_image", DEAR) as (request_id, results):
                    await fake.send_envelope(await fake.press("U0ANA", "reject", request_id))
                    view = (await fake.wait_for("views.open"))[0].args["view"]
                    ack = await fake.send_envelope(view_submission("U0ANA", view, {"reason": typed("   ")}))
                    assert ack["payload"]["response_action"] == "errors"
                    ack = await fake.send_envelope(view_submission("U0ANA", view, {"reason": typed("not today")}))
                    assert "payload" not in ack
            assert results[0].content[0].text.startswith("[REJECTED] by ana: not today")
