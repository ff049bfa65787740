"""Deciding a call without making it, against the policy in force: what `policy simulate` and the rules page show,
and how the policy prices a call (the request page's cost breakdown).

The counters are read (Redis when configured) through DryRunCounters, so a simulation never counts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import Session

from service.counters import DryRunCounters
from service.grants.service import grant_info
from service.policy import CompiledPolicy, CostError, CounterStore, EstimatorRegistry, PolicyEngine, ToolCall
from service.policy_versions.service import compiled_current


@dataclass(frozen=True)
class Simulation:
    outcome: str
    rule: str
    reason: str | None
    cost_usd: float | None
    retry_after: float | None
    errors: tuple[str, ...]
    policy_version: int | None


def simulate_call(
    session: Session,
    registry: EstimatorRegistry,
    policy_file: Path | None,
    counters: CounterStore,
    *,
    grant: str,
    tool: str,
    arguments: Mapping[str, Any],
) -> Simulation:
    policy, version = compiled_current(session, registry, policy_file)
    decision = PolicyEngine(policy, DryRunCounters(counters)).evaluate(
        ToolCall(grant_info(session, grant), tool, dict(arguments))
    )
    return Simulation(
        outcome=decision.outcome.value,
        rule=decision.rule,
        reason=decision.reason,
        cost_usd=decision.cost_usd,
        retry_after=decision.retry_after,
        errors=tuple(decision.errors),
        policy_version=version.id if version is not None else None,
    )


def explain_cost(policy: CompiledPolicy, tool: str, arguments: Mapping[str, Any]) -> dict[str, Any] | None:
    """How the policy in force prices a call (model, quality, unit price, count...), or None when it has no
    estimator for the tool or cannot price these arguments."""
    rule = policy.rule_for(tool)
    if rule is None or rule.cost is None:
        return None
    try:
        estimate = rule.cost.estimate(tool, arguments, explain=True)
    except CostError as exc:
        return {"error": str(exc)}
    return {**(estimate.breakdown or {}), "total_usd": estimate.usd}
