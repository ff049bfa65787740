"""The order of evaluation, rule matching and the stricter-outcome rule (docs/policies.md#order-of-evaluation)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from service.demo.upstream import TOOLS as DEMO_TOOLS
from service.policy import Outcome, ToolCall
from tests.policy.helpers import GRANT, IMAGE, Clock, call, engine_for, fixture

DEMO_POLICY = Path(__file__).resolve().parents[2] / "service" / "demo" / "policy.yaml"


def test_hide_wins_over_everything_and_star_hides_all() -> None:
    engine = engine_for({"version": "1", "default": "allow", "hide": ["delete_*"], "tools": {"delete_account": {}}})
    decision = engine.evaluate(call("delete_account"))
    assert (decision.outcome, decision.rule) == (Outcome.DENY, "/hide/0")
    assert "hidden" in (decision.reason or "")
    assert engine.is_hidden("delete_user")
    assert not engine.is_hidden("read_user")
    everything = engine_for({"version": "1", "hide": ["*"]})
    assert everything.evaluate(call("anything")).outcome is Outcome.DENY


def test_default_deny_names_the_default() -> None:
    engine = engine_for({"version": "1", "default": "deny", "tools": {"get_model_capabilities": {}}})
    assert engine.evaluate(call("get_model_capabilities")).outcome is Outcome.ALLOW
    denied = engine.evaluate(call("edit_image"))
    assert (denied.outcome, denied.rule) == (Outcome.DENY, "/default")


def test_default_is_allow_when_absent_as_in_policylayer() -> None:
    assert engine_for({"version": "1"}).evaluate(call("anything")).outcome is Outcome.ALLOW


def test_default_require_approval_holds_unlisted_tools_with_defaults() -> None:
    decision = engine_for({"version": "1", "default": "require_approval"}).evaluate(call("x"))
    assert decision.outcome is Outcome.HOLD
    assert decision.rule == "/default"
    assert decision.approval is not None
    assert decision.approval.approvers.roles == ("approver",)
    assert decision.approval.timeout == timedelta(minutes=15)
    assert (decision.approval.quorum, decision.approval.self_approval, decision.approval.on_timeout) == (
        1,
        False,
        "reject",
    )


def test_exact_name_beats_glob_and_longest_glob_wins() -> None:
    engine = engine_for(
        {
            "version": "1",
            "default": "deny",
            "tools": {
                "github.*": {"action": "deny", "on_deny": "short"},
                "github.issues.*": {"action": "allow"},
                "github.issues.delete": {"action": "deny", "on_deny": "exact"},
            },
        }
    )
    assert engine.evaluate(call("github.issues.list")).outcome is Outcome.ALLOW
    assert engine.evaluate(call("github.repos.list")).reason == "short"
    exact = engine.evaluate(call("github.issues.delete"))
    assert (exact.reason, exact.rule) == ("exact", "/tools/github.issues.delete/action")


def test_a_nan_argument_takes_the_stricter_outcome_of_its_clause() -> None:
    engine = engine_for(
        {
            "version": "1",
            "tools": {
                "pay": {
                    "deny_if": [{"conditions": [{"path": "args.amount", "op": "gt", "value": 1000}]}],
                    "require_approval": {"conditions": [{"path": "args.amount", "op": "gt", "value": 100}]},
                }
            },
        }
    )
    assert engine.evaluate(call("pay", amount="50")).outcome is Outcome.ALLOW
    denied = engine.evaluate(call("pay", amount="NaN"))
    assert (denied.outcome, denied.rule) == (Outcome.DENY, "/tools/pay/deny_if/0")
    assert any("not a number" in error for error in denied.errors)


def test_keys_without_star_or_question_mark_are_exact_names_brackets_included() -> None:
    engine = engine_for(
        {
            "version": "1",
            "default": "allow",
            "tools": {
                "db.query[prod]": {"action": "deny", "on_deny": "literal"},
                "db.[[]x]*": {"action": "deny", "on_deny": "escaped bracket in a glob"},
                "shell[?]": {"action": "deny", "on_deny": "escaped question mark"},
            },
        }
    )
    assert engine.evaluate(call("db.query[prod]")).reason == "literal"
    assert engine.evaluate(call("db.queryp")).outcome is Outcome.ALLOW  # no character class
    assert engine.evaluate(call("db.[x]-read")).reason == "escaped bracket in a glob"
    assert engine.evaluate(call("db.x]-read")).outcome is Outcome.ALLOW
    assert engine.evaluate(call("shell?")).reason == "escaped question mark"
    assert engine.evaluate(call("shells")).outcome is Outcome.ALLOW


def test_equal_length_globs_fall_back_to_document_order() -> None:
    engine = engine_for(
        {
            "version": "1",
            "tools": {"*_image": {"action": "deny", "on_deny": "first"}, "edit_*": {"action": "allow"}},
        }
    )
    assert engine.evaluate(call("edit_image")).reason == "first"


def test_deny_if_and_on_deny() -> None:
    engine = engine_for(fixture("airlock-demo.yaml"))
    decision = engine.evaluate(call("generate_image", **IMAGE, directory="/srv/www"))
    assert decision.outcome is Outcome.DENY
    assert decision.rule == "/tools/generate_image/deny_if/0"
    assert decision.reason == "Saving images to server folders is not allowed."
    # null counts as absent, so this one passes the deny rule
    assert engine.evaluate(call("generate_image", **IMAGE, quality="draft", directory=None)).outcome is Outcome.ALLOW


SERVER_PATHS = ["/etc/passwd", "../../secrets.png", "file:///etc/shadow", "C:\\Windows\\win.ini"]
PATH_LIKE = {"directory", "images", "mask"}
"""The image server's arguments that name a server file or folder (docs/policies.md#the-demo-policy)."""


