"""Slack away or throttling: the gateway and the web path keep working, Slack posts wait and are retried, and
nothing is lost. Also the timers: reminders in the card's thread, and an expiry on the card."""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import text

from service.approvals import service as approvals
from service.approvals.schemas import Approver, Verdict
from service.db.engine import unit_of_work
from service.slack import card_keeper
from service.slack.service import NOT_LINKED
from service.users.models import Role
from tests.clock import MovableClock
from tests.gateway.harness import RunningGateway, approve_via_api, mcp_client
from tests.gateway.test_holds import held_call, pending_request_id
from tests.slack.fake_slack import FakeSlack, channel_id, fake_slack
from tests.slack.helpers import DEAR, card_of, has_buttons, post_signed, slack_gateway

pytestmark = pytest.mark.anyio


async def test_slack_down_the_web_path_still_works_and_the_card_arrives_later(tmp_path: Path) -> None:
    async with fake_slack() as fake:
        fake.down = True
        with slack_gateway(tmp_path, fake) as gw:
            async with mcp_client(gw.mcp_url, gw.token) as client:
                async with held_call(gw, client, "generate_image", DEAR) as (request_id, results):
                    await fake.wait_for("chat.postMessage", count=2)  # tried, failed, tried again
                    async with gw.api("ana") as api:
                        approved = await approve_via_api(api, request_id)
                        assert approved.status_code == 200
            assert [block.type for block in results[0].content] == ["image", "image"]  # the agent did not wait
            assert fake.cards() and not any(call.answer for call in fake.cards())
            fake.down = False
            await card_of(fake, request_id)
            card = next(call for call in fake.cards() if call.answer.get("ok"))
            shown = json.dumps(card.args["blocks"])  # the late card shows the state of now, not of then
            assert "*Approved* by ana" in shown and "Ran: succeeded" in shown
            assert not has_buttons(card.args)
            await fake.wait_for("files.completeUploadExternal")
            assert len(fake.uploads) == 1


async def test_a_429_storm_is_waited_out_per_channel_without_slowing_the_gateway(tmp_path: Path) -> None:
    async with fake_slack() as fake:
        fake.rate_limit("chat.postMessage", 4, retry_after=1)
        with slack_gateway(tmp_path, fake) as gw:
            async with mcp_client(gw.mcp_url, gw.token) as client:
                results: list[Any] = []

                async def agent(prompt: str) -> None:
                    results.append(await client.call_tool("generate_image", {**DEAR, "prompt": prompt}))

                async with anyio.create_task_group() as agents:
                    for prompt in ("one", "two", "three"):
                        agents.start_soon(agent, prompt)
                    await pending_request_id(gw)
                    started = anyio.current_time()
                    cheap = await client.call_tool("get_model_capabilities", {})
                    assert not cheap.is_error
                    assert anyio.current_time() - started < 2  # Slack's throttling is not the agents' problem
                    with anyio.fail_after(30):
                        while len([c for c in fake.cards() if c.answer.get("ok")]) < 3:
                            await anyio.sleep(0.1)
                    async with gw.api("ana") as api:
                        pending = (await api.get("/api/requests", params={"status": "pending"})).json()["items"]
                        assert len(pending) == 3
                        for item in pending:
                            await api.post(f"/api/requests/{item['id']}/reject", json={"reason": "storm over"})
            attempts = fake.posts()
            assert len(attempts) == 3 + 4  # every 429 was tried again, no card was posted twice
            assert sorted(c.args["text"].split(":")[0] for c in attempts if c.answer.get("ok")) == ["R-1", "R-2", "R-3"]
            gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(attempts)]
            assert min(gaps) >= 0.9  # Retry-After and about one message a second per channel
            assert all(r.content[0].text.startswith("[REJECTED]") for r in results)


TIMEOUT = 15.0
REMINDED = """
version: "1"
default: deny
tools:
  generate_image:
    cost: {estimator: image_gen_mcp}
    require_approval:
      when: "true"
      approvers: {slack_users: [U0ANA], slack_groups: [S0DESIGN], roles: [admin]}
      # Within the held call's wait (hold.max_wait, 50 s on the same clock): the call itself hears its expiry.
      timeout: 15s
  get_model_capabilities:
    require_approval: {when: "true", slack: false}
"""


