"""What the card, its modals and the modal checks show and accept. Pure functions: no Slack needed."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from service.approvals.models import RequestStatus, ToolCallRequest
from service.approvals.view import MASKED, Secrets
from service.arguments import arguments_digest
from service.slack import cards, edit_form, interactions
from service.slack.cards import CardFacts
from service.slack.interactions import BadPayload, Submission

BLOB = base64.b64encode(b"\x89PNG" + bytes(3000)).decode()
ARGUMENTS: dict[str, Any] = {
    "prompt": "a lighthouse " * 40,
    "api_key": "sk-live-123456",
    "image": BLOB,
    "n": 2,
}
AT = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def facts(**changes: Any) -> CardFacts:
    base: dict[str, Any] = {
        "request_id": 12,
        "status": "pending",
        "tool": "generate_image",
        "upstream": "imagegen",
        "grant": "design-bot",
        "owner": "dana",
        "rule": "/tools/generate_image/require_approval",
        "reason": "cost.usd > 0.10",
        "cost_usd": 0.16,
        "arguments": ARGUMENTS,
        "deadline": AT,
        "link": "https://airlock.example/requests/12",
    }
    return CardFacts(**{**base, **changes})


def text_of(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def test_a_pending_card_shows_the_facts_and_offers_every_button() -> None:
    shown = text_of(cards.card(facts(arguments={"prompt": "a lighthouse", "n": 2})))
    for expected in ("R-12: generate_image", "`imagegen`", "design-bot (owner dana)", "cost.usd &gt; 0.10", "$0.16"):
        assert expected in shown
    assert "<!date^1795514400^" in shown
    actions = next(b for b in cards.card(facts(arguments={"prompt": "a lighthouse"})) if b["type"] == "actions")[
        "elements"
    ]
    assert [e["action_id"] for e in actions] == ["approve", "approve_remember", "reject", "edit", "open"]
    assert actions[0]["value"] == "12:" + arguments_digest({"prompt": "a lighthouse"})
    assert actions[-1]["url"] == "https://airlock.example/requests/12"


def test_a_card_that_leaves_values_out_says_so_and_offers_no_approve() -> None:
    blocks = cards.card(facts())
    shown = text_of(blocks)
    assert "characters are left out here" in shown
    actions = next(b for b in blocks if b["type"] == "actions")["elements"]
    assert [e["action_id"] for e in actions] == ["reject", "open"]
    assert cards.cost_text(None) == "unknown" and cards.cost_text(0.1) == "$0.10"


def test_a_value_cannot_ping_the_channel_or_fake_a_link() -> None:
    shown = text_of(cards.card(facts(arguments={"prompt": "<!channel> <https://evil|click>"})))
    assert "<!channel>" not in shown and "&lt;!channel&gt;" in shown


@pytest.mark.parametrize("tool", ["<!channel> now", "<https://evil.example|approve here>", "a&b"])
def test_a_tool_name_from_upstream_cannot_ping_or_fake_a_link_in_the_notification_text(tool: str) -> None:
    text = cards.summary(facts(tool=tool))
    assert "<" not in text and ">" not in text
    assert cards.escape(tool) in text and text.startswith("R-12: ")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"status": "approved", "decided_by": "ana", "decided_at": AT}, "*Approved* by ana"),
        ({"status": "succeeded", "decided_by": "ana", "decided_at": AT, "edited": True}, "with edited arguments"),
        ({"status": "rejected", "decided_by": "ana", "decided_at": AT, "decision_reason": "no"}, "*Rejected* by ana"),
        ({"status": "expired", "decided_at": AT}, "not executed"),
        ({"status": "cancelled", "decided_at": AT, "decision_reason": "gone"}, "*Withdrawn* by the agent"),
    ],
)
def test_a_decided_card_says_who_when_and_why_and_has_no_buttons(changes: dict[str, Any], expected: str) -> None:
    blocks = cards.card(facts(**changes))
    assert expected in text_of(blocks)
    assert not any(b["type"] == "actions" for b in blocks)


def test_votes_and_an_agent_that_stopped_waiting_show_on_a_pending_card() -> None:
    shown = text_of(cards.card(facts(votes=["ana"], quorum=2, requester_gone=True)))
    assert "1 of 2 approvals (ana)" in shown and "stopped waiting" in shown
    assert facts(votes=["ana"]).shown != facts().shown  # a vote changes the card


def submission(view: str, values: dict[str, Any]) -> Submission:
    return Submission(view, 12, "U0ANA", "C1", values)


def held(arguments: dict[str, Any], secret_keys: list[str]) -> ToolCallRequest:
    return ToolCallRequest(
        id=12,
        status=RequestStatus.PENDING,
        grant_id=1,
        upstream="imagegen",
        tool="generate_image",
        arguments=arguments,
        arguments_digest=arguments_digest(arguments),
        rule="/tools/generate_image/require_approval",
        deadline=AT,
        approval={"secrets": Secrets(keys=frozenset(secret_keys)).to_json()},
    )


# Fits one Slack text input: a prompt, a secret, a small image in base64, a number.
EDITABLE: dict[str, Any] = {**ARGUMENTS, "image": base64.b64encode(b"\x89PNG" + bytes(200)).decode()}


def test_the_edit_modal_shows_full_values_masks_declared_secrets_and_sends_only_what_changed() -> None:
    request = held(EDITABLE, ["api_key"])
    view = edit_form.modal(request, "C1")
    assert view is not None and "sk-live-123456" not in json.dumps(view)
    shown = json.loads(view["blocks"][1]["element"]["initial_value"])
    assert shown == {**EDITABLE, "api_key": MASKED}  # the prompt and the base64 image in full
    assert json.loads(view["private_metadata"])["digest"] == arguments_digest(EDITABLE)
    opened = interactions.parse(
        {"type": "view_submission", "user": {"id": "U0ANA"}, "view": {**view, "state": {"values": {}}}}
    )
    assert isinstance(opened, Submission) and opened.digest == arguments_digest(EDITABLE)

    def submitted(edited: object, digest: str | None = arguments_digest(EDITABLE)) -> Submission:
        value = {"arguments": {"value": {"type": "plain_text_input", "value": json.dumps(edited)}}}
        return Submission(cards.EDIT_VIEW, 12, "U0ANA", "C1", value, digest)

    assert edit_form.read_patch(submitted({**shown, "n": 1}), request, lambda tool, a: []) == ({"n": 1}, {})
    _, errors = edit_form.read_patch(
        submitted({**shown, "n": 1}), request, lambda tool, a: ["n: 1 is less than the minimum of 2"]
    )
    assert errors == {"arguments": "Does not fit the tool: n: 1 is less than the minimum of 2"}
    _, errors = edit_form.read_patch(submitted([1, 2]), request, lambda tool, a: [])
    assert "JSON object" in errors["arguments"]
    _, errors = edit_form.read_patch(submitted({**shown, "n": 1}, "0" * 64), request, lambda tool, a: [])
    assert "changed after this form was opened" in errors["arguments"]
    _, errors = edit_form.read_patch(
        submitted({**shown, "api_key": {"k": MASKED}}), request, lambda tool, a: []
    )  # the marker would run in place of the secret
    assert "masked secret" in errors["arguments"]


def test_arguments_too_long_for_one_slack_text_input_are_not_offered_for_editing() -> None:
    assert edit_form.modal(held({"prompt": "x" * 2990}, []), "C1") is None
    assert edit_form.modal(held({"prompt": "x" * 2900}, []), "C1") is not None


def test_a_rejection_needs_words_and_typed_words_win_over_a_preset() -> None:
    preset = {"value": {"type": "static_select", "selected_option": {"value": "Too expensive"}}}
    typed = {"value": {"type": "plain_text_input", "value": "  spent  "}}
    assert interactions.rejection_reason(submission(cards.REJECT_VIEW, {"preset": preset})) == ("Too expensive", {})
    both = {"preset": preset, "reason": typed}
    assert interactions.rejection_reason(submission(cards.REJECT_VIEW, both)) == ("spent", {})
    reason, errors = interactions.rejection_reason(submission(cards.REJECT_VIEW, {}))
    assert reason is None and "reason" in errors


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "block_actions", "actions": [{"action_id": "approve", "value": "12"}]},
        {"type": "block_actions", "user": {"id": "U1"}, "actions": []},
        {"type": "block_actions", "user": {"id": "U1"}, "actions": [{"action_id": "approve", "value": "x"}]},
        {
            "type": "view_submission",
            "user": {"id": "U1"},
            "view": {"callback_id": "airlock_edit", "private_metadata": "{not json"},
        },
        ["block_actions"],
        {"type": "block_actions", "user": {"id": "U1"}, "actions": [{"action_id": "approve", "value": "\u00b2:d"}]},
        {"type": "block_actions", "user": {"id": "U1"}, "actions": [{"action_id": "approve", "value": ["12"]}]},
        {
            "type": "view_submission",
            "user": {"id": "U1"},
            "view": {"callback_id": "airlock_reject", "private_metadata": {"request": 12}},
        },
    ],
    ids=[
        "no user",
        "no action",
        "not a request id",
        "foreign metadata",
        "not an object (Socket Mode)",
        "a superscript digit",
        "a list as the value",
        "metadata not text",
    ],
)
def test_payloads_airlock_cannot_read_are_refused_cleanly(payload: Any) -> None:
    with pytest.raises(BadPayload):
        interactions.parse(payload)


def test_interactions_that_need_nothing_are_ignored() -> None:
    assert (
        interactions.parse({"type": "block_actions", "user": {"id": "U1"}, "actions": [{"action_id": "open"}]}) is None
    )
    assert interactions.parse({"type": "shortcut", "user": {"id": "U1"}}) is None


def test_many_arguments_stay_within_slacks_3000_characters_per_section() -> None:
    crowded = {f"key{i}": "<&>" * 60 for i in range(60)}
    section = next(
        b for b in cards.card(facts(arguments=crowded)) if "*Arguments*" in b.get("text", {}).get("text", "")
    )
    text = section["text"]["text"]
    assert len(text) <= 3000
    assert "characters are left out here" in text
    assert "&amp;" in text and "&am…" not in text  # cut between lines, never inside an escape


def test_backticks_cannot_close_the_code_block_and_invisible_characters_show_escaped() -> None:
    sneaky = {"prompt": "a cat```\n*Approved* by root <!channel>`", "note": "paid\u202eusd 001$", "tool`": "x"}
    blocks = cards.card(facts(arguments=sneaky, tool="gen`erate\u200b"))
    section = next(b for b in blocks if "*Arguments*" in b.get("text", {}).get("text", ""))["text"]["text"]
    assert section.count("`") == 6  # only the block's own ``` and ```
    assert "a cat\\u0060\\u0060\\u0060\\n*Approved* by root &lt;!channel&gt;\\u0060" in section
    assert '"tool\\u0060": "x"' in section
    assert "paid\\u202eusd 001$" in section and "\u202e" not in section
    tool_field = blocks[1]["fields"][0]["text"]
    assert tool_field == "*Tool*\n`gen\\u0060erate\\u200b` on `imagegen`"
    assert "\u200b" not in text_of(blocks)
    header = blocks[0]["text"]["text"]
    assert header == "R-12: gen`erate\\u200b"  # plain text: a backtick is only a backtick there
