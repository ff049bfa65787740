"""Block Kit for the approval card, its modals and reminders. Pure: facts in, JSON out.

The arguments are the decider's view (approvals/view.py): declared secrets masked, real media as a summary, every
other value as it is, escaped. A card that cannot hold them all says what it left out and offers only Reject and
Open; Approve buttons carry the digest of the arguments the card showed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from service.approvals.view import MASKED, ArgumentsView, Secrets, escape_invisible, render

APPROVE = "approve"
APPROVE_REMEMBER = "approve_remember"
REJECT = "reject"
EDIT = "edit"
OPEN = "open"
REJECT_VIEW = "airlock_reject"
EDIT_VIEW = "airlock_edit"
# Block and action ids inside the modals: view_submission reports input values under them.
REASON_BLOCK, PRESET_BLOCK, ARGUMENTS_BLOCK, VALUE = "reason", "preset", "arguments", "value"

_ARGUMENTS_CHARS = 2500  # a section's text may hold 3000

_FINAL_LINES = {
    "expired": ":hourglass: *Expired* {at}: approval timed out, not executed",
    "cancelled": ":no_entry_sign: *Withdrawn* by the agent {at}{why}",
}
_RESULT_LINES = {"succeeded": ":gear: Ran: succeeded", "failed": ":warning: Ran: failed", "executing": ":gear: Running"}


@dataclass(frozen=True)
class CardFacts:
    request_id: int
    status: str
    tool: str
    upstream: str
    grant: str
    owner: str | None
    rule: str
    reason: str | None
    cost_usd: float | None
    arguments: dict[str, Any]
    deadline: datetime
    link: str
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_reason: str | None = None
    edited: bool = False
    votes: list[str] = field(default_factory=list)
    quorum: int = 1
    requester_gone: bool = False
    secrets: Secrets = field(default_factory=Secrets)

    @property
    def public_id(self) -> str:
        return f"R-{self.request_id}"

    @property
    def view(self) -> ArgumentsView:
        return render(self.arguments, self.secrets, full=True)

    @property
    def shown(self) -> str:
        """What a rendered card depends on, short enough to store: a card showing less is updated."""
        return f"{self.status}:{len(self.votes)}:{int(self.requester_gone)}"


def slack_date(moment: datetime) -> str:
    """Slack shows it in each reader's own time zone; the fallback is UTC."""
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def escape(text: str) -> str:
    """mrkdwn control characters, so a value cannot ping @channel or fake a link; and invisible or bidi characters
    as the decider's view escapes them (a no-op on text that view already escaped)."""
    return escape_invisible(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: str) -> str:
    """`escape`, with backticks as the JSON escape `\\u0060`: inside a code span or block a backtick could close it
    and let the rest be read as mrkdwn. In the arguments' JSON text a literal backslash shows doubled, so this is
    never ambiguous there."""
    return escape(text).replace("`", "\\u0060")


def cost_text(cost_usd: float | None) -> str:
    return "unknown" if cost_usd is None else f"${cost_usd:.2f}"


def arguments_text(view: ArgumentsView) -> tuple[str, bool]:
    """The arguments as the card shows them, and whether that is all of them."""
    full = code(view.text())
    if len(full) <= _ARGUMENTS_CHARS:
        return f"```{full}```", True
    line_end = full.rfind("\n", 0, _ARGUMENTS_CHARS)
    shown = full[: line_end if line_end > 0 else _ARGUMENTS_CHARS]  # between lines, not inside an escape
    left_out = (
        f"\n:warning: *{len(full) - len(shown):,} of {len(full):,} characters are left out here.* "
        "Open the request to see every value and approve it."
    )
    return f"```{shown}…```{left_out}", False


def summary(facts: CardFacts) -> str:
    """The notification text (and what screen readers get). Slack parses it like mrkdwn, so the tool name, which an
    upstream server chose, is escaped as in the blocks."""
    state = "needs approval" if facts.status == "pending" else facts.status
    return f"{facts.public_id}: {escape(facts.tool)} {state} (estimated {cost_text(facts.cost_usd)})"


def card(facts: CardFacts) -> list[dict[str, Any]]:
    owner = f" (owner {escape(facts.owner)})" if facts.owner else ""
    rule = f"`{code(facts.rule)}`" + (f"\n{escape(facts.reason)}" if facts.reason else "")
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": escape_invisible(f"{facts.public_id}: {facts.tool}")[:150]},
        },
        {
            "type": "section",
            "fields": [
                _mrkdwn(f"*Tool*\n`{code(facts.tool)}` on `{code(facts.upstream)}`"),
                _mrkdwn(f"*Agent*\n{escape(facts.grant)}{owner}"),
                _mrkdwn(f"*Rule*\n{rule}"),
                _mrkdwn(f"*Estimated cost*\n{cost_text(facts.cost_usd)}"),
                _mrkdwn(f"*Deadline*\n{slack_date(facts.deadline)}"),
            ],
        },
    ]
    view = facts.view
    shown, complete = arguments_text(view)
    blocks.append({"type": "section", "text": _mrkdwn(f"*Arguments*\n{shown}")})
    blocks += _state_blocks(facts)
    if facts.status == "pending":
        blocks.append(_buttons(facts, view.digest if complete else None))
    else:
        blocks.append({"type": "context", "elements": [_mrkdwn(f"<{facts.link}|Open {facts.public_id} in Airlock>")]})
    return blocks


