"""Holding a call and deciding it, as the approval tests do it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from service.approvals import service
from service.approvals.models import ToolCallRequest
from service.approvals.schemas import Approver, Verdict
from service.counters import MemoryCounters
from service.db.engine import unit_of_work
from service.grants.service import create_grant
from service.policy import GrantInfo, Outcome, PolicyEngine, ToolCall
from service.security import TokenHasher
from service.users.models import Role
from service.users.service import create_user
from tests.policy.helpers import IMAGE, engine_for, fixture

ADMIN = Approver("root", Role.ADMIN, "web")
ANA = Approver("ana", Role.APPROVER, "web")
BO = Approver("bo", Role.APPROVER, "slack", slack_user_id="U0BO")
VIEWER = Approver("vic", Role.VIEWER, "web")
OWNER = Approver("dana", Role.APPROVER, "web")


def held(
    engine: Engine,
    hasher: TokenHasher,
    policy: str | None = None,
    counters: MemoryCounters | None = None,
    **args: Any,
) -> tuple[int, MemoryCounters]:
    """A generate_image call held under the demo policy, persisted for the grant dana owns."""
    counters = counters or MemoryCounters()
    policy_engine = engine_for(policy or fixture("airlock-demo.yaml"), counters=counters)
    return hold(engine, hasher, policy_engine, **args), counters


def hold(engine: Engine, hasher: TokenHasher, policy_engine: PolicyEngine, **args: Any) -> int:
    """A generate_image call (n=4 unless told) that `policy_engine` holds, persisted for the grant dana owns."""
    with unit_of_work(engine) as session:
        if not _grant_exists(session):
            create_user(session, hasher, username="dana", role=Role.APPROVER, actor="t")
            create_grant(session, hasher, name="bot", actor="t", owner="dana")
    arguments = {**IMAGE, "n": 4, **args}
    decision = policy_engine.evaluate(ToolCall(GrantInfo("1", "bot", "dana"), "generate_image", arguments))
    assert decision.outcome is Outcome.HOLD
    with unit_of_work(engine) as session:
        request, events = service.open_request(
            session,
            grant_id=1,
            grant_name="bot",
            grant_owner="dana",
            upstream="imagegen",
            tool="generate_image",
            upstream_tool="generate_image",
            arguments=arguments,
            decision=decision,
            policy_version_id=None,
            hold_mode="blocking",
        )
    assert events[0].kind == "created"
    assert request.id is not None
    return request.id


def _grant_exists(session: Session) -> bool:
    from service.grants.models import Grant

    return session.exec(select(Grant)).first() is not None


def decide(
    engine: Engine, request_id: int, approver: Approver, verdict: Verdict = Verdict.APPROVE, **kwargs: Any
) -> ToolCallRequest:
    with unit_of_work(engine) as session:
        request, _events = service.apply_verdict(session, request_id, approver, verdict, **kwargs)
    return request