async def test_reminders_go_to_the_thread_and_an_expiry_reaches_the_card(tmp_path: Path) -> None:
    clock = MovableClock.from_now()  # the gateway's: the test moves it through the timeout
    async with fake_slack() as fake:
        with slack_gateway(tmp_path, fake, policy=REMINDED, clock=clock) as gw:
            async with mcp_client(gw.mcp_url, gw.token) as client:
                async with held_call(gw, client, "generate_image", DEAR) as (request_id, results):
                    channel, ts = await card_of(fake, request_id)
                    assert channel == channel_id("#airlock")  # the rule names none: the default channel
                    # Each move is seen by the sweeper's next pass (it sweeps once a second, on the moved clock).
                    clock.advance(0.5 * TIMEOUT + 1)
                    assert "50%" in (await fake.wait_for("chat.postMessage", count=2))[-1].args["text"]
                    clock.advance(0.4 * TIMEOUT)
                    assert "90%" in (await fake.wait_for("chat.postMessage", count=3))[-1].args["text"]
                    async with gw.api("ana") as api:
                        assert (await api.get(f"/api/requests/{request_id}")).json()["status"] == "pending"
                    clock.advance(0.1 * TIMEOUT)
            assert results[0].content[0].text.startswith("[EXPIRED]")
            replies = [c for c in fake.posts() if c.args.get("thread_ts") == ts]
            assert [("50%" in c.args["text"], "90%" in c.args["text"]) for c in replies] == [
                (True, False),
                (False, True),
            ]
            assert all("<@U0ANA>" in c.args["text"] and "<!subteam^S0DESIGN>" in c.args["text"] for c in replies)
            update = (await fake.wait_for("chat.update", contains="Expired"))[-1]
            assert not has_buttons(update.args)


async def test_a_rule_with_slack_false_gets_no_card(tmp_path: Path) -> None:
    async with fake_slack() as fake:
        with slack_gateway(tmp_path, fake, policy=REMINDED) as gw:
            async with mcp_client(gw.mcp_url, gw.token) as client:
                async with held_call(gw, client, "get_model_capabilities", {}) as (request_id, results):
                    async with gw.api("root") as api:
                        await approve_via_api(api, request_id)
                assert not results[0].is_error
                # The cards follow the events in order: once a later request's card is posted, every event of the
                # first one (held, decided, ran) has been followed, and had it owed a card, that card came first.
                async with held_call(gw, client, "generate_image", DEAR) as (later, _):
                    await card_of(fake, later)
                    async with gw.api("root") as api:
                        await api.post(f"/api/requests/{later}/reject", json={"reason": "end of test"})
            assert [c.args["text"].split(":")[0] for c in fake.posts()] == [f"R-{later}"]


async def test_cards_owed_when_the_process_stopped_are_posted_after_a_restart(tmp_path: Path) -> None:
    async with fake_slack() as fake:
        fake.down = True
        with slack_gateway(tmp_path, fake, hold={"max_wait": "1s"}) as first:
            async with mcp_client(first.mcp_url, first.token) as client:
                for prompt in ("kept row", "lost row"):
                    answer = await client.call_tool("generate_image", {**DEAR, "prompt": prompt})
                    assert "approval pending" in str(answer.content[0].model_dump().get("text"))
            await fake.wait_for("chat.postMessage", count=2)
            engine = first.state.runtime.engine  # the state is there only while the process runs
        with unit_of_work(engine) as session:  # as if it stopped before the second card's row
            session.execute(text("DELETE FROM slack_cards WHERE request_id = 2"))
        fake.down = False
        with slack_gateway(tmp_path, fake, hold={"max_wait": "1s"}, reuse=first) as second:
            for request_id in (1, 2):
                await card_of(fake, request_id)
            posted = [c for c in fake.cards() if c.answer.get("ok")]
            assert sorted(c.args["text"].split(":")[0] for c in posted) == ["R-1", "R-2"]
            assert all(has_buttons(c.args) for c in posted)
            async with second.api("ana") as api:
                assert (await api.get("/api/requests/1")).json()["status"] == "pending"


async def test_a_channel_that_does_not_exist_is_tried_once_and_the_web_path_decides(tmp_path: Path) -> None:
    policy = REMINDED.replace("timeout: 15s", 'channel: "#missing"')
    async with fake_slack() as fake:
        with slack_gateway(tmp_path, fake, policy=policy) as gw:
            async with mcp_client(gw.mcp_url, gw.token) as client:
                async with held_call(gw, client, "generate_image", DEAR) as (request_id, results):
                    await fake.wait_for("chat.postMessage")
                    # channel_not_found will not pass by trying again: the job left the send queue (one that is
                    # tried again stays in it until it goes through or is given up).
                    assert gw.state.slack is not None
                    with anyio.fail_after(10):
                        while gw.state.slack.outbox.backlog():
                            await anyio.sleep(0.05)
                    assert len(fake.posts()) == 1
                    async with gw.api("root") as api:
                        await approve_via_api(api, request_id)
                assert not results[0].is_error
                # A later request's card for the same channel queues behind every job the first one's decision
                # queued there: once it has been tried, those ran, and updated nothing.
                async with held_call(gw, client, "generate_image", {**DEAR, "prompt": "later"}) as (later, _):
                    await fake.wait_for("chat.postMessage", count=2)
                    async with gw.api("root") as api:
                        await api.post(f"/api/requests/{later}/reject", json={"reason": "end of test"})
            assert [c.args["text"].split(":")[0] for c in fake.posts()] == [f"R-{request_id}", f"R-{later}"]
            assert fake.called("chat.update") == []


