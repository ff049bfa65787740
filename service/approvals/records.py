"""What every change to a request leaves behind, in the transaction that makes it: an event in the audit chain,
the announcement to other replicas, and the budget given back when a call will not run."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from service.approvals.models import ToolCallRequest
from service.approvals.schemas import ApprovalEvent
from service.audit.schemas import AuditRecord
from service.audit.service import record
from service.db.notify import EVENTS, announce
from service.policy import CounterStore, Reservation


def emit(session: Session, events: list[ApprovalEvent]) -> list[ApprovalEvent]:
    """The events, also announced to the other replicas (sent with this transaction's commit, PostgreSQL only):
    their held calls wake at once, and their channels know the request changed."""
    for event in events:
        announce(session, EVENTS, {"k": event.kind, "r": event.request_id, "s": event.status})
    return events


def give_back_budget(request: ToolCallRequest, counters: CounterStore | None) -> None:
    """A rejected, expired or withdrawn call keeps its count (a looping agent stays capped) but not its budget."""
    if counters is not None and request.reservation:
        items = Reservation.from_json(request.reservation).for_rejection()
        if items:
            counters.release(items)


def request_event(
    session: Session,
    request: ToolCallRequest,
    actor: str,
    action: str,
    outcome: str,
    reason: str | None,
    details: dict[str, Any],
) -> None:
    """A state change of a request, as an event in the audit chain (in the same transaction as the change)."""
    record(
        session,
        AuditRecord(
            kind="request",
            action=action,
            actor=actor,
            grant_id=request.grant_id,
            upstream=request.upstream,
            tool=request.tool,
            outcome=outcome,
            rule=request.rule,
            reason=reason,
            request_id=request.id,
            details=details,
        ),
    )
