"""All SQL of the approval queue. State changes are conditional UPDATEs, so two replicas, a double click, or Slack
and the web UI at the same moment can never both move a request."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, func, or_, update
from sqlmodel import Session, col, select

from service.approvals.models import ApprovalVote, RequestStatus, StandingApproval, ToolCallRequest
from service.db.dates import utc_day

REQUESTS: Table = ToolCallRequest.__table__  # type: ignore[attr-defined]
OPEN_STATUSES = (RequestStatus.PENDING, RequestStatus.APPROVED, RequestStatus.EXECUTING)


class ApprovalRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, request: ToolCallRequest) -> ToolCallRequest:
        self.session.add(request)
        self.session.flush()
        return request

    def get(self, request_id: int, *, lock: bool = False) -> ToolCallRequest | None:
        return self.session.get(ToolCallRequest, request_id, with_for_update=lock or None)

    def page(
        self,
        *,
        statuses: Sequence[RequestStatus] | None,
        tool: str | None,
        grant_id: int | None,
        before_id: int | None,
        limit: int,
    ) -> list[ToolCallRequest]:
        """Newest first, by keyset on the id."""
        query = select(ToolCallRequest)
        if statuses:
            query = query.where(col(ToolCallRequest.status).in_([s.value for s in statuses]))
        if tool:
            query = query.where(ToolCallRequest.tool == tool)
        if grant_id is not None:
            query = query.where(ToolCallRequest.grant_id == grant_id)
        if before_id is not None:
            query = query.where(col(ToolCallRequest.id) < before_id)
        return list(self.session.exec(query.order_by(col(ToolCallRequest.id).desc()).limit(limit)).all())

    def move(self, request_id: int, expected: RequestStatus, new: RequestStatus, **values: object) -> bool:
        """Change the status only if it is still `expected`; True when this caller won."""
        result = self.session.execute(
            update(REQUESTS)
            .where(REQUESTS.c.id == request_id, REQUESTS.c.status == expected.value)
            .values(status=new.value, **values)
        )
        return bool(getattr(result, "rowcount", 0))  # a CursorResult for an UPDATE

    def status_of(self, request_id: int) -> RequestStatus | None:
        """The committed status, read afresh (not from the session's loaded row)."""
        found = self.session.exec(select(ToolCallRequest.status).where(ToolCallRequest.id == request_id)).first()
        return RequestStatus(found) if found is not None else None

    def of_grant(self, grant_id: int, statuses: Sequence[RequestStatus]) -> list[ToolCallRequest]:
        return list(
            self.session.exec(
                select(ToolCallRequest)
                .where(
                    ToolCallRequest.grant_id == grant_id,
                    col(ToolCallRequest.status).in_([s.value for s in statuses]),
                )
                .order_by(col(ToolCallRequest.id))
            ).all()
        )

    def due(self, now: datetime, limit: int = 500) -> list[ToolCallRequest]:
        return list(
            self.session.exec(
                select(ToolCallRequest)
                .where(ToolCallRequest.status == RequestStatus.PENDING.value, col(ToolCallRequest.deadline) <= now)
                .order_by(col(ToolCallRequest.deadline))
                .limit(limit)
            ).all()
        )

    def reminders_due(self, now: datetime, limit: int = 500) -> list[ToolCallRequest]:
        return list(
            self.session.exec(
                select(ToolCallRequest)
                .where(
                    ToolCallRequest.status == RequestStatus.PENDING.value,
                    col(ToolCallRequest.next_reminder_at) <= now,
                )
                .limit(limit)
                # Replicas sweep at the same time: each due reminder goes to one of them (PostgreSQL; SQLite has one
                # writer anyway and ignores this).
                .with_for_update(skip_locked=True)
            ).all()
        )

    def anything_due(self, now: datetime) -> bool:
        """Whether the sweeper has work: an expiry or a reminder. Two indexed lookups, no rows loaded."""
        pending = ToolCallRequest.status == RequestStatus.PENDING.value
        for due in (col(ToolCallRequest.deadline) <= now, col(ToolCallRequest.next_reminder_at) <= now):
            if self.session.exec(select(ToolCallRequest.id).where(pending, due).limit(1)).first() is not None:
                return True
        return False

    def approved_tasks(self, limit: int = 100) -> list[ToolCallRequest]:
        """Approved requests held as tasks: they run without a caller attached, their result awaits tasks/get."""
        return list(
            self.session.exec(
                select(ToolCallRequest)
                .where(ToolCallRequest.status == RequestStatus.APPROVED.value, ToolCallRequest.hold_mode == "task")
                .order_by(col(ToolCallRequest.id))
                .limit(limit)
            ).all()
        )

    def set_hold_mode(self, request_id: int, mode: str) -> None:
        self.session.execute(
            update(REQUESTS).where(REQUESTS.c.id == request_id, REQUESTS.c.hold_mode != mode).values(hold_mode=mode)
        )

    def tasks_of(self, grant_id: int, before_id: int | None, limit: int) -> list[ToolCallRequest]:
        """A grant's task-mode requests, newest first, before a keyset cursor."""
        query = select(ToolCallRequest).where(ToolCallRequest.grant_id == grant_id, ToolCallRequest.hold_mode == "task")
        if before_id is not None:
            query = query.where(col(ToolCallRequest.id) < before_id)
        return list(self.session.exec(query.order_by(col(ToolCallRequest.id).desc()).limit(limit)).all())

    def decided_among(self, request_ids: Sequence[int]) -> list[int]:
        """Which of these requests are no longer pending (one query for every waiting call)."""
        if not request_ids:
            return []
        rows = self.session.exec(
            select(ToolCallRequest.id).where(
                col(ToolCallRequest.id).in_(list(request_ids)), ToolCallRequest.status != RequestStatus.PENDING.value
            )
        ).all()
        return [int(r) for r in rows if r is not None]

    def pending_count(self, grant_id: int) -> int:
        return int(
            self.session.exec(
                select(func.count())
                .select_from(ToolCallRequest)
                .where(ToolCallRequest.grant_id == grant_id, ToolCallRequest.status == RequestStatus.PENDING.value)
            ).one()
        )

    def find_open(self, grant_id: int, tool: str, arguments_digest: str) -> ToolCallRequest | None:
        """A request for the same call that is still open, or ran and was not yet delivered."""
        open_or_undelivered = or_(
            col(ToolCallRequest.status).in_([s.value for s in OPEN_STATUSES]),
            and_(
                col(ToolCallRequest.status) == RequestStatus.SUCCEEDED.value,
                col(ToolCallRequest.delivered_at).is_(None),
            ),
        )
        return self._newest_of_call(grant_id, tool, arguments_digest, open_or_undelivered)

    def replayable(
        self, grant_id: int, tool: str, arguments_digest: str, delivered_since: datetime, now: datetime
    ) -> ToolCallRequest | None:
        """The newest request for the same call that succeeded, was first delivered since then, and whose stored
        result is still kept."""
        return self._newest_of_call(
            grant_id,
            tool,
            arguments_digest,
            ToolCallRequest.status == RequestStatus.SUCCEEDED.value,
            col(ToolCallRequest.delivered_at) >= delivered_since,
            col(ToolCallRequest.result).is_not(None),
            col(ToolCallRequest.result_expires_at) > now,
        )

    def _newest_of_call(
        self, grant_id: int, tool: str, arguments_digest: str, *conditions: Any
    ) -> ToolCallRequest | None:
        """The newest request for one call (grant, tool and original-arguments digest) that meets the conditions."""
        return self.session.exec(
            select(ToolCallRequest)
            .where(
                ToolCallRequest.grant_id == grant_id,
                ToolCallRequest.tool == tool,
                ToolCallRequest.arguments_digest == arguments_digest,
                *conditions,
            )
            .order_by(col(ToolCallRequest.id).desc())
            .limit(1)
        ).first()

    def recent_of(self, grant_id: int, limit: int) -> list[ToolCallRequest]:
        """A grant's requests, newest first."""
        query = select(ToolCallRequest).where(ToolCallRequest.grant_id == grant_id)
        return list(self.session.exec(query.order_by(col(ToolCallRequest.id).desc()).limit(limit)).all())

    def votes(self, request_id: int) -> list[ApprovalVote]:
        return list(
            self.session.exec(
                select(ApprovalVote).where(ApprovalVote.request_id == request_id).order_by(col(ApprovalVote.id))
            ).all()
        )

    def add_vote(self, vote: ApprovalVote) -> None:
        self.session.add(vote)
        self.session.flush()

    def pending_votes_by(self, approver: str) -> list[tuple[ApprovalVote, ToolCallRequest]]:
        """The person's votes on requests still pending, those requests locked (PostgreSQL) as a decision locks them:
        a vote being counted and the same vote being withdrawn do not interleave."""
        query = (
            select(ApprovalVote, ToolCallRequest)
            .join(ToolCallRequest, col(ToolCallRequest.id) == col(ApprovalVote.request_id))
            .where(ApprovalVote.approver == approver, ToolCallRequest.status == RequestStatus.PENDING)
            .order_by(col(ApprovalVote.id))
            .with_for_update(of=ToolCallRequest)
        )
        return [(vote, request) for vote, request in self.session.exec(query).all()]

    def remove_vote(self, vote: ApprovalVote) -> None:
        self.session.delete(vote)
        self.session.flush()

    def add_standing(self, standing: StandingApproval) -> StandingApproval:
        self.session.add(standing)
        self.session.flush()
        return standing

    def standing(self, standing_id: int) -> StandingApproval | None:
        return self.session.get(StandingApproval, standing_id)

    def active_standing_by(self, created_by: str, now: datetime) -> list[StandingApproval]:
        query = select(StandingApproval).where(
            StandingApproval.created_by == created_by,
            col(StandingApproval.revoked_at).is_(None),
            col(StandingApproval.expires_at) > now,
        )
        return list(self.session.exec(query.order_by(col(StandingApproval.id))).all())

    def active_standing(self, now: datetime, grant_id: int | None = None) -> list[StandingApproval]:
        query = select(StandingApproval).where(
            col(StandingApproval.revoked_at).is_(None), col(StandingApproval.expires_at) > now
        )
        if grant_id is not None:
            query = query.where(StandingApproval.grant_id == grant_id)
        return list(self.session.exec(query.order_by(col(StandingApproval.id).desc())).all())


class ApprovalStatsRepository:
    """Counts over the queue for the dashboard and the grants page."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def pending_total(self) -> int:
        return int(
            self.session.exec(
                select(func.count())
                .select_from(ToolCallRequest)
                .where(ToolCallRequest.status == RequestStatus.PENDING.value)
            ).one()
        )

    def decision_times(self, since: datetime, limit: int = 20_000) -> list[tuple[datetime, datetime]]:
        """(created, decided) of requests a person decided since then, newest first."""
        rows = self.session.exec(
            select(ToolCallRequest.created_at, ToolCallRequest.decided_at)
            .where(col(ToolCallRequest.decided_by).is_not(None), col(ToolCallRequest.decided_at) >= since)
            .order_by(col(ToolCallRequest.id).desc())
            .limit(limit)
        ).all()
        return [(created, decided) for created, decided in rows if decided is not None]

    def held_tools(self, since: datetime, limit: int = 10) -> list[tuple[str, int]]:
        count = func.count()
        rows = self.session.exec(
            select(ToolCallRequest.tool, count)
            .where(col(ToolCallRequest.created_at) >= since)
            .group_by(col(ToolCallRequest.tool))
            .order_by(count.desc())
            .limit(limit)
        ).all()
        return [(str(tool), int(n)) for tool, n in rows]

    def ran_cost_per_grant_day(self, since: datetime) -> list[tuple[int, str, int]]:
        """(grant id, UTC day, estimated cost of the held calls that ran, in micro-USD)."""
        day = utc_day(self.session, ToolCallRequest.created_at)
        rows = self.session.exec(
            select(ToolCallRequest.grant_id, day, func.sum(func.coalesce(ToolCallRequest.cost_micros, 0)))
            .where(
                col(ToolCallRequest.created_at) >= since,
                ToolCallRequest.status == RequestStatus.SUCCEEDED.value,
            )
            .group_by(col(ToolCallRequest.grant_id), day)
        ).all()
        return [(int(g), str(d), int(c or 0)) for g, d, c in rows]
