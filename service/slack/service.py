"""The Slack approval channel: decisions taken from buttons and modals, and the cards (card_keeper.py).

A click is acknowledged at once and decided in the background through `approvals.service.apply_verdict`, which alone
knows who may decide. The two things Slack wants inside the acknowledgement itself, a modal's validation errors,
are checked before answering; `views.open` is called right after the ack, while the click's trigger_id is valid.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine, Mapping
from datetime import timedelta
from typing import Any

import anyio
from anyio.abc import TaskGroup
from sqlalchemy import Engine
from sqlmodel import Session

from service.approvals.deciders import decider_refusal
from service.approvals.models import RequestStatus, ToolCallRequest
from service.approvals.schemas import ApprovalEvent, Approver, Remember, Verdict
from service.approvals.verdicts import Verdicts
from service.clock import SYSTEM_CLOCK, Clock
from service.config import SlackConfig
from service.errors import AirlockError, Forbidden
from service.slack import cards, edit_form, interactions
from service.slack.card_keeper import CardKeeper
from service.slack.client import SlackClient, SlackError
from service.slack.identity import SlackDirectory
from service.slack.interactions import Click, Submission
from service.slack.outbox import SendQueue
from service.slack.socket_mode import run_socket_mode
from service.slack.verification import RequestVerifier

log = logging.getLogger(__name__)

NOT_LINKED = (
    "Your Slack account is not linked to an Airlock user, so you are not an approver for this rule. "
    "An admin can link it: airlock users create NAME --slack-user YOUR_SLACK_ID."
)
REMEMBER = Remember("arguments", timedelta(hours=1))
TRIGGER_ID_SECONDS = 3.0


class SlackChannel:
    name = "slack"

    def __init__(
        self,
        config: SlackConfig,
        *,
        db: Engine,
        public_url: str,
        verdicts: Verdicts,
        send_interval_seconds: float = 1.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        assert config.bot_token is not None
        self.config = config
        self.client = SlackClient(config.bot_token.get_secret_value(), config.api_base_url)
        secret = config.signing_secret.get_secret_value() if config.signing_secret else ""
        self.verifier = RequestVerifier(secret) if secret.strip() else None
        self.directory = SlackDirectory(db, self.client, match_email=config.match_email)
        self.outbox = SendQueue(interval_seconds=send_interval_seconds)
        self._verdicts = verdicts
        self.keeper = CardKeeper(
            db=db,
            client=self.client,
            outbox=self.outbox,
            directory=self.directory,
            default_channel=config.channel,
            public_url=public_url,
            clock=clock,
        )
        self._tasks: TaskGroup | None = None

    # -- the ApprovalChannel interface ------------------------------------------------------------------------

    def notify(self, event: ApprovalEvent) -> None:
        if event.origin is not None:
            return  # a change made on another replica: that replica's Slack channel keeps the card
        self.keeper.notify(event)

    async def run(self) -> None:
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            tasks.start_soon(self.outbox.run)
            tasks.start_soon(self.keeper.run)
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
        # The acknowledgement went out just now; Slack's trigger_id for a modal is good for 3 s from the click.
        trigger_expires_at = anyio.current_time() + TRIGGER_ID_SECONDS
        if click.action in (cards.APPROVE, cards.APPROVE_REMEMBER):
            await self._approve_click(click)
            return
        request = await self._request_they_may_decide(click)
        view = await self._modal_for(click, request) if request is not None else None
        if view is None or click.trigger_id is None:
            return
        try:
            await self.client.open_view(click.trigger_id, view, expires_at=trigger_expires_at)
        except SlackError as exc:
            log.warning("views.open for R-%s failed: %s", click.request_id, exc)

    async def _approve_click(self, click: Click) -> None:
        if click.digest is None:  # a card that left values out has no Approve; a forged click gets this
            text = f"Open R-{click.request_id} in Airlock to see every value before approving."
            await self._ephemeral(click.channel_id, click.user_id, text)
            return
        await self._decide(
            click.user_id,
            click.channel_id,
            click.request_id,
            Verdict.APPROVE,
            remember=REMEMBER if click.action == cards.APPROVE_REMEMBER else None,
            seen_digest=click.digest,
        )

    async def _request_they_may_decide(self, click: Click) -> ToolCallRequest | None:
        """The clicked request, or None once the person has been told why they may not decide it."""
        request = await self.keeper.request(click.request_id)
        if request is None:
            await self._ephemeral(click.channel_id, click.user_id, f"There is no request R-{click.request_id}.")
            return None
        approver = await self._approver_or_tell(click.channel_id, click.user_id, request)
        if approver is None:
            return None
        refusal = _not_decidable(request) or decider_refusal(request, approver)
        if refusal is not None:
            await self._ephemeral(click.channel_id, click.user_id, _sentence(refusal))
            return None
        return request

    async def _modal_for(self, click: Click, request: ToolCallRequest) -> dict[str, Any] | None:
        """The reject or edit modal, or None when the arguments do not fit Slack's edit field (the person is told)."""
        assert request.id is not None
        if click.action == cards.REJECT:
            return cards.reject_modal(request.id, click.channel_id, self.config.reject_presets)
        edit_view = edit_form.modal(request, click.channel_id)
        if edit_view is None:
            link = self.keeper.link(request.id)
            text = (
                f"R-{request.id}'s arguments are longer than Slack's {edit_form.EDIT_INPUT_CHARS:,} characters "
                f"for a text field, so they cannot be edited here; edit them in the web UI: {link}"
            )
            await self._ephemeral(click.channel_id, click.user_id, text)
        return edit_view

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
        request = await self.keeper.request(submission.request_id)
        if request is None:
            return {"response_action": "errors", "errors": {cards.ARGUMENTS_BLOCK: "This request no longer exists."}}
        patch, errors = edit_form.read_patch(submission, request, self._verdicts.validate_arguments)
        if errors:
            return {"response_action": "errors", "errors": errors}
        self._background(
            self._decide(
                submission.user_id,
                submission.channel_id,
                submission.request_id,
                Verdict.APPROVE,
                patch=patch,
                seen_digest=submission.digest,
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
        patch: dict[str, Any] | None = None,
        remember: Remember | None = None,
        seen_digest: str | None = None,
    ) -> None:
        request = await self.keeper.request(request_id)
        if request is None:
            await self._ephemeral(channel_id, slack_user_id, f"There is no request R-{request_id}.")
            return
        approver = await self._approver_or_tell(channel_id, slack_user_id, request)
        if approver is None:
            return

        try:
            await self._verdicts.submit(
                request_id,
                approver,
                verdict,
                _nothing,
                reason=reason,
                patch=patch,
                remember=remember,
                seen_digest=seen_digest,
            )  # the events it publishes bring our cards up to date
        except AirlockError as exc:
            await self._ephemeral(channel_id, slack_user_id, _sentence(exc.message))

    async def _approver_or_tell(
        self, channel_id: str | None, slack_user_id: str, request: ToolCallRequest
    ) -> Approver | None:
        """The Airlock user behind a click, or None once the person has been told why they have none."""
        try:
            approver = await self.directory.approver(slack_user_id, _named_groups(request))
        except Forbidden as refused:  # a deactivated user: their click decides nothing
            await self._ephemeral(channel_id, slack_user_id, refused.message)
            return None
        if approver is None:
            await self._ephemeral(channel_id, slack_user_id, NOT_LINKED)
        return approver

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


def _nothing(session: Session, request: ToolCallRequest) -> None:
    """Slack needs no view of the decided request: the card follows from the events."""


def _named_groups(request: ToolCallRequest) -> list[str]:
    return [str(g) for g in request.approval.get("approvers", {}).get("slack_groups", [])]


def _not_decidable(request: ToolCallRequest) -> str | None:
    if request.status is RequestStatus.PENDING:
        return None
    by = f" by {request.decided_by}" if request.decided_by else ""
    return f"R-{request.id} is already {request.status.value}{by}"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


async def _logged(work: Coroutine[Any, Any, None]) -> None:
    """Background work from a click: a failure is one log line, never the end of the Slack channel."""
    try:
        await work
    except Exception:
        log.exception("Slack interaction failed")
