"""What every change to a request leaves behind, in the transaction that makes it: an event in the audit chain,
the announcement to other replicas, and the budget given back when a call will not run (after the commit)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import event as orm_event
from sqlmodel import Session

from service.approvals.models import ToolCallRequest
from service.approvals.schemas import ApprovalEvent
from service.audit.schemas import AuditRecord
from service.audit.service import record
from service.db.notify import EVENTS, announce
from service.policy import CounterStore, CounterStoreUnavailable, Reservation
from service.policy.counters import ReservedItem

log = logging.getLogger(__name__)


def emit(session: Session, events: list[ApprovalEvent]) -> list[ApprovalEvent]:
    """The events, also announced to the other replicas (sent with this transaction's commit, PostgreSQL only):
    their held calls wake at once, and their channels know the request changed."""
    for event in events:
        announce(session, EVENTS, {"k": event.kind, "r": event.request_id, "s": event.status})
    return events


def give_back_budget(session: Session, request: ToolCallRequest, counters: CounterStore | None) -> None:
    """A rejected, expired or withdrawn call keeps its count (a looping agent stays capped) but not its budget.

    The budget comes back only once this transaction has committed: given back earlier, a rollback would leave a
    call that may still run without its reservation. If it cannot be given back, the agent has less budget,
    never more."""
    if counters is None or not request.reservation:
        return
    items = Reservation.from_json(request.reservation).for_rejection()
    if items:
        after_commit(session, lambda: counters.release(items))


def after_commit(session: Session, action: Callable[[], None]) -> None:
    """Run `action` once this session's transaction has committed; never if it rolls back."""

    def run(_session: Session) -> None:
        try:
            action()
        except CounterStoreUnavailable as exc:  # committed all the same: what was not given back stays spent
            log.warning("a budget could not be given back (%s); it stays spent", exc)

    orm_event.listen(session, "after_commit", run, once=True)


def release_budget(counters: CounterStore, items: Sequence[ReservedItem]) -> None:
    try:
        counters.release(items)
    except CounterStoreUnavailable as exc:
        log.warning("a budget could not be given back (%s); it stays spent", exc)


def request_record(
    request: ToolCallRequest,
    actor: str,
    action: str,
    outcome: str,
    reason: str | None,
    details: dict[str, Any],
) -> AuditRecord:
    """What the audit chain keeps of a state change of a request."""
    return AuditRecord(
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
    )


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
    record(session, request_record(request, actor, action, outcome, reason, details))
