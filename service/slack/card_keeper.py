"""Cards that follow their request: posted when a call is held, updated on every change, the image in the thread,
reminders as thread replies, and after a restart whatever is still owed.

Events only queue work here; Slack is called from the per-channel send queue, so nothing waits for Slack. Each
card job renders the request as it is *now*, so a late or repeated job shows the current state, never an old one.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections import deque
from collections.abc import Mapping
from datetime import timedelta
from functools import partial
from typing import Any

import anyio
from sqlalchemy import Engine

from service.approvals import queries
from service.approvals import service as approvals
from service.approvals.models import RequestStatus, ToolCallRequest
from service.approvals.schemas import ApprovalEvent
from service.approvals.view import secrets_of
from service.clock import SYSTEM_CLOCK, Clock
from service.db.engine import reading, unit_of_work
from service.db.notify import PROCESS_ID
from service.errors import AirlockError, NotFound
from service.slack import cards
from service.slack.cards import CardFacts
from service.slack.client import SlackClient, SlackError
from service.slack.identity import SlackDirectory
from service.slack.models import SlackCard
from service.slack.outbox import SendQueue
from service.slack.repository import SlackRepository

log = logging.getLogger(__name__)

CATCH_UP_SECONDS = 15.0
# Longer than any one post or upload takes (the client's timeouts are shorter), short enough that a card whose
# sender died is taken over by another replica's catch-up within a minute or so.
SEND_LEASE = timedelta(seconds=60)
UNDELIVERABLE = "undeliverable"
_CARD_EVENTS = {"decided", "vote", "expired", "cancelled", "executed", "requester_gone", "changed"}
EVENTS = {"created", "reminder", *_CARD_EVENTS}
_RELEASED: dict[str, Any] = {"sending_by": None, "sending_until": None}
_IMAGE_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


class CardKeeper:
    def __init__(
        self,
        *,
        db: Engine,
        client: SlackClient,
        outbox: SendQueue,
        directory: SlackDirectory,
        default_channel: str | None,
        public_url: str,
        sender: str = PROCESS_ID,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._sender = sender
        self._clock = clock  # when a send lease ends (SEND_LEASE)
        self._db = db
        self._client = client
        self.outbox = outbox
        self._directory = directory
        self._default_channel = default_channel
        self._public_url = public_url.rstrip("/")
        self._events: deque[ApprovalEvent] = deque()
        self._events_waiting = anyio.Event()

    def notify(self, event: ApprovalEvent) -> None:
        if event.kind in EVENTS:
            self._events.append(event)
            self._events_waiting.set()

    async def run(self) -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._dispatch_events)
            tasks.start_soon(self._catch_up_forever)

    async def _dispatch_events(self) -> None:
        while True:
            while not self._events:
                self._events_waiting = anyio.Event()
                await self._events_waiting.wait()
            event = self._events.popleft()
            try:
                await self._on_event(event)
            except AirlockError as exc:
                log.warning("Slack could not follow %s of R-%s: %s", event.kind, event.request_id, exc.message)
            except Exception:
                log.exception("Slack could not follow %s of R-%s", event.kind, event.request_id)

    async def _on_event(self, event: ApprovalEvent) -> None:
        request_id = event.request_id
        if event.kind == "created":
            for target in await anyio.to_thread.run_sync(self._open_cards, request_id):
                self._queue_sync(request_id, target)
            return
        targets = [card.target for card in await anyio.to_thread.run_sync(self._cards, request_id)]
        for target in targets:
            if event.kind == "reminder":
                percent = int(event.detail.get("percent", 50))
                self.outbox.put(target, partial(self._remind, request_id, target, percent))
                continue
            self._queue_sync(request_id, target)
            if event.kind == "executed" and event.status == RequestStatus.SUCCEEDED.value:
                self.outbox.put(target, partial(self._post_image, request_id, target), key=("image", request_id))

    def _queue_sync(self, request_id: int, target: str) -> None:
        self.outbox.put(target, partial(self._sync_card, request_id, target), key=("card", request_id))

    async def _catch_up_forever(self) -> None:
        """At start, the held calls that never got their cards queued (the process stopped first); then every few
        seconds, the cards not yet posted and the ones that lag (a decision taken by another process, such as the
        CLI, publishes no event here)."""
        at_start = True
        while True:
            try:
                owed = await anyio.to_thread.run_sync(self._lagging, at_start)
            except AirlockError as exc:
                log.warning("Slack catch-up failed: %s", exc.message)
            except Exception:  # a bug must not take the gateway down with it
                log.exception("Slack catch-up failed")
            else:
                at_start = False
                for request_id, target in owed:
                    self._queue_sync(request_id, target)
            await anyio.sleep(CATCH_UP_SECONDS)

    async def _sync_card(self, request_id: int, target: str) -> None:
        facts, card = await self._facts_and_card(request_id, target)
        if facts is None or card is None:
            return
        if card.shown == UNDELIVERABLE:
            return
        text, blocks = cards.summary(facts), cards.card(facts)
        try:
            if card.ts is None or card.channel_id is None:
                if not await self._claim(request_id, target, image=False):
                    return  # another replica is posting it (or just did): its card is the one
                channel_id, ts = await self._client.post_message(target, text, blocks)
                await self._saved(request_id, target, channel_id=channel_id, ts=ts, shown=facts.shown, **_RELEASED)
                if facts.status == RequestStatus.SUCCEEDED.value:
                    # The image job may have run first and found no thread to post in (the send queue puts a job
                    # that keeps failing, such as this card's post, behind later ones).
                    self.outbox.put(target, partial(self._post_image, request_id, target), key=("image", request_id))
            elif card.shown != facts.shown:
                await self._client.update_message(card.channel_id, card.ts, text, blocks)
                await self._saved(request_id, target, shown=facts.shown)
        except SlackError as exc:
            if not exc.transient:
                # A channel that does not exist, a deleted card: trying again every catch-up would only fill the log.
                if card.ts is None:
                    await self._saved(request_id, target, shown=UNDELIVERABLE, **_RELEASED)
                else:
                    await self._saved(request_id, target, shown=facts.shown)
            raise

    async def _remind(self, request_id: int, target: str, percent: int) -> None:
        facts, card = await self._facts_and_card(request_id, target)
        if facts is None or card is None or card.ts is None or card.channel_id is None or facts.status != "pending":
            return
        request = await self.request(request_id)
        assert request is not None
        approvers = request.approval.get("approvers", {})
        mentions = [f"<@{u}>" for u in approvers.get("slack_users", [])]
        mentions += [f"<!subteam^{g}>" for g in approvers.get("slack_groups", [])]
        mentions += [f"<@{u}>" for u in await self._directory.slack_ids_of(approvers.get("users", []))]
        text = cards.reminder(facts, percent, sorted(set(mentions), key=mentions.index))
        await self._client.post_message(card.channel_id, text, None, thread_ts=card.ts)

    async def _post_image(self, request_id: int, target: str) -> None:
        """The first image of the result, in the card's thread: approvers see what they paid for."""
        facts, card = await self._facts_and_card(request_id, target)
        if facts is None or card is None or card.ts is None or card.channel_id is None or card.image_posted:
            return
        request = await self.request(request_id)
        image = _first_image(request.result if request is not None else None)
        if image is None:
            return
        if not await self._claim(request_id, target, image=True):
            return
        data, extension = image
        name, title = f"R-{request_id}.{extension}", f"R-{request_id}: {facts.tool}"
        await self._client.upload_file(card.channel_id, card.ts, data, filename=name, title=title)
        await self._saved(request_id, target, image_posted=True, **_RELEASED)

    # -- database steps (run in worker threads) -----------------------------------------------------------------
    # Reads use `reading`: on SQLite `unit_of_work` queues for the write lock, and a catch-up every few seconds, or
    # a click, must neither wait for a writer nor hold one up. Only the steps that store something take it.

    async def request(self, request_id: int) -> ToolCallRequest | None:
        def load() -> ToolCallRequest | None:
            with reading(self._db) as session:
                return approvals.find(session, request_id)

        return await anyio.to_thread.run_sync(load)

    def _open_cards(self, request_id: int) -> list[str]:
        with unit_of_work(self._db) as session:
            request = approvals.get(session, request_id)
            targets = self._targets(request)
            if targets:
                SlackRepository(session).add_missing_cards(request_id, targets)
            return targets

    def _targets(self, request: ToolCallRequest) -> list[str]:
        """The rule's channel, else the default channel, else a DM to each Slack user the rule names."""
        spec = request.approval
        if not spec.get("slack", True):
            return []  # slack: false, for tools decided only in the web UI
        if spec.get("channel"):
            return [str(spec["channel"])]
        if self._default_channel:
            return [self._default_channel]
        named = [str(u) for u in spec.get("approvers", {}).get("slack_users", [])]
        if not named:
            log.warning("R-%s has no Slack channel: set slack.channel or the rule's channel", request.id)
        return named

    def _cards(self, request_id: int) -> list[SlackCard]:
        with reading(self._db) as session:
            return SlackRepository(session).cards(request_id)

    def _lagging(self, at_start: bool) -> list[tuple[int, str]]:
        owed = self._cards_owed_from_before_start() if at_start else []
        with reading(self._db) as session:
            for card, status in SlackRepository(session).lagging_cards():
                if card.shown == UNDELIVERABLE:
                    continue
                if card.ts is None or (card.shown or "").split(":")[0] != status:
                    owed.append((card.request_id, card.target))
        return owed

    def _cards_owed_from_before_start(self) -> list[tuple[int, str]]:
        with unit_of_work(self._db) as session:
            repo = SlackRepository(session)
            owed = []
            for request in repo.pending_without_cards():
                assert request.id is not None
                targets = self._targets(request)
                repo.add_missing_cards(request.id, targets)
                owed += [(request.id, target) for target in targets]
            return owed

    async def _facts_and_card(self, request_id: int, target: str) -> tuple[CardFacts | None, SlackCard | None]:
        def load() -> tuple[CardFacts | None, SlackCard | None]:
            with reading(self._db) as session:
                card = SlackRepository(session).card(request_id, target)
                try:
                    request = approvals.get(session, request_id)
                except NotFound:
                    return None, card
                detail = queries.detail(session, request_id)
                spec = request.approval
                facts = CardFacts(
                    request_id=request_id,
                    status=request.status.value,
                    tool=request.tool,
                    upstream=request.upstream,
                    grant=detail.grant,
                    owner=spec.get("owner"),
                    rule=request.rule,
                    reason=request.reason,
                    cost_usd=detail.cost_usd,
                    arguments=request.review_arguments,
                    secrets=secrets_of(spec),
                    deadline=request.deadline,
                    link=self.link(request_id),
                    decided_by=request.decided_by,
                    decided_at=request.decided_at,
                    decision_reason=request.decision_reason,
                    edited=request.edited_arguments is not None,
                    votes=[str(v["approver"]) for v in detail.approvals],
                    quorum=int(spec.get("quorum", 1)),
                    requester_gone=request.requester_gone,
                )
                return facts, card

        return await anyio.to_thread.run_sync(load)

    async def _claim(self, request_id: int, target: str, *, image: bool) -> bool:
        def claim() -> bool:
            now = self._clock.now()
            with unit_of_work(self._db) as session:
                return SlackRepository(session).claim_send(
                    request_id, target, self._sender, image=image, now=now, until=now + SEND_LEASE
                )

        return await anyio.to_thread.run_sync(claim)

    async def _saved(self, request_id: int, target: str, **values: Any) -> None:
        def save() -> None:
            with unit_of_work(self._db) as session:
                repo = SlackRepository(session)
                card = repo.card(request_id, target)
                if card is not None:
                    for name, value in values.items():
                        setattr(card, name, value)
                    repo.save(card)

        await anyio.to_thread.run_sync(save)

    def link(self, request_id: int) -> str:
        return f"{self._public_url}/requests/{request_id}"


def _first_image(result: Mapping[str, Any] | None) -> tuple[bytes, str] | None:
    for block in (result or {}).get("content") or []:
        if isinstance(block, Mapping) and block.get("type") == "image" and isinstance(block.get("data"), str):
            try:
                data = base64.b64decode(block["data"], validate=True)
            except (binascii.Error, ValueError):
                continue
            return data, _IMAGE_TYPES.get(str(block.get("mimeType", "")), "bin")
    return None
