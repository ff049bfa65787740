"""The Slack edit modal's form: what it is filled with, and what its submission becomes. Pure: no I/O.

An edit is a patch on the exact original (docs/architecture.md#edits-and-votes). The modal shows the decider's values in
full, with declared secrets as their masked marker (never posted to Slack), and it is offered only when that fits in one
Slack text input. A submission becomes the JSON merge patch of what the person changed (`view.patch_from_edit`), bound
to the digest the modal showed: a request edited or voted on meanwhile under other arguments refuses it, rather than
running a mix.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.approvals.edits import ArgumentValidator, apply_patch
from service.approvals.models import ToolCallRequest
from service.approvals.view import masked_copy, patch_from_edit, secrets_of
from service.errors import InvalidInput
from service.slack import cards
from service.slack.interactions import Submission

EDIT_INPUT_CHARS = 3000  # Slack's limit for a plain_text_input's value


@dataclass(frozen=True)
class EditForm:
    """The arguments under review as the modal shows them, and the digest they have."""

    shown: dict[str, Any]
    digest: str

    @property
    def text(self) -> str:
        return json.dumps(self.shown, indent=2, ensure_ascii=False)

    @property
    def fits(self) -> bool:
        return len(self.text) <= EDIT_INPUT_CHARS


def form_for(request: ToolCallRequest) -> EditForm:
    shown: dict[str, Any] = masked_copy(request.review_arguments, secrets_of(request.approval))
    return EditForm(shown, request.review_digest)


def modal(request: ToolCallRequest, channel: str | None) -> dict[str, Any] | None:
    """The edit modal, or None when a value is too long for Slack (the person edits in the web UI instead)."""
    assert request.id is not None
    form = form_for(request)
    if not form.fits:
        return None
    return cards.edit_modal(request.id, channel, form.text, form.digest, EDIT_INPUT_CHARS)


def read_patch(
    submission: Submission, request: ToolCallRequest, validate: ArgumentValidator
) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The merge patch the person's edit makes, or the modal's errors by block id."""
    form = form_for(request)
    try:
        if submission.digest is None or submission.digest != form.digest:
            raise _FormError(
                f"R-{request.id}'s arguments changed after this form was opened (someone else edited them). "
                "Cancel, and press Edit again to start from the arguments under review now."
            )
        edited = _edited_object(submission)
        try:
            patch = patch_from_edit(form.shown, edited)
            arguments = apply_patch(request.review_arguments, patch)
        except InvalidInput as exc:
            raise _FormError(f"{exc.message[:1].upper()}{exc.message[1:]}.") from None
        problems = validate(request.tool, arguments)
        if problems:
            raise _FormError(("Does not fit the tool: " + "; ".join(problems))[:1900])
    except _FormError as exc:
        return None, _error(exc.text)
    return patch, {}


class _FormError(Exception):
    """What the modal says under the arguments field."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def _edited_object(submission: Submission) -> Mapping[str, Any]:
    text = submission.value(cards.ARGUMENTS_BLOCK)
    if text is None:
        raise _FormError("Give the arguments as a JSON object.")
    try:
        edited = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _FormError(f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") from None
    except RecursionError:
        raise _FormError("Not valid JSON: nested too deeply.") from None
    if not isinstance(edited, Mapping):
        raise _FormError("The arguments must be a JSON object: {...}.")
    return edited


def _error(text: str) -> dict[str, str]:
    return {cards.ARGUMENTS_BLOCK: text}
