"""The approval queue and the single place where a person's decision changes a request.

Web UI, Slack, the REST API and the CLI all call `apply_verdict`. It enforces who may decide, no self-approval by the
grant's owner (unless the rule allows it), a quorum of distinct approvers, legal transitions only, and answers
"already decided by X at T" to a late second decision. Every change is an audit event in the same transaction;
the events for subscribers are returned, to be published once the transaction has committed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session

from service.approvals import votes
from service.approvals.deadlines import next_reminder
from service.approvals.deciders import decider_refusal, spec_from_json, spec_to_json
from service.approvals.edits import ArgumentValidator, edit
from service.approvals.models import ApprovalVote, RequestStatus, ToolCallRequest
from service.approvals.records import after_commit, emit, give_back_budget, request_event, request_record
from service.approvals.repository import ApprovalRepository
from service.approvals.schemas import ApprovalEvent, Approver, BlobPublic, Remember, RequestPublic, Verdict
from service.approvals.standing import check_remember, remember_for
from service.approvals.view import ArgumentsView, Secrets, logged_view, masked_copy, render, secrets_of
from service.arguments import arguments_digest
from service.audit.schemas import agent_actor, user_actor
from service.audit.service import audit_head_seq, record
from service.db.types import utcnow
from service.errors import Conflict, Forbidden, InvalidInput, NotFound
from service.policy import CounterStore, Decision, PolicyEngine


def open_request(
    session: Session,
    *,
    grant_id: int,
    grant_name: str,
    grant_owner: str | None,
    upstream: str,
    tool: str,
    upstream_tool: str,
    arguments: dict[str, Any],
    decision: Decision,
    policy_version_id: int | None,
    hold_mode: str,
    secrets: Secrets | None = None,
    now: datetime | None = None,
) -> tuple[ToolCallRequest, list[ApprovalEvent]]:
    """Persist a held call (before the agent hears that it is held). `secrets`: its parameters declared secret,
    kept with the request so that every channel masks the same ones (approvals/view.py)."""
    assert decision.approval is not None
    now = now or utcnow()
    request = ApprovalRepository(session).add(
        ToolCallRequest(
            status=RequestStatus.PENDING,
            grant_id=grant_id,
            upstream=upstream,
            tool=tool,
            upstream_tool=upstream_tool,
            arguments=arguments,
            arguments_digest=arguments_digest(arguments),
            policy_version_id=policy_version_id,
            rule=decision.rule,
            reason=decision.reason,
            cost_micros=round(decision.cost_usd * 1_000_000) if decision.cost_usd is not None else None,
            approval={**spec_to_json(decision.approval, grant_owner), "secrets": (secrets or Secrets()).to_json()},
            reservation=decision.reservation.to_json() if decision.reservation else [],
            hold_mode=hold_mode,
            created_at=now,
            deadline=now + decision.approval.timeout,
            next_reminder_at=next_reminder(now, now + decision.approval.timeout, 0),
        )
    )
    assert request.id is not None
    created = request_record(
        request,
        agent_actor(grant_name),
        "request.created",
        "pending",
        request.reason,
        {"hold_mode": hold_mode, "deadline": request.deadline.isoformat()},
    )
    # The event that opens a request also names the grant and the call it holds.
    record(
        session,
        replace(
            created,
            grant_name=grant_name,
            cost_micros=request.cost_micros,
            argument_keys=sorted(arguments),
            arguments_digest=request.arguments_digest,
        ),
    )
    return request, emit(session, [ApprovalEvent("created", request.id, RequestStatus.PENDING.value)])


def apply_verdict(
    session: Session,
    request_id: int,
    approver: Approver,
    verdict: Verdict,
    *,
    reason: str | None = None,
    patch: dict[str, Any] | None = None,
    remember: Remember | None = None,
    validate_arguments: ArgumentValidator | None = None,
    counters: CounterStore | None = None,
    policy: PolicyEngine | None = None,
    seen_digest: str | None = None,
    now: datetime | None = None,
) -> tuple[ToolCallRequest, list[ApprovalEvent]]:
    """`seen_digest`: the digest of the arguments the deciding person's view showed in full (`review_digest`).
    `patch`: an approver's edit, a JSON merge patch on those arguments (approvals/edits.py), which `policy` (the
    policy in force) evaluates again. An approval is a vote for the arguments under review, after the edit."""
    now = now or utcnow()
    repo = ApprovalRepository(session)
    request = repo.get(request_id, lock=True)
    if request is None:
        raise NotFound(f"no request R-{request_id}")
    assert request.id is not None
    if request.status is not RequestStatus.PENDING:
        raise Conflict(_already(request))
    if now >= request.deadline:
        # The sweeper records the expiry (raising here rolls this transaction back); nothing may run.
        raise Conflict(f"R-{request.id} expired at {request.deadline.isoformat(timespec='seconds')}; nothing ran")
    refusal = decider_refusal(request, approver)
    if refusal is not None:
        raise Forbidden(refusal)
    if seen_digest is not None and seen_digest != request.review_digest:
        raise Conflict(f"R-{request.id}'s arguments are not the ones you saw; reload it and decide again")
    if verdict is Verdict.REJECT:
        return request, _reject(session, request, approver, reason, counters, now)
    if remember is not None:
        check_remember(remember)
    revision = edit(session, request, approver, patch, validate_arguments, policy, now) if patch is not None else None
    try:
        events = _vote(session, request, approver, revision is not None, reason, remember, now)
    except BaseException:
        if revision is not None:
            revision.abandon()
        raise
    if revision is not None:
        after_commit(session, revision.settle)  # the replaced budget comes back only once the edit is kept
    return request, events


def _vote(
    session: Session,
    request: ToolCallRequest,
    approver: Approver,
    edited: bool,
    reason: str | None,
    remember: Remember | None,
    now: datetime,
) -> list[ApprovalEvent]:
    assert request.id is not None
    counted = votes.cast(session, request.id, approver, request.review_digest, remember, now)
    quorum = spec_from_json(request.approval).quorum
    if len(counted) < quorum:
        details = {"votes": len(counted), "quorum": quorum, "arguments_digest": request.review_digest}
        _audit(session, request, approver, "request.vote", "pending", reason, details)
        vote = ApprovalEvent("vote", request.id, RequestStatus.PENDING.value, {"by": approver.username})
        return emit(session, [vote])
    return _approve(session, request, approver, counted, edited, reason, remember is not None, now)


def _approve(
    session: Session,
    request: ToolCallRequest,
    approver: Approver,
    counted: list[ApprovalVote],
    edited: bool,
    reason: str | None,
    remember_asked: bool,
    now: datetime,
) -> list[ApprovalEvent]:
    """pending -> approved, once the whole quorum voted for the arguments under review; they are what runs."""
    assert request.id is not None
    values: dict[str, Any] = {"decided_at": now, "decided_by": approver.username, "decision_reason": reason}
    if not ApprovalRepository(session).move(request.id, RequestStatus.PENDING, RequestStatus.APPROVED, **values):
        session.refresh(request)
        raise Conflict(_already(request))
    was_edited = request.edited_arguments is not None
    details: dict[str, Any] = {
        "channel": approver.channel,
        "approvers": [v.approver for v in counted],
        "original_digest": request.arguments_digest,
        "executed_digest": request.review_digest,
        "original_cost_micros": request.original_cost_micros if was_edited else request.cost_micros,
        "executed_cost_micros": request.cost_micros,
        "edited_with_this_vote": edited,
    }
    agreed = votes.agreed_remember(counted)
    if agreed is not None:
        details["standing_approval"] = remember_for(session, request, approver.username, agreed, now).id
    elif remember_asked or any(v.remember_scope for v in counted):
        details["not_remembered"] = "not every approver whose vote released the call asked to remember it"
    _audit(session, request, approver, "request.approved", "approved", reason, details)
    _moved(request, RequestStatus.APPROVED, values)
    return emit(
        session,
        [
            ApprovalEvent(
                "decided",
                request.id,
                RequestStatus.APPROVED.value,
                {"by": approver.username, "channel": approver.channel},
                snapshot=request,
            )
        ],
    )


def _moved(request: ToolCallRequest, status: RequestStatus, values: dict[str, Any]) -> None:
    """Show on the loaded row what the conditional UPDATE just wrote, without reading it back."""
    set_committed_value(request, "status", status)
    for key, value in values.items():
        set_committed_value(request, key, value)


def _already(request: ToolCallRequest) -> str:
    if request.status is RequestStatus.CANCELLED and request.decision_reason:
        return f"R-{request.id} was cancelled: {request.decision_reason}"  # e.g. its grant was revoked
    if request.decided_by and request.decided_at:
        verdict = "rejected" if request.status is RequestStatus.REJECTED else "approved"
        now = "" if request.status.value == verdict else f" (now {request.status.value})"
        return (
            f"R-{request.id} was already {verdict} by {request.decided_by} "
            f"at {request.decided_at.isoformat(timespec='seconds')}{now}"
        )
    return f"R-{request.id} is already {request.status.value}"


def _reject(
    session: Session,
    request: ToolCallRequest,
    approver: Approver,
    reason: str | None,
    counters: CounterStore | None,
    now: datetime,
) -> list[ApprovalEvent]:
    assert request.id is not None
    if not reason or not reason.strip():
        raise InvalidInput("say why: a rejection needs a reason, which the agent reads")
    repo = ApprovalRepository(session)
    values: dict[str, Any] = {"decided_at": now, "decided_by": approver.username, "decision_reason": reason}
    if not repo.move(request.id, RequestStatus.PENDING, RequestStatus.REJECTED, **values):
        session.refresh(request)
        raise Conflict(_already(request))
    give_back_budget(session, request, counters)
    _audit(session, request, approver, "request.rejected", "rejected", reason, {"channel": approver.channel})
    _moved(request, RequestStatus.REJECTED, values)
    return emit(
        session,
        [
            ApprovalEvent(
                "decided",
                request.id,
                RequestStatus.REJECTED.value,
                {"by": approver.username, "reason": reason},
                snapshot=request,
            )
        ],
    )


def _audit(
    session: Session,
    request: ToolCallRequest,
    approver: Approver,
    action: str,
    outcome: str,
    reason: str | None,
    details: dict[str, Any],
) -> None:
    request_event(session, request, user_actor(approver.username), action, outcome, reason, details)


def find(session: Session, request_id: int) -> ToolCallRequest | None:
    return ApprovalRepository(session).get(request_id)


def approved_tasks(session: Session) -> list[ToolCallRequest]:
    """Approved requests held as tasks: they run without a caller attached."""
    return ApprovalRepository(session).approved_tasks()


def hold_as_task(session: Session, request_id: int) -> None:
    """A task-mode call attached to a request held another way: from now on the task runner runs it once
    approved (whoever claims it first runs it; the others read the stored result)."""
    ApprovalRepository(session).set_hold_mode(request_id, "task")


def tasks_of(
    session: Session, grant_id: int, *, before_id: int | None = None, limit: int = 50
) -> list[ToolCallRequest]:
    """A grant's requests held as tasks, newest first (tasks/list)."""
    return ApprovalRepository(session).tasks_of(grant_id, before_id, limit)


