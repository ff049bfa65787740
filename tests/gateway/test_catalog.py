"""The compiled argument check: the fast validator answers "fits", the reference explains what does not."""

from __future__ import annotations

from typing import Any

import pytest

from service.gateway.catalog import compile_validator, problems_with

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "prompt": {"type": "string"},
        "n": {"type": "integer", "minimum": 1, "maximum": 4, "default": 1},
        "quality": {"type": "string", "enum": ["draft", "high"]},
    },
    "required": ["prompt"],
    "additionalProperties": False,
}


def test_arguments_that_fit_have_no_problems_and_are_not_filled_with_defaults() -> None:
    validator = compile_validator("t", SCHEMA)
    assert validator is not None and validator.fast is not None
    arguments = {"prompt": "a lighthouse"}
    assert problems_with(validator, arguments) == []
    assert arguments == {"prompt": "a lighthouse"}  # what runs is what the agent sent


@pytest.mark.parametrize(
    ("arguments", "where", "keyword"),
    [
        ({}, "", "required"),
        ({"prompt": "x", "n": 9}, "n", "maximum"),
        ({"prompt": "x", "quality": "ultra"}, "quality", "enum"),
        ({"prompt": "x", "extra": 1}, "", "additionalProperties"),
    ],
)
def test_what_does_not_fit_is_explained_by_the_reference_validator(
    arguments: dict[str, Any], where: str, keyword: str
) -> None:
    validator = compile_validator("t", SCHEMA)
    assert validator is not None
    (problem,) = problems_with(validator, arguments)
    assert (problem.where, problem.keyword) == (where, keyword)


@pytest.mark.parametrize(
    "extra",
    [
        {"style": {"$ref": "http://127.0.0.1:9/style.json"}},  # fastjsonschema would fetch it while compiling
        {"style": {"$id": "http://127.0.0.1:9/style", "type": "string"}},
    ],
)
def test_a_schema_that_reaches_outside_itself_is_enforced_by_the_reference_alone(extra: dict[str, Any]) -> None:
    validator = compile_validator("t", {**SCHEMA, "properties": {**SCHEMA["properties"], **extra}})
    assert validator is not None and validator.fast is None
    assert problems_with(validator, {"prompt": "x"}) == []
    assert [p.keyword for p in problems_with(validator, {"prompt": 1})] == ["type"]


def test_an_invalid_schema_is_not_enforced() -> None:
    assert compile_validator("t", {"type": "object", "properties": {"n": {"type": "no-such-type"}}}) is None
