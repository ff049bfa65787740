"""Standing approvals ("approve and remember"): later calls of the same grant and tool, and, when scoped to them,
the same arguments, pass as Allow for a while; listed and revocable."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from service.approvals.models import StandingApproval, ToolCallRequest
from service.approvals.repository import ApprovalRepository
from service.approvals.schemas import Remember
from service.audit.schemas import AuditRecord
from service.audit.service import record
from service.db.notify import CHANGES, announce
from service.db.types import utcnow
from service.errors import InvalidInput, NotFound


def check_remember(remember: Remember) -> None:
    if remember.duration <= timedelta(0) or remember.duration > timedelta(days=30):
        raise InvalidInput("remember for more than nothing and at most 30 days")


def remember_for(
    session: Session, request: ToolCallRequest, approver: str, remember: Remember, now: datetime
) -> StandingApproval:
    """A standing approval for the call that runs: the arguments under review (the latest edit), when scoped to them."""
    check_remember(remember)
    announce(session, CHANGES, {"what": "standing", "grant": request.grant_id})
    return ApprovalRepository(session).add_standing(
        StandingApproval(
            grant_id=request.grant_id,
            tool=request.tool,
            arguments_digest=request.review_digest if remember.scope == "arguments" else None,
            created_by=approver,
            request_id=request.id,
            created_at=now,
            expires_at=now + remember.duration,
        )
    )


def list_standing(session: Session, now: datetime | None = None, grant_id: int | None = None) -> list[StandingApproval]:
    return ApprovalRepository(session).active_standing(now or utcnow(), grant_id)


def revoke_standing(session: Session, standing_id: int, *, actor: str, now: datetime | None = None) -> None:
    standing = ApprovalRepository(session).standing(standing_id)
    if standing is None:
        raise NotFound(f"no standing approval {standing_id}")
    if standing.revoked_at is None:
        _revoke(session, standing, actor, now or utcnow())


def revoke_standing_by(session: Session, approver: str, *, actor: str, now: datetime | None = None) -> int:
    """End every standing approval the person made (their trust leaves with them); how many were active."""
    now = now or utcnow()
    made = ApprovalRepository(session).active_standing_by(approver, now)
    for standing in made:
        _revoke(session, standing, actor, now)
    return len(made)


def _revoke(session: Session, standing: StandingApproval, actor: str, now: datetime) -> None:
    standing.revoked_at = now
    standing.revoked_by = actor
    session.add(standing)
    announce(session, CHANGES, {"what": "standing", "grant": standing.grant_id})
    record(
        session,
        AuditRecord(
            kind="admin",
            action="standing_approval.revoked",
            actor=actor,
            grant_id=standing.grant_id,
            tool=standing.tool,
            details={"id": standing.id},
        ),
    )


def matching_standing(standing: list[StandingApproval], tool: str, digest: str) -> StandingApproval | None:
    """The standing approval (of one grant's active ones) that covers this call, if any."""
    for item in standing:
        if item.tool == tool and (item.arguments_digest is None or item.arguments_digest == digest):
            return item
    return None