def decided_among(session: Session, request_ids: list[int]) -> list[int]:
    """Which of these requests are no longer pending, in chunks of 500 ids per query."""
    repo = ApprovalRepository(session)
    out: list[int] = []
    for start in range(0, len(request_ids), 500):
        out += repo.decided_among(request_ids[start : start + 500])
    return out


def change_mark(session: Session) -> int:
    """A number that moves whenever a request leaves `pending` (approved, rejected, expired, cancelled): each of
    those appends to the audit chain in its transaction, and the chain's head moves in commit order. It also moves
    with every other audit event, so it only stands still while nothing at all is recorded."""
    return audit_head_seq(session)


def get(session: Session, request_id: int) -> ToolCallRequest:
    request = ApprovalRepository(session).get(request_id)
    if request is None:
        raise NotFound(f"no request R-{request_id}")
    return request


def arguments_view(
    request: ToolCallRequest, viewer: Approver | None, arguments: Mapping[str, Any] | None = None
) -> ArgumentsView:
    """How `viewer` sees the arguments under review (or `arguments`): in full when they may decide the request."""
    full = viewer is not None and decider_refusal(request, viewer) is None
    shown = request.review_arguments if arguments is None else arguments
    return render(shown, secrets_of(request.approval), full=full)


def shown_values(request: ToolCallRequest, view: ArgumentsView, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The values of `arguments` as `view` shows them, as JSON: exact (secrets masked) or the logged view."""
    secrets = secrets_of(request.approval)
    if view.full:
        values: dict[str, Any] = masked_copy(arguments, secrets)
        return values
    return logged_view(arguments, secrets)


def to_public(request: ToolCallRequest, grant_name: str, viewer: Approver | None = None) -> RequestPublic:
    assert request.id is not None
    view = arguments_view(request, viewer, request.arguments)
    return RequestPublic(
        id=request.id,
        public_id=request.public_id,
        status=request.status.value,
        tool=request.tool,
        upstream=request.upstream,
        grant=grant_name,
        cost_usd=request.cost_micros / 1_000_000 if request.cost_micros is not None else None,
        arguments=shown_values(request, view, request.arguments),
        arguments_view="full" if view.full else "logged",
        arguments_digest=request.review_digest,
        masked=list(view.masked),
        blobs=[
            BlobPublic(pointer=b.pointer, media_type=b.media_type, size=b.size, sha256=b.sha256) for b in view.blobs
        ],
        rule=request.rule,
        reason=request.reason,
        created_at=request.created_at,
        deadline=request.deadline,
        requester_gone=request.requester_gone,
        decided_by=request.decided_by,
        decided_at=request.decided_at,
        decision_reason=request.decision_reason,
    )


def claim(session: Session, request_id: int) -> bool:
    """approved -> executing, as one conditional UPDATE: whoever wins runs the call, exactly once."""
    return ApprovalRepository(session).move(request_id, RequestStatus.APPROVED, RequestStatus.EXECUTING)


def finish(
    session: Session,
    request_id: int,
    *,
    succeeded: bool,
    result: dict[str, Any] | None,
    summary: dict[str, Any],
    retention: timedelta,
    delivered: bool,
    now: datetime | None = None,
) -> list[ApprovalEvent]:
    """executing -> succeeded | failed. The result is kept, bound to the grant, until delivered or retention ends."""
    now = now or utcnow()
    status = RequestStatus.SUCCEEDED if succeeded else RequestStatus.FAILED
    repo = ApprovalRepository(session)
    values: dict[str, Any] = {"result": result, "result_expires_at": now + retention}
    if delivered:
        values["delivered_at"] = now
    if not repo.move(request_id, RequestStatus.EXECUTING, status, **values):
        return []
    request = repo.get(request_id)
    assert request is not None
    request_event(session, request, "system", "request.executed", status.value, None, {"result": summary})
    return emit(session, [ApprovalEvent("executed", request_id, status.value, {"succeeded": succeeded})])


def mark_delivered(session: Session, request_id: int, now: datetime | None = None) -> None:
    request = ApprovalRepository(session).get(request_id, lock=True)
    if request is not None and request.delivered_at is None:
        request.delivered_at = now or utcnow()
        session.add(request)


def requester_gone(
    session: Session, request_id: int, *, cancel: bool, counters: CounterStore | None = None
) -> list[ApprovalEvent]:
    """The agent stopped waiting. By default the request stays decidable; with on_requester_gone: cancel it is
    withdrawn (and its budget comes back, as for any withdrawal). Either way nothing runs for a caller who is not
    there."""
    repo = ApprovalRepository(session)
    request = repo.get(request_id, lock=True)
    if request is None or request.status is not RequestStatus.PENDING:
        return []
    if cancel:
        return withdraw(session, request_id, reason="the agent stopped waiting", counters=counters)
    if request.requester_gone:
        return []
    request.requester_gone = True
    session.add(request)
    return emit(session, [ApprovalEvent("requester_gone", request_id, request.status.value)])


def withdraw(
    session: Session, request_id: int, *, reason: str, counters: CounterStore | None = None, now: datetime | None = None
) -> list[ApprovalEvent]:
    """pending -> cancelled (tasks/cancel, or on_requester_gone: cancel)."""
    now = now or utcnow()
    repo = ApprovalRepository(session)
    request = repo.get(request_id)
    if request is None or not repo.move(
        request_id, RequestStatus.PENDING, RequestStatus.CANCELLED, decided_at=now, decision_reason=reason
    ):
        return []
    give_back_budget(session, request, counters)
    request_event(session, request, "system", "request.cancelled", "cancelled", reason, {})
    return emit(session, [ApprovalEvent("cancelled", request_id, RequestStatus.CANCELLED.value, {"reason": reason})])


def pending_count(session: Session, grant_id: int) -> int:
    return ApprovalRepository(session).pending_count(grant_id)


def find_open(session: Session, grant_id: int, tool: str, arguments: Mapping[str, Any]) -> ToolCallRequest | None:
    return ApprovalRepository(session).find_open(grant_id, tool, arguments_digest(arguments))


def find_replayable(
    session: Session,
    grant_id: int,
    tool: str,
    arguments: Mapping[str, Any],
    *,
    window: timedelta,
    now: datetime | None = None,
) -> ToolCallRequest | None:
    """A held call that ran and whose result was delivered within `window` (counted from its first delivery, so
    replays never extend it), with the same original arguments: its stored result answers the same call again.
    Only a result that succeeded is replayed; an error is worth a new try."""
    now = now or utcnow()
    found = ApprovalRepository(session).replayable(grant_id, tool, arguments_digest(arguments), now - window, now)
    if found is None or found.result is None or found.result.get("isError"):
        return None
    return found


def recent_of(session: Session, grant_id: int, limit: int = 20) -> list[ToolCallRequest]:
    """A grant's latest requests, newest first (airlock_approval_status without a request id)."""
    return ApprovalRepository(session).recent_of(grant_id, limit)
