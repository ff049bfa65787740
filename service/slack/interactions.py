"""Slack's interaction payloads (block_actions, view_submission) read into what Airlock needs, and the checks whose
errors must go back in a modal's acknowledgement. Pure: no I/O."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.arguments import parse_request_id
from service.slack import cards

DECISION_ACTIONS = {cards.APPROVE, cards.APPROVE_REMEMBER, cards.REJECT, cards.EDIT}


class BadPayload(ValueError):
    """Not an interaction Airlock understands; acknowledged and ignored."""


@dataclass(frozen=True)
class Click:
    action: str
    request_id: int
    user_id: str
    channel_id: str | None
    trigger_id: str | None
    digest: str | None = None
    """The digest of the arguments the card showed (Approve buttons carry it)."""


@dataclass(frozen=True)
class Submission:
    view: str
    request_id: int
    user_id: str
    channel_id: str | None
    values: Mapping[str, Any]
    digest: str | None = None
    """The digest of the arguments the modal showed (the edit modal keeps it in private_metadata)."""

    def value(self, block_id: str) -> str | None:
        """The text typed, or the option chosen, in one input block."""
        block = self.values.get(block_id)
        entry = block.get(cards.VALUE) if isinstance(block, Mapping) else None
        if not isinstance(entry, Mapping):
            return None
        if entry.get("type") == "static_select":
            option = entry.get("selected_option") or {}
            value = option.get("value") if isinstance(option, Mapping) else None
        else:
            value = entry.get("value")
        return value if isinstance(value, str) and value.strip() else None


def parse(payload: Mapping[str, Any]) -> Click | Submission | None:
    """None for interactions that need nothing from us (such as the link button)."""
    if not isinstance(payload, Mapping):  # Socket Mode hands over whatever the envelope held
        raise BadPayload("not a JSON object")
    kind = payload.get("type")
    user = payload.get("user")
    user_id = user.get("id") if isinstance(user, Mapping) else None
    if not isinstance(user_id, str) or not user_id:
        raise BadPayload("no user")
    if kind == "block_actions":
        actions = payload.get("actions")
        if not isinstance(actions, list) or not actions or not isinstance(actions[0], Mapping):
            raise BadPayload("no action")
        action = actions[0]
        action_id = action.get("action_id")
        if not isinstance(action_id, str) or action_id not in DECISION_ACTIONS:
            return None
        channel = payload.get("channel")
        container = payload.get("container")
        channel_id = channel.get("id") if isinstance(channel, Mapping) else None
        if channel_id is None and isinstance(container, Mapping):
            channel_id = container.get("channel_id")
        trigger = payload.get("trigger_id")
        value = action.get("value")
        if not isinstance(value, str):
            raise BadPayload("the button's value is not text")
        request_part, _, digest = value.partition(":")
        return Click(
            action_id,
            _request_id(request_part),
            user_id,
            channel_id if isinstance(channel_id, str) else None,
            trigger if isinstance(trigger, str) else None,
            digest or None,
        )
    if kind == "view_submission":
        view = payload.get("view")
        if not isinstance(view, Mapping) or view.get("callback_id") not in (cards.REJECT_VIEW, cards.EDIT_VIEW):
            return None
        raw_meta = view.get("private_metadata") or "{}"
        if not isinstance(raw_meta, str):
            raise BadPayload("private_metadata is not ours")
        try:
            meta = json.loads(raw_meta)
        except (json.JSONDecodeError, RecursionError):
            raise BadPayload("private_metadata is not ours") from None
        if not isinstance(meta, dict):
            raise BadPayload("private_metadata is not ours")
        state = view.get("state")
        values = state.get("values") if isinstance(state, Mapping) else None
        channel_id = meta.get("channel")
        shown_digest = meta.get("digest")
        return Submission(
            str(view["callback_id"]),
            _request_id(meta.get("request")),
            user_id,
            channel_id if isinstance(channel_id, str) else None,
            values if isinstance(values, Mapping) else {},
            shown_digest if isinstance(shown_digest, str) else None,
        )
    return None


def _request_id(raw: Any) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 < raw < 2**63:  # our private_metadata holds a number
        return raw
    request_id = parse_request_id(raw)
    if request_id is None:
        raise BadPayload(f"not a request id: {raw!r}")
    return request_id


def rejection_reason(submission: Submission) -> tuple[str | None, dict[str, str]]:
    """The reason, or the modal's errors by block id. Typed words win over a preset."""
    reason = submission.value(cards.REASON_BLOCK) or submission.value(cards.PRESET_BLOCK)
    if reason is None:
        return None, {cards.REASON_BLOCK: "Say why: the agent reads the reason."}
    return reason.strip(), {}
