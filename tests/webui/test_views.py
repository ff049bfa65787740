"""Presentation helpers: the rules in plain words, anchors that links land on, charts, and the shown JSON."""

from __future__ import annotations

from service.policy.document import check_document, parse_source
from tests.policy.helpers import fixture
from webui.charts import horizontal_bars, stacked_columns
from webui.rendering import environment, rule_anchor
from webui.rules_view import describe


def test_the_demo_policy_in_plain_words() -> None:
    data, source_map = parse_source(fixture("airlock-demo.yaml"))
    document, problems = check_document(data, source_map)
    assert problems == []
    view = describe(document)
    assert view["default"] == "deny"
    tools = {t.name: t for t in view["tools"]}
    assert tools["get_model_capabilities"].action == "allow"
    assert tools["generate_image"].action == "may_hold"
    assert tools["edit_image"].action == "hold"
    lines = {line.pointer: line.text for line in tools["generate_image"].lines}
    assert lines["/tools/generate_image/require_approval"].startswith(
        "held when cost.usd > 0.10; approved by role approver"
    )
    assert (
        lines["/tools/generate_image/limits/0"] == "at most 30 calls per minute per grant (counter generate_image_rate)"
    )
    assert lines["/tools/generate_image/deny_if/0"].startswith("denied when args.directory is present")


def test_rule_anchors_are_valid_ids_that_tell_rules_apart() -> None:
    anchors = {rule_anchor(p) for p in ("/tools/a/deny_if/0", "/tools/a/deny_if/1", "/tools/a", "/all_tools/limits/0")}
    assert len(anchors) == 4
    assert all(a.startswith("rule") and "/" not in a and " " not in a for a in anchors)


def test_templates_escape_everything_an_agent_sent() -> None:
    html = (
        environment()
        .from_string("<pre>{{ value|pretty }}</pre><p>{{ value|compact }}</p>")
        .render(value={"prompt": "<script>alert(1)</script>", "q": "a & b"})
    )
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "a &amp; b" in html


def test_stacked_columns_scale_to_the_tallest_column() -> None:
    chart = stacked_columns(["a", "b"], {"allow": [3, 1], "deny": [1, 0]})
    heights = {r.title: r.height for r in chart.rects}
    assert heights["a: 3 allow"] == 3 * heights["b: 1 allow"]
    assert heights["a: 1 deny"] == heights["b: 1 allow"]
    assert not chart.empty and [name for name, _ in chart.legend] == ["allow", "deny"]
    assert stacked_columns(["a"], {"allow": [0]}).empty
    bars = horizontal_bars([("x", 4), ("y", 2)])
    assert bars.rects[0].width == 2 * bars.rects[1].width
