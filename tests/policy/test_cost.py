from __future__ import annotations

from typing import Any

import pytest

from service.policy import CostError, EstimatorRegistry
from service.policy.cel_bridge import compile_cel
from service.policy.cost import ExpressionEstimator

ESTIMATOR = EstimatorRegistry.default().get("image_gen_mcp")


def usd(tool: str = "generate_image", **arguments: Any) -> float:
    assert ESTIMATOR is not None
    return ESTIMATOR.estimate(tool, {"prompt": "x", "provider": "openai", **arguments}).usd


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"model": "gpt-image-1", "quality": "draft"}, 0.011),
        ({"model": "gpt-image-1", "quality": "draft", "orientation": "landscape"}, 0.016),
        ({"model": "gpt-image-1", "quality": "standard", "orientation": "portrait"}, 0.063),
        ({"model": "gpt-image-1"}, 0.167),  # no quality = "auto", charged as high
        ({"model": "gpt-image-1", "quality": None, "orientation": None}, 0.167),
        ({"model": "gpt-image-1", "n": 4, "orientation": "portrait"}, 1.00),  # the dearest single call
        ({"model": "gpt-image-1", "n": 9, "quality": "draft"}, 0.044),  # engines clamp n to 4
        ({"model": "dall-e-3", "n": 3, "orientation": "landscape"}, 0.08),  # dall-e-3 makes one image
        ({"model": "imagen-4.0-fast-generate-001", "n": 2}, 0.04),
        ({"model": "imagen-4.0-ultra-generate-001"}, 0.06),
        ({"model": "gemini-2.5-flash-image-preview", "n": 4}, 0.039),
        ({"model": "google/gemini-2.5-flash-image-preview", "n": 4}, 0.156),  # OpenRouter passes n on
    ],
)
def test_image_gen_mcp_prices(arguments: dict[str, Any], expected: float) -> None:
    assert usd(**arguments) == pytest.approx(expected)


def test_edits_add_a_surcharge_per_input_image() -> None:
    base = usd("edit_image", model="dall-e-3")
    assert usd("edit_image", model="dall-e-3", images=["a", "b"]) == pytest.approx(base + 0.02)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"model": "gpt-9"}, "no price for model"),
        ({}, "model is missing"),
        ({"model": "dall-e-3", "n": 0}, "at least 1"),
        ({"model": "dall-e-3", "n": "two"}, "whole number"),
        ({"model": "dall-e-3", "orientation": "diagonal"}, "orientation"),
    ],
)
def test_what_cannot_be_priced_is_an_error(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(CostError, match=message):
        usd(**arguments)


def test_the_price_table_can_be_overridden_in_config() -> None:
    registry = EstimatorRegistry.default(
        {"image_gen_mcp": {"models": {"dall-e-3": {"prices": {"any": {"square": 0.05}}}}}}
    )
    estimator = registry.get("image_gen_mcp")
    assert estimator is not None
    assert estimator.estimate("generate_image", {"model": "dall-e-3"}).usd == pytest.approx(0.05)
    assert estimator.estimate("generate_image", {"model": "imagen-4.0-generate-001"}).usd == pytest.approx(0.04)


def test_explain_gives_a_breakdown() -> None:
    assert ESTIMATOR is not None
    estimate = ESTIMATOR.estimate("generate_image", {"model": "gpt-image-1", "n": 2, "quality": "draft"}, explain=True)
    assert estimate.breakdown == {
        "model": "gpt-image-1",
        "quality": "draft",
        "orientation": "square",
        "unit_usd": 0.011,
        "images": 2,
    }


def test_expression_estimator() -> None:
    estimator = ExpressionEstimator(compile_cel("has(args.n) ? double(args.n) * 0.04 : 0.04"))
    assert estimator.estimate("t", {"n": 3}).usd == pytest.approx(0.12)
    assert estimator.estimate("t", {"n": None}).usd == pytest.approx(0.04)
    with pytest.raises(CostError):
        ExpressionEstimator(compile_cel("args.n * 0.04")).estimate("t", {"n": 3})  # int * double: a type error
