"""The policy engine: pure, fast, compiled once. The gateway only needs what is exported here."""

from service.policy.compiler import CompiledPolicy, load_policy, load_policy_data
from service.policy.cost import CostError, CostEstimate, EstimatorRegistry
from service.policy.counters import (
    CounterStore,
    CounterStoreUnavailable,
    DryRunCounters,
    MemoryCounters,
    RedisCounters,
    Reservation,
)
from service.policy.decision import ApprovalSpec, Approvers, ArgumentProblem, Decision, GrantInfo, Outcome, ToolCall
from service.policy.engine import ArgumentCheck, PendingCap, PolicyEngine, StandingApprovals

__all__ = [
    "ApprovalSpec",
    "Approvers",
    "ArgumentCheck",
    "ArgumentProblem",
    "CompiledPolicy",
    "CostError",
    "CostEstimate",
    "CounterStore",
    "CounterStoreUnavailable",
    "Decision",
    "DryRunCounters",
    "EstimatorRegistry",
    "GrantInfo",
    "MemoryCounters",
    "Outcome",
    "PendingCap",
    "PolicyEngine",
    "RedisCounters",
    "Reservation",
    "StandingApprovals",
    "ToolCall",
    "load_policy",
    "load_policy_data",
]
