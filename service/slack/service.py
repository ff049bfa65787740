"""The Slack approval channel: cards that follow their request, and decisions taken from buttons and modals.

Events arrive on the event loop and are only queued here; the posting happens in per-channel send queues. A
click is acknowledged at once and decided in the background through `approvals.service.decide`, which alone
knows who may decide. The two things Slack wants inside the acknowledgement itself, a modal's validation errors,
are checked before answering; `views.open` is called right after the ack, while the click's trigger_id is valid.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from datetime import timedelta
from functools import partial
from typing import Any

import anyio
from anyio.abc import TaskGroup
from sqlalchemy import Engine

from service.approvals import queries
from service.approvals import service as approvals
from service.approvals.events import EventBus
from service.approvals.models import RequestStatus, ToolCallRequest
from service.approvals.schemas import ApprovalEvent, Remember, Verdict
from service.approvals.service import ArgumentValidator
from service.config import SlackConfig
from service.db.engine import unit_of_work
from service.errors import AirlockError, NotFound
from service.policy import CounterStore
from service.slack import cards, interactions
from service.slack.cards import CardFacts
from service.slack.client import SlackClient, SlackError
from service.slack.identity import SlackDirectory
from service.slack.interactions import Click, Submission
from service.slack.models import SlackCard
from service.slack.outbox import SendQueue
from service.slack.repository import SlackRepository
from service.slack.socket_mode import run_socket_mode
from service.slack.verification import RequestVerifier

log = logging.getLogger(__name__)

NOT_LINKED = (
    "Your Slack account is not linked to an Airlock user, so you are not an approver for this rule. "
    "An admin can link it: airlock users create NAME --slack-user YOUR_SLACK_ID."
)
REMEMBER = Remember("arguments", timedelta(hours=1))
CATCH_UP_SECONDS = 15.0
UNDELIVERABLE = "undeliverable"
_CARD_EVENTS = {"decided", "vote", "expired", "cancelled", "executed", "requester_gone", "changed"}
_EVENTS = {"created", "reminder", *_CARD_EVENTS}
_IMAGE_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


class SlackChannel:
    name = "slack"

    def __init__(
        self,
        config: SlackConfig,
        *,
        db: Engine,
        bus: EventBus,
        public_url: str,
        validate_arguments: ArgumentValidator,
        counters: CounterStore | None,
        on_remembered: Callable[[], None],
        send_interval_seconds: float = 1.0,
    ) -> None:
        assert config.bot_token is not None
        self.config = config
        self.client = SlackClient(config.bot_token.get_secret_value(), config.api_base_url)
        secret = config.signing_secret.get_secret_value() if config.signing_secret else ""
        self.verifier = RequestVerifier(secret) if secret.strip() else None
        self.directory = SlackDirectory(db, self.client, match_email=config.match_email)
        self.outbox = SendQueue(interval_seconds=send_interval_seconds)
        self._db = db
        self._bus = bus
        self._public_url = public_url.rstrip("/")
        self._validate = validate_arguments
        self._counters = counters
        self._on_remembered = on_remembered
        self._events: deque[ApprovalEvent] = deque()
        self._events_waiting = anyio.Event()
        self._tasks: TaskGroup | None = None

    # -- the ApprovalChannel interface ------------------------------------------------------------------------

    def notify(self, event: ApprovalEvent) -> None:
        if event.kind in _EVENTS:
            self._events.append(event)
            self._events_waiting.set()

    async def run(self) -> None:
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            tasks.start_soon(self.outbox.run)
            tasks.start_soon(self._dispatch_events)
            tasks.start_soon(self._catch_up_forever)
            if self.config.app_token is not None and self.config.app_token.get_secret_value().strip():
                tasks.start_soon(
                    run_socket_mode, self.config.app_token.get_secret_value(), self.client.web, self.handle_interaction
                )

    # -- interactions (HTTP and Socket Mode share these) -----------------------------------------------------

    async def handle_interaction(self, payload: Mapping[str, Any]) -> dict[str, Any] | None:
        """The acknowledgement's body (None: an empty 200). Anything slow is started in the background."""
        try:
            parsed = interactions.parse(payload)
        except interactions.BadPayload as exc:
            log.info("Slack interaction ignored: %s", exc)
            return None
        if parsed is None:
            return None
        if isinstance(parsed, Click):
            self._background(self._on_click(parsed))
            return None
        return await self._on_submission(parsed)

    async def _on_click(self, click: Click) -> None:
        if click.action in (cards.APPROVE, cards.APPROVE_REMEMBER):
            remember = REMEMBER if click.action == cards.APPROVE_REMEMBER else None
            await self._decide(click.user_id, click.channel_id, click.request_id, Verdict.APPROVE, remember=remember)
            return
        request = await self._request(click.request_id)
        if request is None:
            await self._ephemeral(click.channel_id, click.user_id, f"There is no request R-{click.request_id}.")
            return
        approver = await self.directory.approver(click.user_id, _named_groups(request))
        if approver is None:
            await self._ephemeral(click.channel_id, click.user_id, NOT_LINKED)
            return
        refusal = _not_decidable(request) or approvals.may_decide(request, approver)
        if refusal is not None:
            await self._ephemeral(click.channel_id, click.user_id, _sentence(refusal))
            return
        assert request.id is not None
        if click.action == cards.REJECT:
            view = cards.reject_modal(request.id, click.channel_id, self.config.reject_presets)
        else:
            shown = interactions.arguments_for_editing(request.arguments)
            if len(shown) > cards.EDIT_INPUT_CHARS:
                link = self._link(request.id)
                text = f"R-{request.id}'s arguments are too long to edit in Slack; edit them in the web UI: {link}"
                await self._ephemeral(click.channel_id, click.user_id, text)
                return
            view = cards.edit_modal(request.id, click.channel_id, shown)
        if click.trigger_id is None:
            return
        try:
            await self.client.open_view(click.trigger_id, view)
        except SlackError as exc:
            log.warning("views.open for R-%s failed: %s", request.id, exc)

    async def _on_submission(self, submission: Submission) -> dict[str, Any] | None:
        if submission.view == cards.REJECT_VIEW:
            reason, errors = interactions.rejection_reason(submission)
            if errors:
                return {"response_action": "errors", "errors": errors}
            self._background(
                self._decide(
                    submission.user_id, submission.channel_id, submission.request_id, Verdict.REJECT, reason=reason
                )
            )
            return None
        request = await self._request(submission.request_id)
        if request is None:
            return {"response_action": "errors", "errors": {cards.ARGUMENTS_BLOCK: "This request no longer exists."}}
        arguments, errors = interactions.edited_arguments(
            submission, request.arguments, partial(self._validate, request.tool)
        )
        if errors:
            return {"response_action": "errors", "errors": errors}
        self._background(
            self._decide(
                submission.user_id,
                submission.channel_id,
                submission.request_id,
                Verdict.APPROVE,
                arguments=arguments,
            )
        )
        return None

    async def _decide(
        self,
        slack_user_id: str,
        channel_id: str | None,
        request_id: int,
        verdict: Verdict,
        *,
        reason: str | None = None,
        arguments: dict[str, Any] | None = None,
        remember: Remember | None = None,
    ) -> None:
        request = await self._request(request_id)
        if request is None:
            await self._ephemeral(channel_id, slack_user_id, f"There is no request R-{request_id}.")
            return
        approver = await self.directory.approver(slack_user_id, _named_groups(request))
        if approver is None:
            await self._ephemeral(channel_id, slack_user_id, NOT_LINKED)
            return

        def run() -> list[ApprovalEvent]:
            with unit_of_work(self._db) as session:
                _, events = approvals.decide(
                    session,
                    request_id,
                    approver,
                    verdict,
                    reason=reason,
                    arguments=arguments,
                    remember=remember,
                    validate_arguments=self._validate,
                    counters=self._counters,
                )
                return events

        try:
            events = await anyio.to_thread.run_sync(run)
        except AirlockError as exc:
            await self._ephemeral(channel_id, slack_user_id, _sentence(exc.message))
            return
        if remember is not None:
            self._on_remembered()
        self._bus.publish(events)  # after the commit: the waiting call wakes, and our cards follow

    async def _ephemeral(self, channel_id: str | None, user_id: str, text: str) -> None:
        if channel_id is None:
            log.info("no channel to tell Slack user %s: %s", user_id, text)
            return
        try:
            await self.client.post_ephemeral(channel_id, user_id, text)
        except SlackError as exc:
            log.warning("chat.postEphemeral failed: %s", exc)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        if self._tasks is None:
            work.close()
            log.warning("Slack interaction dropped: the Slack channel is not running")
            return
        self._tasks.start_soon(_logged, work)

    # -- cards ------------------------------------------------------------------------------------------------

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
        """After a restart, and every few seconds after: post the cards still owed, update the ones that lag (a
        decision taken by another process, such as the CLI, publishes no event here)."""
        while True:
            try:
                owed = await anyio.to_thread.run_sync(self._lagging)
            except AirlockError as exc:
                log.warning("Slack catch-up failed: %s", exc.message)
            else:
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
                channel_id, ts = await self.client.post_message(target, text, blocks)
                await self._saved(request_id, target, channel_id=channel_id, ts=ts, shown=facts.shown)
            elif card.shown != facts.shown:
                await self.client.update_message(card.channel_id, card.ts, text, blocks)
                await self._saved(request_id, target, shown=facts.shown)
        except SlackError as exc:
            if not exc.transient:
                # A channel that does not exist, a deleted card: trying again every catch-up would only fill the log.
                await self._saved(request_id, target, shown=UNDELIVERABLE if card.ts is None else facts.shown)
            raise

    async def _remind(self, request_id: int, target: str, percent: int) -> None:
        facts, card = await self._facts_and_card(request_id, target)
        if facts is None or card is None or card.ts is None or card.channel_id is None or facts.status != "pending":
            return
        request = await self._request(request_id)
        assert request is not None
        approvers = request.approval.get("approvers", {})
        mentions = [f"<@{u}>" for u in approvers.get("slack_users", [])]
        mentions += [f"<!subteam^{g}>" for g in approvers.get("slack_groups", [])]
        mentions += [f"<@{u}>" for u in await self.directory.slack_ids_of(approvers.get("users", []))]
        text = cards.reminder(facts, percent, sorted(set(mentions), key=mentions.index))
        await self.client.post_message(card.channel_id, text, None, thread_ts=card.ts)

    async def _post_image(self, request_id: int, target: str) -> None:
        """The first image of the result, in the card's thread: approvers see what they paid for."""
        facts, card = await self._facts_and_card(request_id, target)
        if facts is None or card is None or card.ts is None or card.channel_id is None or card.image_posted:
            return
        request = await self._request(request_id)
        image = _first_image(request.result if request is not None else None)
        if image is None:
            return
        data, extension = image
        name, title = f"R-{request_id}.{extension}", f"R-{request_id}: {facts.tool}"
        await self.client.upload_file(card.channel_id, card.ts, data, filename=name, title=title)
        await self._saved(request_id, target, image_posted=True)

    # -- database steps (run in worker threads) -----------------------------------------------------------------

    async def _request(self, request_id: int) -> ToolCallRequest | None:
        def load() -> ToolCallRequest | None:
            with unit_of_work(self._db) as session:
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
        if self.config.channel:
            return [self.config.channel]
        named = [str(u) for u in spec.get("approvers", {}).get("slack_users", [])]
        if not named:
            log.warning("R-%s has no Slack channel: set slack.channel or the rule's channel", request.id)
        return named

    def _cards(self, request_id: int) -> list[SlackCard]:
        with unit_of_work(self._db) as session:
            return SlackRepository(session).cards(request_id)

    def _lagging(self) -> list[tuple[int, str]]:
        with unit_of_work(self._db) as session:
            repo = SlackRepository(session)
            owed = []
            for request in repo.pending_without_cards():
                assert request.id is not None
                targets = self._targets(request)
                repo.add_missing_cards(request.id, targets)
                owed += [(request.id, target) for target in targets]
            for card, status in repo.lagging_cards():
                if card.shown == UNDELIVERABLE:
                    continue
                if card.ts is None or (card.shown or "").split(":")[0] != status:
                    owed.append((card.request_id, card.target))
            return owed

    async def _facts_and_card(self, request_id: int, target: str) -> tuple[CardFacts | None, SlackCard | None]:
        def load() -> tuple[CardFacts | None, SlackCard | None]:
            with unit_of_work(self._db) as session:
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
                    arguments=request.arguments,
                    deadline=request.deadline,
                    link=self._link(request_id),
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

    def _link(self, request_id: int) -> str:
        return f"{self._public_url}/requests/{request_id}"


def _named_groups(request: ToolCallRequest) -> list[str]:
    return [str(g) for g in request.approval.get("approvers", {}).get("slack_groups", [])]


def _not_decidable(request: ToolCallRequest) -> str | None:
    if request.status is RequestStatus.PENDING:
        return None
    by = f" by {request.decided_by}" if request.decided_by else ""
    return f"R-{request.id} is already {request.status.value}{by}"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _first_image(result: Mapping[str, Any] | None) -> tuple[bytes, str] | None:
    for block in (result or {}).get("content") or []:
        if isinstance(block, Mapping) and block.get("type") == "image" and isinstance(block.get("data"), str):
            try:
                data = base64.b64decode(block["data"], validate=True)
            except (binascii.Error, ValueError):
                continue
            return data, _IMAGE_TYPES.get(str(block.get("mimeType", "")), "bin")
    return None


async def _logged(work: Coroutine[Any, Any, None]) -> None:
    """Background work from a click: a failure is one log line, never the end of the Slack channel."""
    try:
        await work
    except Exception:
        log.exception("Slack interaction failed")
