"""Slack over signed HTTP requests, end to end: a real MCP client's held call, the card in the fake Slack, a signed
click or modal submission, and what the agent, the card and its thread show afterwards."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx2
import pytest

from service.edge import read_at_most
from service.errors import TooLarge
from service.slack.endpoints import MAX_BODY_BYTES
from tests.gateway.harness import approve_via_api, mcp_client
from tests.gateway.test_holds import held_call
from tests.slack.fake_slack import (
    block_actions,
    channel_id,
    chosen,
    fake_slack,
    form_body,
    typed,
    view_submission,
)
from tests.slack.helpers import CARD_CHANNEL, DEAR, blocks_of, card_of, click, has_buttons, post_signed, slack_gateway

pytestmark = pytest.mark.anyio


async def test_a_signed_click_releases_a_held_image_and_the_card_and_thread_show_it(tmp_path: Path) -> None:
    async with fake_slack() as fake:
        with slack_gateway(tmp_path, fake) as gw:
            async with mcp_client(gw.mcp_url, gw.token) as client:
                async with held_call(gw, client, "generate_image", DEAR) as (request_id, results):
                    channel, ts = await card_of(fake, request_id)
                    card = fake.cards()[0]
                    assert card.args["channel"] == CARD_CHANNEL
                    shown = json.dumps(card.args["blocks"])
                    for expected in (
                        "generate_image",
                        "imagegen",
                        "agent (owner owner)",
                        "/tools/generate_image/require_approval",
                        "four lighthouses",
                        "http://airlock.test:8080/requests/",
                        '"approve"',
                        '"approve_remember"',
                        '"reject"',
                        '"edit"',
                    ):
                        assert expected in shown
                    async with gw.api("ana") as api:
                        cost = (await api.get(f"/api/requests/{request_id}")).json()["cost_usd"]
                    assert f"*Estimated cost*\\n${cost:.2f}" in shown  # USD, two decimals
                    assert gw.upstream_calls("generate_image") == []
                    answer = await click(gw, fake, "U0ANA", "approve", request_id)
                    assert (answer.status_code, answer.text) == (200, "")
            result = results[0]
            assert not result.is_error
            assert [block.type for block in result.content] == ["image", "image"]
            updated = await fake.wait_for("chat.update", contains="Ran: succeeded")
            assert updated[-1].args["channel"] == channel and updated[-1].args["ts"] == ts
            assert "*Approved* by ana" in json.dumps(updated[-1].args["blocks"])
            assert not has_buttons(updated[-1].args)
            done = (await fake.wait_for("files.completeUploadExternal"))[0]
            assert (done.args["channel_id"], done.args["thread_ts"]) == (channel, ts)
            uploaded = list(fake.uploads.values())
            assert uploaded == [base64.b64decode(result.content[0].data)]
            assert len(gw.upstream_calls("generate_image")) == 1


async def test_reject_opens_a_modal_and_its_reason_reaches_the_agent(tmp_path: Path) -> None:
    async with fake_slack() as fake:
        with slack_gateway(tmp_path, fake) as gw:
            async with mcp_client(gw.mcp_url, gw.token) as client:
                async with held_call(gw, client, "generate_image", DEAR) as (request_id, results):
                    await card_of(fake, request_id)
                    clicked = time.monotonic()
                    assert (await click(gw, fake, "U0ANA", "reject", request_id)).status_code == 200
                    assert time.monotonic() - clicked < 3  # Slack's limit for the acknowledgement
                    opened_call = (await fake.wait_for("views.open"))[0]
                    assert opened_call.at - clicked < 3  # the trigger_id is only good for 3 s
                    opened = opened_call.args
                    view = opened["view"]
                    assert view["callback_id"] == "airlock_reject"
                    assert "Too expensive" in json.dumps(view["blocks"])  # a preset from the config
                    empty = await post_signed(gw, fake, view_submission("U0ANA", view, {}))
                    assert empty.status_code == 200
                    assert empty.json()["response_action"] == "errors"
                    assert "reason" in empty.json()["errors"]
                    values = {"preset": chosen("Too expensive"), "reason": typed("  the budget is spent  ")}
                    done = await post_signed(gw, fake, view_submission("U0ANA", view, values))
                    assert (done.status_code, done.text) == (200, "")  # an empty ack closes the modal
            assert results[0].is_error
            assert results[0].content[0].text.startswith("[REJECTED] by ana: the budget is spent")
            assert gw.upstream_calls() == []
            update = (await fake.wait_for("chat.update", contains="Rejected"))[-1]
            assert "*Rejected* by ana" in json.dumps(update.args["blocks"])
            assert not has_buttons(update.args)


async def test_edit_and_approve_checks_the_json_in_the_modal_and_runs_the_edited_call(tmp_path: Path) -> None:
    async with fake_slack() as fake:
        with slack_gateway(tmp_path, fake) as gw:
            async with mcp_client(gw.mcp_url, gw.token) as client:
                async with held_call(gw, client, "generate_image", DEAR) as (request_id, results):
                    await click(gw, fake, "U0ANA", "edit", request_id)
                    view = (await fake.wait_for("views.open"))[0].args["view"]
                    assert view["callback_id"] == "airlock_edit"
                    shown = json.loads(view["blocks"][1]["element"]["initial_value"])
                    assert shown == DEAR

                    async def submit(text: str) -> dict[str, object]:
                        answer = await post_signed(gw, fake, view_submission("U0ANA", view, {"arguments": typed(text)}))
                        assert answer.status_code == 200
                        return answer.json() if answer.content else {}

                    not_json = await submit("{n: 1")
                    assert not_json["response_action"] == "errors"
                    assert "Not valid JSON" in json.dumps(not_json["errors"])
                    wrong = await submit(json.dumps({**DEAR, "n": "two"}))
                    assert "Does not fit the tool" in json.dumps(wrong["errors"])
                    assert gw.upstream_calls() == []
                    assert await submit(json.dumps({**DEAR, "n": 1})) == {}
            assert [block.type for block in results[0].content] == ["image"]
            assert gw.upstream_calls("generate_image")[0]["arguments"]["n"] == 1
            update = (await fake.wait_for("chat.update", contains="edited arguments"))[-1]
            assert "*Approved* with edited arguments by ana" in json.dumps(update.args["blocks"])


async def test_approve_and_remember_lets_the_same_call_through_afterwards(tmp_path: Path) -> None:
    async with fake_slack() as fake:
        with slack_gateway(tmp_path, fake) as gw:
            async with mcp_client(gw.mcp_url, gw.token) as client:
                async with held_call(gw, client, "generate_image", DEAR) as (request_id, results):
                    await click(gw, fake, "U0ANA", "approve_remember", request_id)
                assert not results[0].is_error
                with anyio.fail_after(10):
                    again = await client.call_tool("generate_image", DEAR)  # not held: the standing approval
                assert [block.type for block in again.content] == ["image", "image"]
            assert len(fake.cards()) == 1
            async with gw.api("root") as api:
                listed = (await api.get("/api/requests")).json()["items"]
            assert [item["status"] for item in listed] == ["succeeded"]


async def test_people_who_may_not_decide_get_an_ephemeral_answer_and_nothing_changes(tmp_path: Path) -> None:
    async with fake_slack() as fake:
        with slack_gateway(tmp_path, fake) as gw:
            async with mcp_client(gw.mcp_url, gw.token) as client:
                async with held_call(gw, client, "generate_image", DEAR) as (request_id, results):
                    await click(gw, fake, "U0STRANGER", "approve", request_id)
                    await click(gw, fake, "U0STRANGER", "reject", request_id)
                    await click(gw, fake, "U0VIC", "approve", request_id)
                    told = await fake.wait_for("chat.postEphemeral", count=3)
                    by_user = {c.args["user"]: c.args["text"] for c in told}
                    assert "not an approver for this rule" in by_user["U0STRANGER"]
                    assert "viewers may not decide" in by_user["U0VIC"].lower()
                    assert fake.called("views.open") == []
                    async with gw.api("root") as api:
                        assert (await api.get(f"/api/requests/{request_id}")).json()["status"] == "pending"
                        assert fake.called("chat.update") == []
                        await api.post(f"/api/requests/{request_id}/reject", json={"reason": "end of test"})
            assert results[0].content[0].text.startswith("[REJECTED] by root")


async def test_forged_and_replayed_requests_get_401_and_change_nothing(tmp_path: Path) -> None:
    async with fake_slack() as fake:
        with slack_gateway(tmp_path, fake) as gw:
            async with mcp_client(gw.mcp_url, gw.token) as client:
                async with held_call(gw, client, "generate_image", DEAR) as (request_id, results):
                    payload = await fake.press("U0ANA", "approve", request_id)
                    forged = await post_signed(gw, fake, payload, secret="not-the-signing-secret")
                    # Slack's window is five minutes either way; a second over its edge flaked (int() drops up to a
                    # second, so +301 could land at exactly 300 s ahead by the server's clock).
                    replayed = await post_signed(gw, fake, payload, timestamp=int(time.time()) - 310)
                    future = await post_signed(gw, fake, payload, timestamp=int(time.time()) + 310)
                    body = form_body(payload)
                    tampered_headers = fake.signed(body.replace(b"approve", b"reject"))
                    async with httpx2.AsyncClient(base_url=gw.base_url) as http:
                        tampered = await http.post("/slack/interactions", content=body, headers=tampered_headers)
                        unsigned = await http.post("/slack/interactions", content=body)
                    statuses = [r.status_code for r in (forged, replayed, future, tampered, unsigned)]
                    assert statuses == [401, 401, 401, 401, 401]
                    assert fake.called("chat.update") == []
                    # The same click, signed as Slack signs it, decides. Had any refused one been acted on, this
                    # one would find the request decided and be told so at once, before the card's update (which
                    # waits its turn in the channel's send queue) reaches Slack.
                    assert (await post_signed(gw, fake, payload)).status_code == 200
                    await fake.wait_for("chat.update", contains="*Approved* by ana")
                    assert fake.called("chat.postEphemeral") == []
            assert not results[0].is_error
            assert len(gw.upstream_calls("generate_image")) == 1


async def test_url_verification_answers_the_challenge_only_when_signed(tmp_path: Path) -> None:
    async with fake_slack() as fake:
        with slack_gateway(tmp_path, fake) as gw:
            challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
            body = json.dumps({"token": "t", "challenge": challenge, "type": "url_verification"}).encode()
            async with httpx2.AsyncClient(base_url=gw.base_url) as http:
                good = await http.post("/slack/events", content=body, headers=fake.signed(body))
                bad = await http.post("/slack/events", content=body, headers=fake.signed(body, secret="nope"))
                # "²" in Latin-1, as an HTTP header carries it: str.isdigit() passes it but int() does not.
                superscript = {k.encode(): v.encode() for k, v in fake.signed(body).items()}
                superscript[b"X-Slack-Request-Timestamp"] = b"\xb2"
                odd = await http.post("/slack/events", content=body, headers=superscript)
            assert good.json() == {"challenge": challenge}
            assert bad.status_code == 401
            assert odd.status_code == 401 and "signed" in odd.json()["error"]


async def test_a_double_click_runs_the_call_once_and_says_who_was_first(tmp_path: Path) -> None:
    async with fake_slack() as fake:
        with slack_gateway(tmp_path, fake) as gw:
            async with mcp_client(gw.mcp_url, gw.token) as client:
                async with held_call(gw, client, "generate_image", DEAR) as (request_id, results):
                    # Both see the card before either click lands: two presses of the same Approve button.
                    pressed = [await fake.press(user, "approve", request_id) for user in ("U0ANA", "U0ROOT")]
                    first = await post_signed(gw, fake, pressed[0])
                    second = await post_signed(gw, fake, pressed[1])
                    assert first.status_code == second.status_code == 200
            assert not results[0].is_error
            told = (await fake.wait_for("chat.postEphemeral"))[0].args
            assert told["user"] == "U0ROOT"
            assert f"R-{request_id} was already approved by ana" in told["text"]
            assert len(gw.upstream_calls("generate_image")) == 1


async def test_a_decision_in_the_rest_api_updates_the_card(tmp_path: Path) -> None:
    async with fake_slack() as fake:
        with slack_gateway(tmp_path, fake) as gw:
            async with mcp_client(gw.mcp_url, gw.token) as client:
                async with held_call(gw, client, "generate_image", DEAR) as (request_id, results):
                    channel, ts = await card_of(fake, request_id)
                    async with gw.api("ana") as api:
                        await approve_via_api(api, request_id, comment="fine by me")
            assert not results[0].is_error
            update = (await fake.wait_for("chat.update", contains="fine by me"))[0]
            assert (update.args["channel"], update.args["ts"]) == (channel, ts)
            assert channel == channel_id(CARD_CHANNEL)
            assert "*Approved* by ana" in json.dumps(blocks_of(update.args))
            assert not has_buttons(update.args)


async def test_bad_input_gets_a_clear_answer_and_changes_nothing(tmp_path: Path) -> None:
    async with fake_slack() as fake:
        with slack_gateway(tmp_path, fake) as gw:
            async with httpx2.AsyncClient(base_url=gw.base_url) as http:
                body = b"payload=%7Bnot+json"
                headers = {"Content-Type": "application/x-www-form-urlencoded", **fake.signed(body)}
                broken = await http.post("/slack/interactions", content=body, headers=headers)
            assert broken.status_code == 400
            assert "payload" in broken.json()["error"]
            unknown = await post_signed(gw, fake, block_actions("U0ANA", "approve", f"999:{'0' * 64}", "C1", "1.2"))
            assert (unknown.status_code, unknown.text) == (200, "")
            told = (await fake.wait_for("chat.postEphemeral"))[0].args
            assert told["text"] == "There is no request R-999."


async def test_a_body_over_1_mib_gets_413_even_chunked_without_a_content_length(tmp_path: Path) -> None:
    async with fake_slack() as fake:
        with slack_gateway(tmp_path, fake) as gw:
            async with mcp_client(gw.mcp_url, gw.token) as client:
                async with held_call(gw, client, "generate_image", DEAR) as (request_id, results):
                    body = form_body(await fake.press("U0ANA", "approve", request_id))
                    body += b"&padding=" + b"x" * MAX_BODY_BYTES  # signed: only its size can refuse it

                    async def chunked() -> AsyncIterator[bytes]:
                        for start in range(0, len(body), 64 * 1024):
                            yield body[start : start + 64 * 1024]

                    async with httpx2.AsyncClient(base_url=gw.base_url, timeout=10) as http:
                        for path in ("/slack/interactions", "/slack/events"):
                            answer = await http.post(path, content=chunked(), headers=fake.signed(body))
                            assert answer.request.headers.get("transfer-encoding") == "chunked"
                            assert "content-length" not in answer.request.headers
                            assert answer.status_code == 413 and "1 MiB" in answer.json()["error"]
                    async with gw.api("ana") as api:
                        await api.post(f"/api/requests/{request_id}/reject", json={"reason": "end of test"})
                    # Had a refused body's approval been acted on, this rejection would have found the request
                    # decided: it decides, and the card, once it shows it, shows nothing else.
                    update = await fake.wait_for("chat.update", contains="end of test")
                    assert len(fake.called("chat.update")) == len(update)
                    assert fake.called("chat.postEphemeral") == []
            assert results[0].content[0].text.startswith("[REJECTED] by ana")


async def test_an_endless_body_is_read_only_up_to_the_limit() -> None:
    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        while True:
            pulled += 1
            await anyio.sleep(0)  # a checkpoint, so that fail_after can end a reader that never stops
            yield b"x" * 1000

    with anyio.fail_after(5), pytest.raises(TooLarge):
        await read_at_most(endless(), 10_000)
    assert pulled == 11

    async def exactly(size: int) -> AsyncIterator[bytes]:
        for _ in range(size // 1000):
            yield b"x" * 1000

    assert len(await read_at_most(exactly(10_000), 10_000)) == 10_000
