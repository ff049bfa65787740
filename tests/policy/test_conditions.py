from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.policy.conditions import ConditionError, compile_condition

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)


def holds(path: str, op: str, value: Any, args: dict[str, Any]) -> bool:
    return compile_condition(path, op, value).holds({"args": args})


@pytest.mark.parametrize(
    ("op", "value", "args", "expected"),
    [
        ("eq", "openai", {"x": "openai"}, True),
        ("eq", 5, {"x": "5"}, True),  # PolicyLayer compares numbers as numbers
        ("eq", 5, {"x": 5.0}, True),
        ("eq", True, {"x": 1}, False),  # a boolean is not a number
        ("neq", "a", {"x": "b"}, True),
        ("in", ["a", "b"], {"x": "b"}, True),
        ("in", [1, 2], {"x": 3}, False),
        ("not_in", ["a"], {"x": "b"}, True),
        ("lt", 10, {"x": 9.5}, True),
        ("lte", 10, {"x": 10}, True),
        ("gt", 500, {"x": 500}, False),
        ("gte", 500, {"x": "500"}, True),
        ("regex", "^img_[0-9]+$", {"x": "img_42"}, True),
        ("regex", "secret", {"x": "top-secret-plan"}, True),  # search, not match
        ("regex", "^secret", {"x": "top-secret-plan"}, False),
        ("contains", "cat", {"x": "a cat on a mat"}, True),
        ("contains", "b", {"x": ["a", "b"]}, True),
        ("contains", "z", {"x": ["a", "b"]}, False),
        ("exists", None, {"x": 0}, True),
        ("exists", None, {"x": None}, False),  # JSON null counts as absent
        ("exists", None, {}, False),
        ("exists", False, {}, True),
    ],
)
def test_operators(op: str, value: Any, args: dict[str, Any], expected: bool) -> None:
    assert holds("args.x", op, value, args) is expected


def test_a_list_path_holds_when_any_element_does() -> None:
    images = {"images": ["data:image/png;base64,AAA", "/etc/passwd"]}
    assert holds("args.images", "regex", "^(?!data:|https://)", images) is True
    assert holds("args.images", "regex", "^(?!data:|https://)", {"images": ["https://x/y.png"]}) is False
    assert holds("args.sizes", "gt", 3, {"sizes": [1, 2, 4]}) is True


def test_nested_paths_walk_objects() -> None:
    assert holds("args.options.quality", "eq", "high", {"options": {"quality": "high"}})
    with pytest.raises(ConditionError):
        holds("args.options.quality", "eq", "high", {"options": "high"})


@pytest.mark.parametrize("op", ["eq", "neq", "in", "lt", "regex", "contains"])
def test_a_missing_field_is_an_error_not_a_silent_false(op: str) -> None:
    value: Any = {"in": ["a"], "lt": 1, "regex": "a"}.get(op, "a")
    with pytest.raises(ConditionError, match="missing"):
        holds("args.x", op, value, {})


def test_wrong_types_at_call_time_are_errors() -> None:
    with pytest.raises(ConditionError):
        holds("args.x", "gt", 5, {"x": "many"})
    with pytest.raises(ConditionError):
        holds("args.x", "regex", "a", {"x": 5})


@pytest.mark.parametrize("op", ["lt", "lte", "gt", "gte"])
@pytest.mark.parametrize("text", ["NaN", "nan", " -NaN ", "Infinity", "-inf", "1e999", "many", ""])
def test_an_order_on_a_value_that_is_no_finite_number_is_an_error(op: str, text: str) -> None:
    """ "NaN" compares false both ways, so it slipped past every gt and lt; such a value is a condition error now."""
    with pytest.raises(ConditionError, match="not a number"):
        holds("args.x", op, 5, {"x": text})
    with pytest.raises(ConditionError, match="not a number"):
        holds("args.x", op, 5, {"x": [1, text]})  # any element of a list


def test_numbers_written_as_text_still_compare_as_numbers() -> None:
    assert holds("args.x", "gt", 5, {"x": "6.5"})
    assert not holds("args.x", "lt", 5, {"x": " 7 "})
    assert holds("args.x", "eq", "NaN", {"x": "NaN"})  # equal text is equal, number or not


@pytest.mark.parametrize(
    ("path", "op", "value", "message"),
    [
        ("amount", "eq", 1, "must start with"),
        ("args.x", "like", 1, "unknown op"),
        ("args.x", "in", "a", "needs a list"),
        ("args.x", "gt", "5", "needs a number"),
        ("args.x", "regex", "(", "invalid regex"),
        ("args.x", "exists", 3, "exists takes"),
        ("args..x", "eq", 1, "must start with"),
    ],
)
def test_bad_conditions_are_refused_at_load(path: str, op: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compile_condition(path, op, value)


@given(value=json_scalars)
def test_eq_and_neq_are_complements(value: Any) -> None:
    if value is None:
        return
    args = {"x": value}
    assert holds("args.x", "eq", value, args) is True
    assert holds("args.x", "neq", value, args) is False


@given(number=st.integers(-1000, 1000), bound=st.integers(-1000, 1000))
def test_order_operators_agree_with_python(number: int, bound: int) -> None:
    args = {"x": number}
    assert holds("args.x", "lt", bound, args) is (number < bound)
    assert holds("args.x", "lte", bound, args) is (number <= bound)
    assert holds("args.x", "gt", bound, args) is (number > bound)
    assert holds("args.x", "gte", bound, args) is (number >= bound)


@given(choices=st.lists(st.text(max_size=5), max_size=5), value=st.text(max_size=5))
def test_in_and_not_in_are_complements(choices: list[str], value: str) -> None:
    args = {"x": value}
    inside = holds("args.x", "in", choices, args)
    assert inside is (value in choices or any(_numeric_equal(value, c) for c in choices))
    assert holds("args.x", "not_in", choices, args) is (not inside)


def _numeric_equal(a: str, b: str) -> bool:
    """Texts that read as the same finite number ("1" and "1.0"); "NaN" and "inf" are no numbers to a rule."""
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return math.isfinite(x) and math.isfinite(y) and x == y


@given(haystack=st.text(max_size=30), needle=st.text(max_size=5))
def test_contains_on_strings_is_a_substring_test(haystack: str, needle: str) -> None:
    assert holds("args.x", "contains", needle, {"x": haystack}) is (needle in haystack)
