"""A quorum counts only people who are still here (service/users/departures.py, service/approvals/votes.py): a
deactivated approver's votes on pending requests are withdrawn, and a vote of theirs never counts."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import select

from service.approvals import service as approvals
from service.approvals import standing
from service.approvals.events import EventBus
from service.approvals.models import RequestStatus
from service.approvals.schemas import ApprovalEvent, Approver, Remember
from service.audit.models import AuditEvent
from service.db.engine import unit_of_work
from service.security import TokenHasher
from service.users import departures
from service.users import service as users
from service.users.models import Role
from tests.approvals.helpers import ANA, BO, decide, hold
from tests.policy.helpers import engine_for, fixture

MALLORY = Approver("mallory", Role.APPROVER, "web")
QUORUM_2 = fixture("airlock-demo.yaml").replace(
    "approvers: {roles: [approver]}", "approvers: {roles: [approver]}\n      quorum: 2", 1
)
A_WEEK = Remember("tool", timedelta(days=7))


def approvers(engine: Engine, hasher: TokenHasher) -> None:
    with unit_of_work(engine) as session:
        for name in ("root", "ana", "bo", "mallory"):
            role = Role.ADMIN if name == "root" else Role.APPROVER
            users.create_user(session, hasher, username=name, role=role, actor="t")


def status(engine: Engine, request_id: int) -> RequestStatus:
    with unit_of_work(engine) as session:
        return approvals.get(session, request_id).status


def test_a_deactivated_approvers_vote_is_withdrawn_and_the_quorum_needs_another_active_approver(
    engine: Engine, hasher: TokenHasher
) -> None:
    approvers(engine, hasher)
    rules = engine_for(QUORUM_2)
    request_id = hold(engine, hasher, rules)
    decided_before = hold(engine, hasher, rules, prompt="decided before she left")
    decide(engine, request_id, MALLORY, remember=A_WEEK, policy=rules)
    decide(engine, decided_before, MALLORY, policy=rules)
    decide(engine, decided_before, ANA, policy=rules)  # released while she was here: it stays approved

    heard: list[ApprovalEvent] = []
    bus = EventBus()
    bus.subscribe(heard.append)
    with unit_of_work(engine) as session:
        departure = departures.deactivate_user(session, "mallory", actor="user:root")
    departure.settle(None, bus)

    assert heard == [ApprovalEvent("vote", request_id, "pending", {"withdrawn": "mallory"})]
    after_ana = decide(engine, request_id, ANA, remember=A_WEEK, policy=rules)
    assert after_ana.status is RequestStatus.PENDING  # Mallory's vote no longer makes the second
    released = decide(engine, request_id, BO, policy=rules)
    assert released.status is RequestStatus.APPROVED
    assert status(engine, decided_before) is RequestStatus.APPROVED
    with unit_of_work(engine) as session:
        withdrawn = session.exec(select(AuditEvent).where(AuditEvent.action == "request.vote_withdrawn")).all()
        assert [(e.request_id, e.actor, e.details["approver"]) for e in withdrawn] == [
            (request_id, "user:root", "mallory")
        ]
        approved = session.exec(
            select(AuditEvent).where(AuditEvent.action == "request.approved", AuditEvent.request_id == request_id)
        ).one()
        assert approved.details["approvers"] == ["ana", "bo"]
        # Mallory and Ana asked to remember, Bo did not: her "remember" went with her vote, so nothing is remembered.
        assert standing.list_standing(session) == []


def test_a_vote_still_presented_by_a_deactivated_approver_never_counts(engine: Engine, hasher: TokenHasher) -> None:
    """The backstop: a channel that still acts for her (say, a Slack identity read before she left) adds a vote,
    which the quorum does not count."""
    approvers(engine, hasher)
    rules = engine_for(QUORUM_2)
    request_id = hold(engine, hasher, rules)
    with unit_of_work(engine) as session:
        departures.deactivate_user(session, "mallory", actor="user:root")
    decide(engine, request_id, MALLORY, policy=rules)
    assert decide(engine, request_id, ANA, policy=rules).status is RequestStatus.PENDING
    assert decide(engine, request_id, BO, policy=rules).status is RequestStatus.APPROVED
