"""The Slack edit modal, end to end: a patch on the exact arguments under review, bound to the digest it showed, and
offered only when they fit in Slack's text input."""

from __future__ import annotations

import base64
import io
import json
import random
from pathlib import Path

import pytest
from PIL import Image

from service.approvals.view import MASKED
from tests.gateway.harness import mcp_client
from tests.gateway.test_holds import held_call
from tests.slack.fake_slack import fake_slack, typed, view_submission
from tests.slack.helpers import DEAR, click, has_buttons, post_signed, slack_gateway
from tests.slack.test_review_attacks import QUORUM_2, REDACTING, SECRET

pytestmark = pytest.mark.anyio


async def test_an_edit_changes_only_what_was_typed_and_a_masked_secret_runs_unchanged(tmp_path: Path) -> None:
    asked = {**DEAR, "prompt": "four lighthouses, `unquoted`\n  and a second line", "negative_prompt": SECRET}
    async with fake_slack() as fake:
        with slack_gateway(tmp_path, fake, policy=REDACTING) as gw:
            async with mcp_client(gw.mcp_url, gw.token) as client:
                async with held_call(gw, client, "generate_image", asked) as (request_id, results):
                    await click(gw, fake, "U0ANA", "edit", request_id)
                    view = (await fake.wait_for("views.open"))[0].args["view"]
                    shown = json.loads(view["blocks"][1]["element"]["initial_value"])
                    assert shown == {**asked, "negative_prompt": MASKED}
                    edited = json.dumps({**shown, "n": 1})
                    answer = await post_signed(gw, fake, view_submission("U0ANA", view, {"arguments": typed(edited)}))
                    assert (answer.status_code, answer.text) == (200, "")
            assert not results[0].is_error
            assert [call["arguments"] for call in gw.upstream_calls("generate_image")] == [{**asked, "n": 1}]
            assert SECRET not in json.dumps([call.args for call in fake.calls])


async def test_a_modal_opened_before_someone_else_edited_is_refused_in_the_modal(tmp_path: Path) -> None:
    async with fake_slack() as fake:
        with slack_gateway(tmp_path, fake, policy=QUORUM_2) as gw:
            async with mcp_client(gw.mcp_url, gw.token) as client:
                async with held_call(gw, client, "generate_image", DEAR) as (request_id, results):
                    await click(gw, fake, "U0ANA", "edit", request_id)
                    view = (await fake.wait_for("views.open"))[0].args["view"]
                    async with gw.api("root") as api:
                        digest = (await api.get(f"/api/requests/{request_id}")).json()["arguments_digest"]
                        body = {"arguments_digest": digest, "patch": {"prompt": "one lighthouse"}}
                        assert (await api.post(f"/api/requests/{request_id}/approve", json=body)).status_code == 200
                    stale = json.dumps({**DEAR, "n": 1})
                    answer = await post_signed(gw, fake, view_submission("U0ANA", view, {"arguments": typed(stale)}))
                    assert answer.json()["response_action"] == "errors"
                    assert "changed after this form was opened" in answer.json()["errors"]["arguments"]
                    async with gw.api("root") as api:
                        now = (await api.get(f"/api/requests/{request_id}")).json()
                        assert now["status"] == "pending" and now["arguments_digest"] != digest
                        await api.post(f"/api/requests/{request_id}/reject", json={"reason": "test over"})
            assert results[0].content[0].text.startswith("[REJECTED] by root")
            assert gw.upstream_calls() == []


def png_base64() -> str:
    """A real PNG of noise (it does not compress): about 3,100 characters of base64, a blob on the card."""
    noise = random.Random(13).randbytes(48 * 48)
    out = io.BytesIO()
    Image.frombytes("L", (48, 48), noise).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


async def test_arguments_longer_than_a_slack_text_input_are_sent_to_the_web_ui_to_edit(tmp_path: Path) -> None:
    asked = {**DEAR, "prompt": "make it brighter", "images": [f"data:image/png;base64,{png_base64()}"]}
    assert len(json.dumps(asked)) > 3000
    async with fake_slack() as fake:
        with slack_gateway(tmp_path, fake) as gw:
            async with mcp_client(gw.mcp_url, gw.token) as client:
                async with held_call(gw, client, "edit_image", asked) as (request_id, results):
                    await click(gw, fake, "U0ANA", "edit", request_id)  # the card shows the image as a blob
                    told = (await fake.wait_for("chat.postEphemeral"))[0].args
                    assert told["user"] == "U0ANA"
                    assert "edit them in the web UI" in told["text"]
                    assert f"http://airlock.test:8080/requests/{request_id}" in told["text"]
                    assert fake.called("views.open") == []
                    assert has_buttons(fake.cards()[0].args)
                    async with gw.api("ana") as api:
                        await api.post(f"/api/requests/{request_id}/reject", json={"reason": "test over"})
            assert results[0].is_error and gw.upstream_calls() == []
