"""Deadlines of waiting requests, from persisted times and never from timers in memory: the expiry (Airlock never
approves by itself) and the reminders at 50% and 90% of the timeout. The sweeper runs these, and tells each one
`now` from its injected clock (service/clock.py), so a test moves time instead of waiting for it."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from service.approvals.models import RequestStatus, ToolCallRequest
from service.approvals.records import emit, give_back_budget, request_event
from service.approvals.repository import ApprovalRepository
from service.approvals.schemas import ApprovalEvent
from service.policy import CounterStore


def _expire(
    session: Session, request: ToolCallRequest, counters: CounterStore | None, now: datetime
) -> list[ApprovalEvent]:
    assert request.id is not None
    if not ApprovalRepository(session).move(request.id, RequestStatus.PENDING, RequestStatus.EXPIRED, decided_at=now):
        return []
    give_back_budget(session, request, counters)
    request_event(session, request, "system", "request.expired", "expired", None, {})
    return emit(session, [ApprovalEvent("expired", request.id, RequestStatus.EXPIRED.value)])


def expire_due(session: Session, counters: CounterStore | None, now: datetime) -> list[ApprovalEvent]:
    """What the sweeper runs: a persisted deadline, never a timer in memory. Airlock never approves by itself."""
    events: list[ApprovalEvent] = []
    for request in ApprovalRepository(session).due(now):
        events += _expire(session, request, counters, now)
    return events


REMINDER_POINTS = (0.5, 0.9)
"""Reminders go out at these fractions of the approval timeout."""


def next_reminder(created_at: datetime, deadline: datetime, sent: int) -> datetime | None:
    if sent >= len(REMINDER_POINTS):
        return None
    return created_at + (deadline - created_at) * REMINDER_POINTS[sent]


def due_reminders(session: Session, now: datetime) -> list[ApprovalEvent]:
    """Reminders at 50% and 90% of the timeout, as events for the channels to post."""
    events = []
    for request in ApprovalRepository(session).reminders_due(now):
        assert request.id is not None
        total = (request.deadline - request.created_at).total_seconds()
        elapsed = (now - request.created_at).total_seconds()
        due = sum(1 for point in REMINDER_POINTS if elapsed >= point * total)
        if due > request.reminders_sent:
            request.reminders_sent = due
            percent = round(100 * REMINDER_POINTS[due - 1])
            # In the audit log too, so the request's timeline shows when approvers were reminded.
            request_event(session, request, "system", "request.reminder", "pending", None, {"percent": percent})
            events.append(ApprovalEvent("reminder", request.id, request.status.value, {"percent": percent}))
        request.next_reminder_at = next_reminder(request.created_at, request.deadline, request.reminders_sent)
        session.add(request)
    return emit(session, events)


def sweep_due(session: Session, now: datetime) -> bool:
    """Whether anything waits for the sweeper (read in a read-only transaction, so an idle sweep writes nothing)."""
    return ApprovalRepository(session).anything_due(now)
