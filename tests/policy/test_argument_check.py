"""Where the schema check sits in the order of evaluation: after deny rules and hard count limits, before budgets,
and only for tools the policy may hold."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from service.counters import MemoryCounters
from service.policy import ArgumentProblem, EstimatorRegistry, Outcome, PolicyEngine, counter_key, grant_owner
from service.policy.compiler import load_policy
from tests.policy.helpers import IMAGE, T0, Clock, call, fixture

MISSING_MODEL = ArgumentProblem("", "required", "'model' is a required property")


class RequiresModel:
    """Stands in for the gateway's compiled validators: `model` is required; records which tools it was asked about."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def problems(self, tool: str, arguments: Mapping[str, Any]) -> Sequence[ArgumentProblem]:
        self.asked.append(tool)
        return [] if "model" in arguments else [MISSING_MODEL]


def engine(check: RequiresModel, counters: MemoryCounters, document: str | None = None) -> PolicyEngine:
    policy = load_policy(document or fixture("airlock-demo.yaml"), EstimatorRegistry.default())
    return PolicyEngine(policy, counters, clock=Clock(), argument_check=check)


def spent(counters: MemoryCounters, counter: str, seconds: int) -> int:
    return counters.peek([counter_key(counter, grant_owner("7"), seconds, T0)], T0)[0]


def test_invalid_arguments_are_denied_before_any_budget_is_reserved_but_still_counted() -> None:
    counters, check = MemoryCounters(), RequiresModel()
    arguments = {k: v for k, v in IMAGE.items() if k != "model"}
    decision = engine(check, counters).evaluate(call("generate_image", **arguments, n=4))
    assert decision.outcome is Outcome.DENY
    assert decision.invalid_arguments == (MISSING_MODEL,)
    assert spent(counters, "image_spend", 86400) == 0
    assert spent(counters, "generate_image_rate", 60) == 1


def test_deny_rules_and_hard_limits_come_first() -> None:
    counters, check = MemoryCounters(), RequiresModel()
    policy = engine(check, counters)
    denied = policy.evaluate(call("generate_image", prompt="x", directory="/srv"))
    assert (denied.outcome, denied.invalid_arguments) == (Outcome.DENY, ())  # the deny rule's answer, not ours
    for _ in range(30):
        assert policy.evaluate(call("generate_image", prompt="x")).invalid_arguments
    capped = policy.evaluate(call("generate_image", prompt="x"))
    assert capped.outcome is Outcome.RATE_LIMITED  # a looping agent with broken calls is capped like any other


def test_tools_the_policy_never_holds_are_not_checked() -> None:
    counters, check = MemoryCounters(), RequiresModel()
    decision = engine(check, counters).evaluate(call("get_model_capabilities"))
    assert decision.outcome is Outcome.ALLOW
    assert check.asked == []