@pytest.mark.parametrize("policy", [fixture("airlock-demo.yaml"), DEMO_POLICY.read_text("utf-8")])
def test_the_demo_policy_denies_server_paths_in_every_path_like_argument(policy: str) -> None:
    engine = engine_for(policy)
    checked = []
    for tool in DEMO_TOOLS:
        for name in sorted(PATH_LIKE & set(tool.input_schema["properties"])):
            for path in SERVER_PATHS:
                value: Any = [path] if tool.input_schema["properties"][name].get("type") == "array" else path
                base = {**IMAGE, "images": ["https://example.com/a.png"]} if tool.name == "edit_image" else IMAGE
                decision = engine.evaluate(call(tool.name, **{**base, name: value}))
                assert (decision.outcome, "/deny_if/" in decision.rule) == (Outcome.DENY, True), (tool.name, name)
            checked.append(f"{tool.name}.{name}")
    assert sorted(checked) == [
        "edit_image.directory",
        "edit_image.images",
        "edit_image.mask",
        "generate_image.directory",
    ]
    # what is not a server path still reaches a person
    allowed = call("edit_image", **IMAGE, images=["data:image/png;base64,AAAA"], mask="https://example.com/m.png")
    assert engine.evaluate(allowed).outcome is Outcome.HOLD
    no_masks: list[dict[str, Any]] = [{}, {"mask": None}]
    for no_mask in no_masks:  # an absent or null mask is no path
        edit = call("edit_image", **IMAGE, images=["https://example.com/a.png"], **no_mask)
        assert engine.evaluate(edit).outcome is Outcome.HOLD


def test_unmet_require_denies_and_an_error_counts_as_unmet() -> None:
    engine = engine_for(fixture("policylayer-full.json"))
    decision = engine.evaluate(call("create_refund", amount=20))
    assert (decision.outcome, decision.rule) == (Outcome.DENY, "/tools/create_refund/require/0")
    assert engine.evaluate(call("create_refund", amount=20, reason="damaged")).outcome is Outcome.ALLOW
    over = engine.evaluate(call("create_refund", amount=900, reason="damaged"))
    assert (over.outcome, over.reason) == (Outcome.DENY, "Refunds over 500 need a manager.")


def test_an_error_in_deny_if_counts_as_true() -> None:
    engine = engine_for(
        {
            "version": "1",
            "tools": {"pay": {"deny_if": [{"conditions": [{"path": "args.amount", "op": "gt", "value": 100}]}]}},
        }
    )
    decision = engine.evaluate(call("pay", amount="lots"))
    assert decision.outcome is Outcome.DENY
    assert decision.errors
    assert "not a number" in decision.errors[0]
    assert engine.evaluate(call("pay", amount=5)).outcome is Outcome.ALLOW


