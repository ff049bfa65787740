"""The calls made while someone waits for the answer (not through the send queue): one short 429 is waited out,
and views.open only while the click's trigger_id is still good."""

from __future__ import annotations

import anyio
import pytest

from service.slack.client import SlackClient, SlackError
from tests.slack.fake_slack import BOT_TOKEN, fake_slack

pytestmark = pytest.mark.anyio

MODAL = {"type": "modal", "title": {"type": "plain_text", "text": "Reject R-1"}, "blocks": []}


async def test_ephemeral_users_info_and_usergroups_wait_out_one_short_429() -> None:
    async with fake_slack() as fake:
        fake.groups["S0DESIGN"] = ["U0ANA"]
        fake.emails["U0ANA"] = "ana@example.com"
        for method in ("chat.postEphemeral", "users.info", "usergroups.users.list"):
            fake.rate_limit(method, 1, retry_after=1)
        client = SlackClient(BOT_TOKEN, fake.api_url)
        await client.post_ephemeral("C1", "U0ANA", "hello")
        assert await client.user_email("U0ANA") == "ana@example.com"
        assert await client.usergroup_members("S0DESIGN") == ["U0ANA"]
        for method in ("chat.postEphemeral", "users.info", "usergroups.users.list"):
            first, second = fake.called(method)
            assert second.at - first.at >= 0.95 and second.answer["ok"]


async def test_a_long_or_second_429_is_not_waited_for() -> None:
    async with fake_slack() as fake:
        fake.rate_limit("chat.postEphemeral", 1, retry_after=30)
        fake.rate_limit("users.info", 2, retry_after=0.1)
        client = SlackClient(BOT_TOKEN, fake.api_url)
        with anyio.fail_after(5):
            with pytest.raises(SlackError, match="ratelimited"):
                await client.post_ephemeral("C1", "U0ANA", "hello")
            with pytest.raises(SlackError, match="ratelimited"):
                await client.user_email("U0ANA")
        assert len(fake.called("chat.postEphemeral")) == 1 and len(fake.called("users.info")) == 2


async def test_views_open_retries_only_within_the_trigger_ids_three_seconds() -> None:
    async with fake_slack() as fake:
        client = SlackClient(BOT_TOKEN, fake.api_url)
        fake.rate_limit("views.open", 1, retry_after=1)
        await client.open_view("1.2.abc", MODAL, expires_at=anyio.current_time() + 3)
        assert [bool(c.answer.get("ok")) for c in fake.called("views.open")] == [False, True]

        fake.rate_limit("views.open", 1, retry_after=2)  # 2 s would land past the trigger's 3 s, less the call
        started = anyio.current_time()
        with pytest.raises(SlackError, match="ratelimited"):
            await client.open_view("1.2.def", MODAL, expires_at=anyio.current_time() + 2)
        assert anyio.current_time() - started < 1 and len(fake.called("views.open")) == 3

        fake.rate_limit("views.open", 1, retry_after=0.1)
        with pytest.raises(SlackError, match="ratelimited"):
            await client.open_view("1.2.ghi", MODAL)  # no trigger expiry known: no retry
        assert len(fake.called("views.open")) == 4