def _state_blocks(facts: CardFacts) -> list[dict[str, Any]]:
    lines: list[str] = []
    if facts.status == "pending":
        if facts.votes:
            voters = ", ".join(escape(v) for v in facts.votes)
            lines.append(f":ballot_box_with_check: {len(facts.votes)} of {facts.quorum} approvals ({voters})")
        if facts.requester_gone:
            lines.append(":zzz: The agent stopped waiting; an approval runs the call when it asks again.")
    elif facts.status == "rejected":
        lines.append(
            f":x: *Rejected* by {escape(facts.decided_by or '?')} {_at(facts.decided_at)}: "
            f"{escape(facts.decision_reason or '')}"
        )
    elif facts.status in _FINAL_LINES:
        why = f": {escape(facts.decision_reason)}" if facts.decision_reason else ""
        lines.append(_FINAL_LINES[facts.status].format(at=_at(facts.decided_at), why=why))
    else:  # approved, executing, succeeded, failed: a person approved it
        edited = " with edited arguments" if facts.edited else ""
        comment = f": {escape(facts.decision_reason)}" if facts.decision_reason else ""
        by = escape(facts.decided_by or "?")
        lines.append(f":white_check_mark: *Approved*{edited} by {by} {_at(facts.decided_at)}{comment}")
        if facts.status in _RESULT_LINES:
            lines.append(_RESULT_LINES[facts.status])
    return [{"type": "section", "text": _mrkdwn("\n".join(lines))}] if lines else []


def _at(moment: datetime | None) -> str:
    return f"at {slack_date(moment)}" if moment is not None else ""


def _buttons(facts: CardFacts, digest: str | None) -> dict[str, Any]:
    """Approve, remember and edit only when the card showed every value (`digest`: of what it showed)."""
    value = str(facts.request_id)
    elements = []
    if digest is not None:
        approving = f"{value}:{digest}"
        elements += [
            _button("Approve", APPROVE, approving, style="primary"),
            _button("Approve & remember (1 h)", APPROVE_REMEMBER, approving),
        ]
    elements.append(_button("Reject", REJECT, value, style="danger"))
    if digest is not None:
        elements.append(_button("Edit & approve", EDIT, approving))
    elements.append({"type": "button", "text": _plain("Open in Airlock"), "action_id": OPEN, "url": facts.link})
    return {"type": "actions", "block_id": f"decide-{facts.request_id}", "elements": elements}


def _button(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {"type": "button", "text": _plain(text), "action_id": action_id, "value": value}
    if style:
        button["style"] = style
    return button


def reject_modal(request_id: int, channel: str | None, presets: list[str]) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = []
    if presets:
        options = [{"text": _plain(p[:75]), "value": p[:150]} for p in presets[:100]]
        blocks.append(
            {
                "type": "input",
                "block_id": PRESET_BLOCK,
                "optional": True,
                "label": _plain("Reason"),
                "element": {"type": "static_select", "action_id": VALUE, "options": options},
            }
        )
    blocks.append(
        {
            "type": "input",
            "block_id": REASON_BLOCK,
            "optional": bool(presets),
            "label": _plain("In your own words" if presets else "Reason"),
            "hint": _plain("The agent reads it."),
            "element": {"type": "plain_text_input", "action_id": VALUE, "multiline": True, "max_length": 2000},
        }
    )
    return _modal(REJECT_VIEW, f"Reject R-{request_id}", "Reject", request_id, channel, blocks)


def edit_modal(request_id: int, channel: str | None, shown: str, digest: str, max_chars: int) -> dict[str, Any]:
    """`shown`: the arguments under review as JSON (edit_form.py); `digest`: theirs, which the submission must match."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "context",
            "elements": [
                _mrkdwn(
                    "The edited call is what runs: only the values you change are changed. A value shown as "
                    f"{escape(MASKED)} keeps its original when left as it is."
                )
            ],
        },
        {
            "type": "input",
            "block_id": ARGUMENTS_BLOCK,
            "label": _plain("Arguments (JSON)"),
            "element": {
                "type": "plain_text_input",
                "action_id": VALUE,
                "multiline": True,
                "max_length": max_chars,
                "initial_value": shown,
            },
        },
    ]
    return _modal(EDIT_VIEW, f"Edit R-{request_id}", "Approve", request_id, channel, blocks, digest)


def reminder(facts: CardFacts, percent: int, mentions: list[str]) -> str:
    who = " ".join(mentions) if mentions else "Approvers"
    deadline = slack_date(facts.deadline)
    return f"{who}: {facts.public_id} is still waiting ({percent}% of its time is gone; deadline {deadline})."


def _modal(
    callback_id: str,
    title: str,
    submit: str,
    request_id: int,
    channel: str | None,
    blocks: list[dict[str, Any]],
    digest: str | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"request": request_id, "channel": channel}
    if digest is not None:
        metadata["digest"] = digest  # what the modal showed; a submission is bound to it
    return {
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": json.dumps(metadata),
        "title": _plain(title[:24]),
        "submit": _plain(submit),
        "close": _plain("Cancel"),
        "blocks": blocks,
    }


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}
