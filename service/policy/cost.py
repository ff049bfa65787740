"""Estimating what a call will cost before it runs.

An estimator turns (tool, arguments) into USD, or raises CostError; the engine then treats the cost as
unknown and pushes the decision toward approval. Estimators are registered by name, so another upstream's
naming (num_outputs, aspect_ratio, ...) is a new estimator or a CEL `expr`, not a change here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.policy.cel_bridge import CelError, CelProgram, without_nulls


class CostError(Exception):
    pass


@dataclass(slots=True)
class CostEstimate:
    usd: float
    breakdown: Mapping[str, Any] | None = None


class CostEstimator(Protocol):
    def estimate(self, tool: str, arguments: Mapping[str, Any], *, explain: bool = False) -> CostEstimate:
        """The breakdown is filled only when asked to explain: the hot path needs the total alone."""
        ...


class ModelPrices(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    max_n: int = Field(4, ge=1)
    default_quality: str = "any"
    prices: dict[str, dict[str, float]]


class ImageGenPriceTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    edit_surcharge_per_input_image: float = Field(0.0, ge=0)
    models: dict[str, ModelPrices]


def default_image_gen_prices() -> dict[str, Any]:
    text = resources.files("service.policy").joinpath("data/image_gen_mcp.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def merge_prices(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge, so a config can change one model's price without restating the table."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_prices(merged[key], value)
        else:
            merged[key] = value
    return merged


class ImageGenMcpEstimator:
    """image-gen-mcp's generate_image and edit_image: price(model, orientation, quality) x effective n."""

    def __init__(self, table: ImageGenPriceTable) -> None:
        self._table = table

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> ImageGenMcpEstimator:
        try:
            return cls(ImageGenPriceTable.model_validate(data))
        except ValidationError as exc:
            raise ValueError(f"image_gen_mcp price table: {exc.errors()[0]['msg']}") from None

    def estimate(self, tool: str, arguments: Mapping[str, Any], *, explain: bool = False) -> CostEstimate:
        model = arguments.get("model")
        if not isinstance(model, str):
            raise CostError("model is missing")
        prices = self._table.models.get(model)
        if prices is None:
            raise CostError(f"no price for model {model!r}")
        orientation = arguments.get("orientation") or "square"
        quality = arguments.get("quality") or prices.default_quality
        tier = prices.prices.get(quality) or prices.prices.get("any")
        if tier is None:
            raise CostError(f"no price for quality {quality!r} of {model}")
        unit = tier.get(orientation)
        if unit is None:
            raise CostError(f"no price for orientation {orientation!r}")
        n = arguments.get("n")
        if n is None:
            n = 1
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise CostError("n must be a whole number of at least 1")
        effective_n = min(n, prices.max_n)
        usd = unit * effective_n
        count = surcharge = 0.0
        if tool.endswith("edit_image"):
            images = arguments.get("images") or []
            count = len(images) if isinstance(images, list) else 1
            surcharge = count * self._table.edit_surcharge_per_input_image
            usd += surcharge
        if not explain:
            return CostEstimate(round(usd, 6))
        breakdown: dict[str, Any] = {
            "model": model,
            "quality": quality,
            "orientation": orientation,
            "unit_usd": unit,
            "images": effective_n,
        }
        if count:
            breakdown["input_images"] = int(count)
            breakdown["input_surcharge_usd"] = surcharge
        return CostEstimate(round(usd, 6), breakdown)


class ExpressionEstimator:
    """`cost: {expr: "double(args.n) * 0.04"}`: a CEL expression over args."""

    def __init__(self, program: CelProgram) -> None:
        self._program = program

    def estimate(self, tool: str, arguments: Mapping[str, Any], *, explain: bool = False) -> CostEstimate:
        values: dict[str, Any] = {"args": without_nulls(arguments), "tool": tool}
        try:
            result = self._program.evaluate(values.__getitem__)
        except CelError as exc:
            raise CostError(str(exc)) from None
        if isinstance(result, bool) or not isinstance(result, int | float):
            raise CostError(f"the cost expression gave {type(result).__name__}, not a number")
        if result < 0:
            raise CostError("the cost expression gave a negative amount")
        return CostEstimate(float(result), {"expr": self._program.source})


EstimatorFactory = Callable[[], CostEstimator]


class EstimatorRegistry:
    """Named estimators, built once per process (the price table is read once, not per call)."""

    def __init__(self, estimators: Mapping[str, CostEstimator]) -> None:
        self._estimators = dict(estimators)

    @classmethod
    def default(cls, price_overrides: Mapping[str, Any] | None = None) -> EstimatorRegistry:
        image_prices = default_image_gen_prices()
        if price_overrides and "image_gen_mcp" in price_overrides:
            image_prices = merge_prices(image_prices, price_overrides["image_gen_mcp"])
        return cls({"image_gen_mcp": ImageGenMcpEstimator.from_data(image_prices)})

    def names(self) -> list[str]:
        return sorted(self._estimators)

    def get(self, name: str) -> CostEstimator | None:
        return self._estimators.get(name)
