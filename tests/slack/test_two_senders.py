"""Two replicas' Slack senders on one database: a held call gets one card, not one per replica, even when both
catch up on it at once (both started after an outage) and Slack is slow to answer."""

from __future__ import annotations

import anyio
import pytest
from sqlalchemy import Engine

from service.security import TokenHasher
from service.slack.card_keeper import CardKeeper
from service.slack.client import SlackClient
from service.slack.identity import SlackDirectory
from service.slack.outbox import SendQueue
from tests.approvals.helpers import held
from tests.slack.fake_slack import BOT_TOKEN, fake_slack

pytestmark = pytest.mark.anyio


def keeper_of(replica: str, engine: Engine, api_url: str) -> CardKeeper:
    client = SlackClient(BOT_TOKEN, api_url)
    return CardKeeper(
        db=engine,
        client=client,
        outbox=SendQueue(interval_seconds=0),
        directory=SlackDirectory(engine, client, match_email=False),
        default_channel="#airlock",
        public_url="http://airlock.test",
        sender=replica,
    )


async def test_two_replicas_catching_up_at_once_post_one_card(engine: Engine, hasher: TokenHasher) -> None:
    request_id, _ = held(engine, hasher)
    async with fake_slack() as fake:
        fake.slow["chat.postMessage"] = 0.5  # both read "not posted yet" before either has posted
        keepers = [keeper_of(name, engine, fake.api_url) for name in ("replica-a", "replica-b")]
        async with anyio.create_task_group() as group:
            for keeper in keepers:
                group.start_soon(keeper.outbox.run)
                group.start_soon(keeper.run)
            await fake.wait_for("chat.postMessage", contains=f"R-{request_id}: ")
            # The first post was in flight, so its job was queued; once both queues are empty it is saved, and
            # any job that runs from now on finds the card posted. A second post could only come before that.
            with anyio.fail_after(10):
                while any(keeper.outbox.backlog() for keeper in keepers):
                    await anyio.sleep(0.01)
            group.cancel_scope.cancel()
        assert len(fake.cards()) == 1
        card = await keepers[1].request(request_id)
        assert card is not None and card.status.value == "pending"
