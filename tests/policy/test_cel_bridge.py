from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.policy.cel_bridge import CelError, compile_cel, without_nulls


def run(source: str, **variables: Any) -> Any:
    return compile_cel(source).evaluate(variables.__getitem__)


def test_only_referenced_variables_are_asked_for() -> None:
    program = compile_cel("cost.usd > 0.10")
    asked: list[str] = []

    def resolve(name: str) -> Any:
        asked.append(name)
        return {"usd": 0.5}

    assert program.evaluate_bool(resolve) is True
    assert asked == ["cost"]


def test_has_is_false_for_absent_and_null_fields() -> None:
    program = compile_cel("has(args.n) && args.n > 2")
    assert program.evaluate_bool({"args": without_nulls({"n": 3})}.__getitem__) is True
    assert program.evaluate_bool({"args": without_nulls({})}.__getitem__) is False
    assert program.evaluate_bool({"args": without_nulls({"n": None})}.__getitem__) is False


def test_a_missing_field_is_an_error() -> None:
    with pytest.raises(CelError, match="no such field"):
        run("args.n > 2", args={})


def test_type_errors_are_errors_with_a_short_message() -> None:
    with pytest.raises(CelError) as info:
        run("args.n > 2", args={"n": "x"})
    assert "\n" not in str(info.value)


def test_non_boolean_results_are_refused_where_a_condition_is_expected() -> None:
    with pytest.raises(CelError, match="true or false"):
        compile_cel("1 + 2").evaluate_bool(lambda _name: None)


@pytest.mark.parametrize(
    ("source", "message"),
    [("cost.usd >", "does not compile"), ("price > 1", "unknown variable 'price'"), ("  ", "non-empty")],
)
def test_bad_expressions_are_refused_at_load(source: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compile_cel(source)


def test_macros_may_bind_their_own_names() -> None:
    assert run("args.tags.exists(t, t == 'nsfw')", args={"tags": ["cat", "nsfw"]}) is True


@given(
    usd=st.floats(min_value=0, max_value=100, allow_nan=False),
    threshold=st.floats(min_value=0, max_value=100),
)
def test_cel_comparisons_match_python(usd: float, threshold: float) -> None:
    program = compile_cel(f"cost.usd > {threshold!r}")
    assert program.evaluate_bool({"cost": {"usd": usd}}.__getitem__) is (usd > threshold)


@given(st.dictionaries(st.text(min_size=1, max_size=5), st.none() | st.integers(), max_size=6))
def test_without_nulls_drops_exactly_the_nulls(data: dict[str, int | None]) -> None:
    assert without_nulls(data) == {k: v for k, v in data.items() if v is not None}
