"""Cancelling a grant's open requests when the grant is revoked: a call runs only for a live grant.

Each cancel is one conditional UPDATE (`pending -> cancelled`, `approved -> cancelled`) that races the claim
(`approved -> executing`), so for every request exactly one of them wins: a call that was claimed first runs (it
was released while the grant was live), and a cancelled one never runs. The budgets of the cancelled calls are
given back only once the revoking transaction has committed (`Cancellation.settle`): given back earlier, a
rollback would leave a call that may still run without its reservation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session

from service.approvals.events import EventBus
from service.approvals.models import RequestStatus, ToolCallRequest
from service.approvals.records import emit, release_budget, request_event
from service.approvals.repository import ApprovalRepository
from service.approvals.schemas import ApprovalEvent
from service.db.types import utcnow
from service.policy import CounterStore, Reservation

GRANT_REVOKED = "grant revoked"
"""The reason a revocation's cancels carry: the agent reads it after `[CANCELLED]`, and a late decision hears it."""

OWNER_DEACTIVATED = "grant suspended: its owner is deactivated"
"""The reason the cancels carry when the grant's owner is deactivated (service/users/departures.py)."""

_BY_THE_GRANT = (GRANT_REVOKED, OWNER_DEACTIVATED)

CANCELLABLE = (RequestStatus.PENDING, RequestStatus.APPROVED)
"""Undecided, or approved but not yet claimed: nothing of the call has run."""


def revoked(request: ToolCallRequest) -> bool:
    """Whether this request was cancelled because its grant was revoked or suspended (rather than withdrawn by the
    agent); its `decision_reason` then says which."""
    return request.status is RequestStatus.CANCELLED and request.decision_reason in _BY_THE_GRANT


@dataclass
class Cancellation:
    """What a revocation cancelled: the events to publish and the budgets to give back, both after the commit."""

    events: list[ApprovalEvent] = field(default_factory=list)
    cancelled: list[ToolCallRequest] = field(default_factory=list)

    def settle(self, counters: CounterStore | None, bus: EventBus | None = None) -> None:
        """Run once the revoking transaction has committed: no cancelled call can be claimed any more."""
        for request in self.cancelled:
            items = Reservation.from_json(request.reservation).for_rejection() if request.reservation else ()
            if counters is not None and items:
                release_budget(counters, items)
        if bus is not None:
            bus.publish(self.events)


def cancel_grant_requests(
    session: Session, grant_id: int, *, actor: str, reason: str = GRANT_REVOKED, now: datetime | None = None
) -> Cancellation:
    """Cancel every pending and approved-but-unclaimed request of the grant, in the caller's transaction."""
    now = now or utcnow()
    repo = ApprovalRepository(session)
    outcome = Cancellation()
    for request in repo.of_grant(grant_id, CANCELLABLE):
        assert request.id is not None
        was = _cancel(repo, request.id, request.status, reason, now)
        if was is None:
            continue  # claimed (or finished) in the meantime: the claim won this request, and the call runs
        request_event(session, request, actor, "request.cancelled", "cancelled", reason, {"was": was.value})
        outcome.cancelled.append(request)
        outcome.events += emit(
            session,
            [ApprovalEvent("cancelled", request.id, RequestStatus.CANCELLED.value, {"reason": reason, "was": was})],
        )
    return outcome


def _cancel(
    repo: ApprovalRepository, request_id: int, status: RequestStatus | None, reason: str, now: datetime
) -> RequestStatus | None:
    """The status this request was cancelled from, or None when it left the cancellable states first. A decision
    racing the revocation can move `pending -> approved` between our read and our UPDATE: then the approved request
    is cancelled in turn (or claimed first), so an approval never slips past a revocation. (Today the audit chain's
    head also serialises the two transactions; this does not rely on it.)"""
    while status in CANCELLABLE:
        values: dict[str, Any] = {"decision_reason": reason}
        if status is RequestStatus.PENDING:
            values["decided_at"] = now  # an approved request keeps who approved it, and when
        if repo.move(request_id, status, RequestStatus.CANCELLED, **values):
            return status
        status = repo.status_of(request_id)
    return None