async def test_an_agent_that_withdraws_its_call_turns_the_card_into_a_withdrawal(tmp_path: Path) -> None:
    async with fake_slack() as fake:
        with slack_gateway(tmp_path, fake, hold={"on_requester_gone": "cancel"}) as gw:
            async with mcp_client(gw.mcp_url, gw.token) as client:
                with anyio.move_on_after(2):
                    await client.call_tool("generate_image", DEAR)  # the agent gives up and goes away
            channel, ts = await card_of(fake, 1)
            update = (await fake.wait_for("chat.update", contains="Withdrawn"))[-1]
            assert (update.args["channel"], update.args["ts"]) == (channel, ts)
            assert "*Withdrawn* by the agent" in json.dumps(update.args["blocks"])
            assert not has_buttons(update.args)
            assert await click_later(gw, fake) == "R-1 is already cancelled."
            assert fake.called("views.open") == []


async def click_later(gw: RunningGateway, fake: FakeSlack) -> str:
    """A click on a card whose request is settled (pressed on the card as first posted, which a person may still have
    open): an ephemeral answer, no modal, no decision."""
    await post_signed(gw, fake, await fake.press("U0ANA", "reject", 1, as_posted=True))
    return str((await fake.wait_for("chat.postEphemeral"))[0].args["text"])


async def test_a_decision_taken_by_another_process_reaches_the_card(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(card_keeper, "CATCH_UP_SECONDS", 0.5)
    async with fake_slack() as fake:
        with slack_gateway(tmp_path, fake, hold={"max_wait": "1s"}) as gw:
            async with mcp_client(gw.mcp_url, gw.token) as client:
                answer = await client.call_tool("generate_image", DEAR)
                assert "approval pending" in str(answer.content[0].model_dump().get("text"))
            channel, ts = await card_of(fake, 1)
            with unit_of_work(gw.state.runtime.engine) as session:  # as the CLI does it: no event in this process
                approvals.apply_verdict(
                    session, 1, Approver("root", Role.ADMIN, "cli"), Verdict.REJECT, reason="from the CLI"
                )
            update = (await fake.wait_for("chat.update", contains="from the CLI"))[0]
            assert (update.args["channel"], update.args["ts"]) == (channel, ts)
            assert not has_buttons(update.args)


@contextmanager
def another_process_writing(database: Path) -> Iterator[None]:
    """Holds SQLite's write lock the way a second process (the CLI, a replica) does while it writes."""
    connection = sqlite3.connect(database, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        yield
        connection.execute("ROLLBACK")
    finally:
        connection.close()


async def test_cards_and_clicks_that_only_read_do_not_wait_for_another_processs_write_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(card_keeper, "CATCH_UP_SECONDS", 0.5)
    async with fake_slack() as fake:
        with slack_gateway(tmp_path, fake, hold={"max_wait": "1s"}) as gw:
            async with mcp_client(gw.mcp_url, gw.token) as client:
                await client.call_tool("generate_image", DEAR)
            channel, ts = await card_of(fake, 1)
            pressed = await fake.press("U0STRANGER", "approve", 1)  # on the card as it was before the CLI decided
            with unit_of_work(gw.state.runtime.engine) as session:
                approvals.apply_verdict(
                    session, 1, Approver("root", Role.ADMIN, "cli"), Verdict.REJECT, reason="from the CLI"
                )
            with another_process_writing(tmp_path / "airlock.db"):
                # SQLite would keep a writer waiting up to its 30 s busy timeout; readers in WAL mode never wait.
                with anyio.fail_after(10):
                    await post_signed(gw, fake, pressed)
                    told = (await fake.wait_for("chat.postEphemeral"))[0].args
                    assert (told["user"], told["text"]) == ("U0STRANGER", NOT_LINKED)
                    update = (await fake.wait_for("chat.update", contains="from the CLI"))[0]
                assert (update.args["channel"], update.args["ts"]) == (channel, ts)


async def test_a_card_post_that_keeps_failing_goes_behind_its_image_and_the_image_still_follows(
    tmp_path: Path,
) -> None:
    async with fake_slack() as fake:
        fake.break_method("chat.postMessage")
        with slack_gateway(tmp_path, fake) as gw:
            async with mcp_client(gw.mcp_url, gw.token) as client:
                async with held_call(gw, client, "generate_image", DEAR) as (request_id, results):
                    await fake.wait_for("chat.postMessage")
                    async with gw.api("ana") as api:
                        await approve_via_api(api, request_id)
            assert not results[0].is_error
            # Failed at once, after 1 s and after 2 s more: the card's post goes behind the image, which has no
            # thread yet.
            await fake.wait_for("chat.postMessage", count=3, timeout=10)
            fake.broken.clear()  # the fake failed the third one as it recorded it
            await card_of(fake, request_id)
            await fake.wait_for("files.completeUploadExternal", timeout=15)
            assert len(fake.uploads) == 1