def test_an_error_in_require_approval_holds() -> None:
    engine = engine_for({"version": "1", "tools": {"gen": {"require_approval": {"when": "args.n > 2"}}}})
    assert engine.evaluate(call("gen", n=1)).outcome is Outcome.ALLOW
    missing = engine.evaluate(call("gen"))
    assert missing.outcome is Outcome.HOLD
    assert missing.errors


def test_cel_sees_grant_tool_and_now() -> None:
    engine = engine_for(
        {
            "version": "1",
            "tools": {
                "*": {
                    "require_approval": {
                        "when": "grant.labels.team == 'design' && tool.startsWith('gen')"
                        " && now > timestamp('2020-01-01T00:00:00Z')"
                    }
                }
            },
        }
    )
    assert engine.evaluate(call("generate")).outcome is Outcome.HOLD
    assert engine.evaluate(call("list")).outcome is Outcome.ALLOW


def test_demo_policy_holds_expensive_images_and_passes_cheap_ones() -> None:
    engine = engine_for(fixture("airlock-demo.yaml"))
    cheap = engine.evaluate(call("generate_image", **IMAGE, quality="draft"))
    assert cheap.outcome is Outcome.ALLOW
    assert cheap.cost_usd == pytest.approx(0.011)
    dear = engine.evaluate(call("generate_image", **IMAGE, n=4, orientation="portrait"))
    assert dear.outcome is Outcome.HOLD
    assert dear.rule == "/tools/generate_image/require_approval"
    assert dear.cost_usd == pytest.approx(1.0)
    assert dear.approval is not None
    assert dear.approval.channel == "#image-approvals"


def test_an_unknown_model_is_held_not_allowed() -> None:
    engine = engine_for(fixture("airlock-demo.yaml"))
    decision = engine.evaluate(call("generate_image", prompt="x", provider="openai", model="gpt-9-ultra"))
    assert decision.outcome is Outcome.HOLD
    assert decision.cost_usd is None
    assert any("no price for model" in e for e in decision.errors)


def test_standing_approval_turns_a_hold_into_allow_but_not_a_deny() -> None:
    class Standing:
        def find(self, c: ToolCall) -> str | None:
            return "SA-1" if c.tool == "generate_image" else None

    engine = engine_for(fixture("airlock-demo.yaml"), standing=Standing())
    decision = engine.evaluate(call("generate_image", **IMAGE, n=4))
    assert (decision.outcome, decision.standing_approval) == (Outcome.ALLOW, "SA-1")
    assert engine.evaluate(call("generate_image", **IMAGE, n=4, directory="/x")).outcome is Outcome.DENY


def test_pending_cap_denies_a_would_be_hold_and_gives_counters_back() -> None:
    class Cap:
        cap = 3

        def reached(self, call: ToolCall) -> bool:
            return call.grant.id == GRANT.id

    doc = {
        "version": "1",
        "tools": {
            "gen": {
                "limits": [{"counter": "c", "window": "minute", "max": 1}],
                "require_approval": {"when": "true"},
            }
        },
    }
    clock = Clock()
    engine = engine_for(doc, pending_cap=Cap(), clock=clock)
    denied = engine.evaluate(call("gen"))
    assert denied.outcome is Outcome.DENY
    assert (denied.reason or "").startswith("3 of this agent's calls already wait for approval")
    # the count was given back: the same call is still admitted once the cap lifts
    engine.pending_cap = None
    assert engine.evaluate(call("gen")).outcome is Outcome.HOLD


def test_may_hold_lists_only_tools_a_policy_can_hold() -> None:
    engine = engine_for(fixture("airlock-demo.yaml"))
    assert engine.may_hold("generate_image")
    assert engine.may_hold("edit_image")
    assert not engine.may_hold("get_model_capabilities")
    assert not engine.may_hold("unlisted")


def test_action_deny_skips_cost_and_counters() -> None:
    engine = engine_for(
        {
            "version": "1",
            "all_tools": {"limits": [{"counter": "all", "window": "minute", "max": 1}]},
            "tools": {"edit_image": {"action": "deny"}},
        }
    )
    for _ in range(3):
        assert engine.evaluate(call("edit_image")).outcome is Outcome.DENY
    assert engine.evaluate(call("other")).outcome is Outcome.ALLOW
