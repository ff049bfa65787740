"""PolicyLayer/Intercept conditions: {path, op, value}, compiled once at load.

Semantics kept from PolicyLayer: a path walks objects one key per dot, JSON null is absent, a path that names
a list holds when the condition holds for any element, `regex` is an unanchored search, `contains` is a
substring test on strings and a membership test on lists, and eq/neq/in compare numbers as numbers. lt/lte/gt/gte
need a finite number (or text that reads as one): anything else, "NaN" and "Infinity" included, is an error.
A condition that cannot be evaluated (a missing field, a value of the wrong type) raises ConditionError;
the engine turns that into the stricter outcome for the clause it sits in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

OPS = ("eq", "neq", "in", "not_in", "lt", "lte", "gt", "gte", "regex", "contains", "exists")
ROOTS = ("args", "tool", "grant", "cost", "counters", "now")

_MISSING = object()


class ConditionError(Exception):
    pass


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        # "NaN" compares false both ways and "inf" beats every bound: neither is a number a limit can judge.
        return number if math.isfinite(number) else None
    return None


def _equal(left: Any, right: Any) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right if isinstance(left, bool) and isinstance(right, bool) else False
    a, b = _number(left), _number(right)
    if a is not None and b is not None:
        return a == b
    return bool(left == right)


def _order(left: Any, right: float, compare: Callable[[float, float], bool]) -> bool:
    number = _number(left)
    if number is None:
        raise ConditionError(f"{left!r} is not a number")
    return compare(number, right)


def _contains(left: Any, right: Any) -> bool:
    if isinstance(left, str):
        if not isinstance(right, str):
            raise ConditionError("contains on a string needs a string value")
        return right in left
    if isinstance(left, list):
        return any(_equal(element, right) for element in left)
    if isinstance(left, Mapping):
        return right in left
    raise ConditionError(f"contains needs a string or a list, got {type(left).__name__}")


def resolve_path(context: Any, parts: Sequence[str]) -> Any:
    """The value at a dotted path, or _MISSING. JSON null counts as absent.

    The root is looked up with `.get`, so the engine can hand in a lazy context instead of a dict.
    """
    value: Any = context.get(parts[0], _MISSING)
    if value is None:
        return _MISSING
    for part in parts[1:]:
        if value is _MISSING:
            return _MISSING
        if not isinstance(value, Mapping):
            return _MISSING
        value = value.get(part, _MISSING)
        if value is None:
            return _MISSING
    return value


@dataclass(frozen=True, slots=True)
class Condition:
    path: str
    parts: tuple[str, ...]
    op: str
    test: Callable[[Any], bool]
    exists_wanted: bool = True

    @property
    def root(self) -> str:
        return self.parts[0]

    def holds(self, context: Any) -> bool:
        value = resolve_path(context, self.parts)
        if self.op == "exists":
            return (value is not _MISSING) == self.exists_wanted
        if value is _MISSING:
            raise ConditionError(f"{self.path} is missing")
        if self.op == "contains" or not isinstance(value, list):
            return self.test(value)
        # A path that names a list: the condition holds if it holds for any element. Every element is evaluated, so
        # one that cannot be (a "NaN" beside a 1) is an error even when another holds: errors take the stricter way.
        results = [self.test(element) for element in value]
        return any(results)


def compile_condition(path: Any, op: Any, value: Any) -> Condition:
    """Raises ValueError with a message for the policy author."""
    if not isinstance(path, str) or not path:
        raise ValueError("path must be a non-empty string such as args.amount")
    parts = tuple(path.split("."))
    if parts[0] not in ROOTS or any(not p for p in parts):
        raise ValueError(f"path {path!r} must start with one of {', '.join(ROOTS)} (for example args.amount)")
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}; use one of {', '.join(OPS)}")
    if op == "exists":
        if value is not None and not isinstance(value, bool):
            raise ValueError("exists takes no value, or true / false")
        return Condition(path, parts, op, lambda _: True, value is not False)
    return Condition(path, parts, op, _TESTS[op](op, value))


def _equality_test(op: str, value: Any) -> Callable[[Any], bool]:
    if isinstance(value, dict | list):
        raise ValueError(f"{op} compares with a single value; use in / not_in for a list")
    if op == "eq":
        return lambda v: _equal(v, value)
    return lambda v: not _equal(v, value)


def _membership_test(op: str, value: Any) -> Callable[[Any], bool]:
    if not isinstance(value, list):
        raise ValueError(f"{op} needs a list value")
    choices = list(value)
    if op == "in":
        return lambda v: any(_equal(v, c) for c in choices)
    return lambda v: not any(_equal(v, c) for c in choices)


_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
}


def _order_test(op: str, value: Any) -> Callable[[Any], bool]:
    bound = _number(value)
    if bound is None or isinstance(value, str):
        raise ValueError(f"{op} needs a number value")
    compare = _COMPARISONS[op]
    return lambda v: _order(v, bound, compare)


def _regex_test(op: str, value: Any) -> Callable[[Any], bool]:
    if not isinstance(value, str):
        raise ValueError("regex needs a string pattern")
    try:
        pattern = re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regex: {exc}") from None

    def test(v: Any) -> bool:
        if not isinstance(v, str):
            raise ConditionError(f"regex needs a string, got {type(v).__name__}")
        return pattern.search(v) is not None

    return test


def _contains_test(op: str, value: Any) -> Callable[[Any], bool]:
    if isinstance(value, dict | list):
        raise ValueError("contains needs a single value")
    return lambda v: _contains(v, value)


# Each op's test, built once at load from the condition's value (which it also validates).
_TESTS: dict[str, Callable[[str, Any], Callable[[Any], bool]]] = {
    "eq": _equality_test,
    "neq": _equality_test,
    "in": _membership_test,
    "not_in": _membership_test,
    "lt": _order_test,
    "lte": _order_test,
    "gt": _order_test,
    "gte": _order_test,
    "regex": _regex_test,
    "contains": _contains_test,
}
