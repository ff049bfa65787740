"""A bad policy is refused whole, with every problem at its path and line."""

from __future__ import annotations

import pytest

from service.errors import PolicyInvalid
from service.policy import EstimatorRegistry, load_policy
from tests.policy.helpers import FIXTURES


def problems(text: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(PolicyInvalid) as info:
        load_policy(text, EstimatorRegistry.default())
    return [(p.path, p.line, p.message) for p in info.value.problems]


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.iterdir()))
def test_every_reference_policy_loads(name: str) -> None:
    compiled = load_policy((FIXTURES / name).read_text(), EstimatorRegistry.default())
    assert compiled.default == "deny"


def test_schema_problems_come_with_paths_and_lines() -> None:
    found = problems(
        """version: "1"
default: maybe
tools:
  generate_image:
    limits:
      - {counter: rate, window: minute, max: -1}
    colour: blue
"""
    )
    by_path = {path: (line, message) for path, line, message in found}
    assert by_path["/default"][0] == 2
    assert by_path["/tools/generate_image/limits/0/max"][0] == 6
    assert by_path["/tools/generate_image/colour"] == (7, "unknown key")


def test_semantic_problems_are_all_listed() -> None:
    found = problems(
        """version: "1"
tools:
  a:
    require_approval: {when: "cost.usd >"}
  b:
    cost: {estimator: crystal_ball}
  c:
    limits: [{counter: x, window: fortnight, max: 3}]
  d:
    deny_if: [{conditions: [{path: args.x, op: regex, value: "("}]}]
  e:
    limits: [{counter: y, window: minute, max: 2.5}]
"""
    )
    paths = {path: (line, message) for path, line, message in found}
    assert "does not compile" in paths["/tools/a/require_approval/when"][1]
    assert paths["/tools/a/require_approval/when"][0] == 4
    assert "unknown estimator 'crystal_ball'" in paths["/tools/b/cost/estimator"][1]
    assert "unknown window" in paths["/tools/c/limits/0/window"][1]
    assert "invalid regex" in paths["/tools/d/deny_if/0/conditions/0"][1]
    assert "whole number" in paths["/tools/e/limits/0/max"][1]
    assert paths["/tools/c/limits/0/window"][0] == 8


def test_syntax_errors_name_the_line() -> None:
    [(path, line, message)] = problems('version: "1"\ntools:\n  a: {action: deny\n')
    assert path == ""
    assert line is not None
    assert line >= 3
    assert "not valid YAML" in message


def test_duplicate_keys_are_refused() -> None:
    found = problems('version: "1"\ntools:\n  a: {}\n  a: {action: deny}\n')
    assert found == [("/tools/a", 4, "this key appears twice")]


def test_version_must_be_1() -> None:
    assert problems('version: "2"')[0][2] == 'version must be "1"'
    assert problems("tools: {}")[0][:1] == ("/version",)


def test_yaml_yes_no_on_off_stay_strings() -> None:
    compiled = load_policy('version: "1"\ntools:\n  on: {}\n  no: {action: deny}\n', EstimatorRegistry.default())
    assert set(compiled.exact) == {"on", "no"}


def test_json_documents_load_too() -> None:
    compiled = load_policy('{"version": "1", "default": "deny", "tools": {"x": {}}}', EstimatorRegistry.default())
    assert "x" in compiled.exact


def test_a_cost_expression_sees_only_args_and_tool() -> None:
    assert "only args and tool" in problems('version: "1"\ntools:\n  a: {cost: {expr: "cost.usd * 2.0"}}\n')[0][2]


def test_deny_with_require_approval_is_contradictory() -> None:
    found = problems('version: "1"\ntools:\n  a: {action: deny, require_approval: {when: "true"}}\n')
    assert found[0][0] == "/tools/a/require_approval"


def test_schema_and_semantic_problems_are_listed_together() -> None:
    found = problems('version: "1"\ntools:\n  a: {colour: red}\n  b: {require_approval: {when: "1 +"}}\n')
    assert [(path, line) for path, line, _ in found] == [("/tools/a/colour", 3), ("/tools/b/require_approval/when", 4)]


@pytest.mark.parametrize("text", ['version: "1"\x00\n', "\x00", 'version: "1"\ndefault: deny\x07\n'])
def test_characters_yaml_does_not_allow_are_a_problem_not_a_crash(text: str) -> None:
    [(path, _, message)] = problems(text)
    assert path == "" and message.startswith("not valid YAML or JSON")
