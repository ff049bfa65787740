"""The policy engine: pure, fast, compiled once. The gateway only needs what is exported here.

The counter stores it is given live in `service.counters`.
"""

from service.policy.compiler import CompiledPolicy, load_policy, load_policy_data
from service.policy.cost import CostError, CostEstimate, EstimatorRegistry
from service.policy.counter_keys import counter_key, grant_owner
from service.policy.counters import CounterStore, CounterStoreUnavailable, GiveBack, Reservation
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
    "EstimatorRegistry",
    "GiveBack",
    "GrantInfo",
    "Outcome",
    "PendingCap",
    "PolicyEngine",
    "Reservation",
    "StandingApprovals",
    "ToolCall",
    "counter_key",
    "grant_owner",
    "load_policy",
    "load_policy_data",
]
