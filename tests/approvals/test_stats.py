"""The dashboard's numbers on SQLite and PostgreSQL: pending now, time to a decision, held tools, spend per day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from service.approvals.models import RequestStatus, ToolCallRequest
from service.approvals.stats import queue_stats, ran_cost_by_grant_day
from service.audit.queries import calls_by_outcome_per_hour, last_calls, usage_by_grant
from service.audit.schemas import AuditRecord
from service.audit.service import record
from service.grants.service import create_grant
from service.security import TokenHasher

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def request(
    status: RequestStatus, tool: str, created: datetime, wait_s: float | None, cost: int = 0
) -> ToolCallRequest:
    return ToolCallRequest(
        status=status, grant_id=1, upstream="u", tool=tool, arguments={}, arguments_digest="d", rule="/r",
        cost_micros=cost, approval={}, created_at=created, deadline=created + timedelta(minutes=15),
        decided_at=created + timedelta(seconds=wait_s) if wait_s is not None else None,
        decided_by="ana" if wait_s is not None else None,
    )  # fmt: skip


def test_queue_stats_and_spend(session: Session, hasher: TokenHasher) -> None:
    create_grant(session, hasher, name="bot", actor="test")
    for wait in (10, 20, 30, 40, 100):
        session.add(request(RequestStatus.SUCCEEDED, "generate_image", T0, wait, cost=250_000))
    session.add(request(RequestStatus.PENDING, "edit_image", T0, None))
    session.add(request(RequestStatus.PENDING, "generate_image", T0 - timedelta(days=30), None))
    session.flush()
    stats = queue_stats(session, T0 - timedelta(days=1))
    assert stats.pending == 2
    assert stats.decided == 5 and stats.median_decision_s == 30
    assert stats.p90_decision_s is not None and 40 < stats.p90_decision_s <= 100
    assert stats.held_tools == [("generate_image", 5), ("edit_image", 1)]
    assert ran_cost_by_grant_day(session, T0 - timedelta(days=1)) == {1: {"2026-11-24": 1_250_000}}


def test_usage_per_grant_and_day_from_the_audit_log(session: Session, hasher: TokenHasher) -> None:
    create_grant(session, hasher, name="bot", actor="test")
    clock = iter([T0, T0 + timedelta(minutes=5), T0 + timedelta(hours=1), T0 + timedelta(days=1)])
    for action, outcome, cost in (
        ("call.allowed", "allow", 40_000),
        ("call.denied", "deny", None),
        ("call.held", "hold", 900_000),
        ("call.allowed", "allow", 10_000),
    ):
        record(
            session,
            AuditRecord(
                kind="call", action=action, actor="agent:bot", grant_id=1, tool="t", outcome=outcome, cost_micros=cost
            ),
            clock=lambda: next(clock),
        )
    session.flush()
    usage = usage_by_grant(session, T0)
    assert {day: (u.calls, u.allowed_cost_micros) for day, u in usage[1].items()} == {
        "2026-11-24": (3, 40_000),
        "2026-11-25": (1, 10_000),
    }
    hours = calls_by_outcome_per_hour(session, T0)
    assert hours["2026-11-24 09:00"] == {"allow": 1, "deny": 1} and hours["2026-11-24 10:00"] == {"hold": 1}
    assert last_calls(session, [1, 2]) == {1: T0 + timedelta(days=1), 2: None}
