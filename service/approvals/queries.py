"""The read side of the queue for the API, the CLI and the web UI: pages, details, names instead of ids."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from sqlmodel import Session, col, select

from service.approvals.models import RequestStatus, ToolCallRequest
from service.approvals.repository import ApprovalRepository
from service.approvals.schemas import Approver, RequestDetail, RequestPage, RequestPublic
from service.approvals.service import arguments_view, get, shown_values, to_public
from service.arguments import redact
from service.audit.models import AuditEvent
from service.errors import InvalidInput
from service.grants.models import Grant
from service.grants.repository import GrantRepository
from service.paging import parse_cursor


def _grant_names(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = session.exec(select(Grant.id, Grant.name).where(col(Grant.id).in_(ids))).all()
    return {int(gid): name for gid, name in rows if gid is not None}


def public(session: Session, request: ToolCallRequest, viewer: Approver | None = None) -> RequestPublic:
    """`viewer`: who will read it; people who may decide get the full view, everyone else (and None) the logged one."""
    return to_public(request, _grant_names(session, {request.grant_id}).get(request.grant_id, "?"), viewer)


def viewed_by(viewer: Approver) -> Callable[[Session, ToolCallRequest], RequestPublic]:
    """`public` for one reader, as the view a channel's decision answers with."""
    return partial(public, viewer=viewer)


def page(
    session: Session,
    *,
    status: str | None,
    tool: str | None,
    grant: str | None,
    limit: int,
    cursor: str | None,
    viewer: Approver | None = None,
) -> RequestPage:
    statuses = None
    if status:
        try:
            statuses = [RequestStatus(s) for s in status.split(",")]
        except ValueError:
            raise InvalidInput(f"unknown status {status!r}; use {', '.join(s.value for s in RequestStatus)}") from None
    grant_id = None
    if grant:
        found = GrantRepository(session).by_name(grant)
        if found is None:
            return RequestPage(items=[], next_cursor=None)
        grant_id = found.id
    before = parse_cursor(cursor)
    rows = ApprovalRepository(session).page(
        statuses=statuses, tool=tool, grant_id=grant_id, before_id=before, limit=limit + 1
    )
    more = len(rows) > limit
    rows = rows[:limit]
    names = _grant_names(session, {r.grant_id for r in rows})
    items = [to_public(r, names.get(r.grant_id, "?"), viewer) for r in rows]
    return RequestPage(items=items, next_cursor=str(rows[-1].id) if more and rows else None)


def detail(session: Session, request_id: int, viewer: Approver | None = None) -> RequestDetail:
    request = get(session, request_id)
    base = public(session, request, viewer)
    events = session.exec(
        select(AuditEvent).where(AuditEvent.request_id == request_id).order_by(col(AuditEvent.seq))
    ).all()
    votes = ApprovalRepository(session).votes(request_id)
    result = None
    if request.result is not None:
        result = redact(request.result, max_string=500)
    return RequestDetail(
        **base.model_dump(),
        approvals=[{"approver": v.approver, "channel": v.channel, "at": v.created_at.isoformat()} for v in votes],
        events=[
            {
                "action": e.action,
                "actor": e.actor,
                "outcome": e.outcome,
                "reason": e.reason,
                "at": e.occurred_at.isoformat(),
                "details": e.details,
            }
            for e in events
        ],
        result=result,
        edited_arguments=shown_values(request, arguments_view(request, viewer), request.edited_arguments)
        if request.edited_arguments is not None
        else None,
    )
