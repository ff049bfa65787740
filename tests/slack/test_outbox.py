"""The per-channel send queue with the real Slack client against the fake Slack: Retry-After, backoff, order, and
one throttled channel not holding up another."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import pytest

from service.slack.client import SlackClient
from service.slack.outbox import SendQueue
from tests.slack.fake_slack import BOT_TOKEN, FakeSlack, fake_slack

pytestmark = pytest.mark.anyio


def poster(client: SlackClient, channel: str, text: str) -> Callable[[], Awaitable[None]]:
    async def post() -> None:
        await client.post_message(channel, text, None)

    return post


async def delivered(fake: FakeSlack, count: int, timeout: float = 10) -> list[str]:
    with anyio.fail_after(timeout):
        while len([c for c in fake.posts() if c.answer.get("ok")]) < count:
            await anyio.sleep(0.02)
    return [str(c.args["text"]) for c in fake.posts() if c.answer.get("ok")]


async def drained(queue: SendQueue, timeout: float = 5) -> int:
    """The fake records a request before the client has read its answer, so the job that sent it may still be in
    the queue for a moment: wait for the queue, not for the fake."""
    with anyio.fail_after(timeout):
        while queue.backlog():
            await anyio.sleep(0.02)
    return queue.backlog()


async def test_retry_after_is_honoured_and_order_is_kept() -> None:
    async with fake_slack() as fake:
        fake.rate_limit("chat.postMessage", 2, retry_after=1)
        client = SlackClient(BOT_TOKEN, fake.api_url)
        queue = SendQueue(interval_seconds=0.05)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(queue.run)
            for text in ("first", "second", "third"):
                queue.put("#c", poster(client, "#c", text))
            assert await delivered(fake, 3) == ["first", "second", "third"]
            tasks.cancel_scope.cancel()
        attempts = fake.posts()
        assert [c.args["text"] for c in attempts] == ["first", "first", "first", "second", "third"]
        assert attempts[1].at - attempts[0].at >= 0.95 and attempts[2].at - attempts[1].at >= 0.95


async def test_slack_down_is_retried_with_growing_pauses_until_it_is_back() -> None:
    async with fake_slack() as fake:
        fake.down = True
        client = SlackClient(BOT_TOKEN, fake.api_url)
        queue = SendQueue(interval_seconds=0.05, first_backoff_seconds=0.1, max_backoff_seconds=0.4)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(queue.run)
            queue.put("#c", poster(client, "#c", "kept"))
            with anyio.fail_after(10):
                while len(fake.posts()) < 5:
                    await anyio.sleep(0.02)
            fake.down = False
            assert await delivered(fake, 1) == ["kept"]
            tasks.cancel_scope.cancel()
        gaps = [b.at - a.at for a, b in zip(fake.posts(), fake.posts()[1:], strict=False)]
        assert gaps[0] >= 0.09 and gaps[1] >= 0.19 and gaps[2] >= 0.39  # 0.1, 0.2, 0.4, then capped
        assert max(gaps) < 1.0


async def test_a_job_that_fails_for_good_is_dropped_and_the_queue_goes_on() -> None:
    async with fake_slack() as fake:
        good = SlackClient(BOT_TOKEN, fake.api_url)
        bad = SlackClient("xoxb-revoked", fake.api_url)
        queue = SendQueue(interval_seconds=0.05)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(queue.run)
            queue.put("#c", poster(bad, "#c", "refused"))
            queue.put("#c", poster(good, "#c", "after"))
            assert await delivered(fake, 1) == ["after"]
            tasks.cancel_scope.cancel()
        assert [c.args["text"] for c in fake.posts()] == ["refused", "after"]  # invalid_auth is not retried


async def test_a_throttled_channel_does_not_hold_up_another_and_keyed_jobs_collapse() -> None:
    async with fake_slack() as fake:
        fake.rate_limit("chat.postMessage", 1, retry_after=3)
        client = SlackClient(BOT_TOKEN, fake.api_url)
        queue = SendQueue(interval_seconds=0.05)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(queue.run)
            queue.put("#slow", poster(client, "#slow", "slow"), key="card-1")
            with anyio.fail_after(5):
                while not fake.posts():
                    await anyio.sleep(0.01)
            for _ in range(3):  # while the first is waiting out its 429, the same card is asked for again
                queue.put("#slow", poster(client, "#slow", "slow"), key="card-1")
            queue.put("#fast", poster(client, "#fast", "fast"))
            assert await delivered(fake, 1, timeout=2) == ["fast"]
            assert await delivered(fake, 2, timeout=6) == ["fast", "slow"]
            assert await drained(queue) == 0
            tasks.cancel_scope.cancel()
        assert [c.args["text"] for c in fake.posts()] == ["slow", "fast", "slow"]


async def test_a_job_that_always_fails_is_given_up_after_its_attempts_and_later_cards_go_out() -> None:
    async with fake_slack() as fake:
        fake.break_method("files.getUploadURLExternal")  # say, an upload that times out every time
        client = SlackClient(BOT_TOKEN, fake.api_url)
        queue = SendQueue(interval_seconds=0.05, first_backoff_seconds=0.05, max_backoff_seconds=0.2, max_attempts=4)

        async def upload() -> None:
            await client.upload_file("#c", "1795514400.000100", b"\x89PNG", filename="R-1.png", title="R-1")

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(queue.run)
            queue.put("#c", upload, key=("image", 1))
            queue.put("#c", poster(client, "#c", "R-2 card"), key=("card", 2))
            queue.put("#c", poster(client, "#c", "R-3 card"), key=("card", 3))
            assert await delivered(fake, 2) == ["R-2 card", "R-3 card"]
            assert await drained(queue) == 0  # given up, not kept forever
            tasks.cancel_scope.cancel()
        assert len(fake.called("files.getUploadURLExternal")) == 4


async def test_rate_limits_do_not_count_against_a_jobs_attempts() -> None:
    async with fake_slack() as fake:
        fake.rate_limit("chat.postMessage", 3, retry_after=0.1)
        client = SlackClient(BOT_TOKEN, fake.api_url)
        queue = SendQueue(interval_seconds=0.05, max_attempts=2)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(queue.run)
            queue.put("#c", poster(client, "#c", "patient"))
            assert await delivered(fake, 1) == ["patient"]
            tasks.cancel_scope.cancel()
        assert len(fake.posts()) == 4


async def test_a_job_that_keeps_failing_goes_behind_later_jobs_and_is_still_tried() -> None:
    async with fake_slack() as fake:
        fake.break_method("files.getUploadURLExternal")
        client = SlackClient(BOT_TOKEN, fake.api_url)
        queue = SendQueue(interval_seconds=0.05, first_backoff_seconds=0.05, demote_after=2, max_attempts=100)

        async def upload() -> None:
            await client.upload_file("#c", "1795514400.000100", b"\x89PNG", filename="R-1.png", title="R-1")

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(queue.run)
            queue.put("#c", upload, key=("image", 1))
            queue.put("#c", poster(client, "#c", "R-2 card"), key=("card", 2))
            assert await delivered(fake, 1, timeout=3) == ["R-2 card"]
            fake.broken.clear()
            with anyio.fail_after(5):
                await fake.wait_for("files.completeUploadExternal")
            assert await drained(queue) == 0
            tasks.cancel_scope.cancel()
        methods = [c.method for c in fake.calls]
        assert methods[:3] == ["files.getUploadURLExternal", "files.getUploadURLExternal", "chat.postMessage"]
        assert len(fake.called("files.completeUploadExternal")) == 1
