"""Quorum votes, each bound to the arguments digest it approved.

A call runs only when the whole quorum voted for the digest that runs: an edit moves the digest under review, so every
earlier vote stops counting, and its approvers vote again on what they now see. "Remember" is what the whole quorum
asked for, or nothing: one person may not whitelist a call whose rule needs two.

A person's vote counts only while they are active: deactivating them withdraws their votes on pending requests
(`withdraw_votes_of`), and `cast` never counts the vote of a deactivated or deleted approver, should one remain.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from service.approvals.models import ApprovalVote, RequestStatus
from service.approvals.records import emit, request_event
from service.approvals.repository import ApprovalRepository
from service.approvals.schemas import ApprovalEvent, Approver, Remember
from service.errors import Conflict
from service.users.repository import UserRepository

APPROVER_DEACTIVATED = "the approver was deactivated"
"""The reason a withdrawn vote's audit event carries (service/users/departures.py)."""


def cast(
    session: Session,
    request_id: int,
    approver: Approver,
    digest: str,
    remember: Remember | None,
    now: datetime,
) -> list[ApprovalVote]:
    """Record `approver`'s vote for `digest`; the votes that now count for it, this one last. An approver whose earlier
    vote was for other arguments votes again (that vote is moved, not added: one vote per person)."""
    repo = ApprovalRepository(session)
    votes = repo.votes(request_id)
    mine = next((v for v in votes if v.approver == approver.username), None)
    if mine is not None and mine.arguments_digest == digest:
        raise Conflict(f"you already approved R-{request_id} as it stands; it needs more approvers")
    vote = mine or ApprovalVote(request_id=request_id, approver=approver.username, channel=approver.channel)
    vote.channel = approver.channel
    vote.arguments_digest = digest
    vote.created_at = now
    vote.remember_scope = remember.scope if remember is not None else None
    vote.remember_seconds = round(remember.duration.total_seconds()) if remember is not None else None
    repo.add_vote(vote)
    counted = [v for v in votes if v.arguments_digest == digest and v is not vote] + [vote]
    departed = UserRepository(session).departed_among({v.approver for v in counted})
    return [v for v in counted if v.approver not in departed]


def withdraw_votes_of(session: Session, username: str, *, actor: str) -> list[ApprovalEvent]:
    """Withdraw the person's votes on requests still pending, each an audit event; the events to publish once the
    transaction has committed (the same a vote publishes, so every channel shows the vote gone)."""
    repo = ApprovalRepository(session)
    events: list[ApprovalEvent] = []
    for vote, request in repo.pending_votes_by(username):
        assert request.id is not None
        repo.remove_vote(vote)
        details = {"approver": username, "arguments_digest": vote.arguments_digest}
        request_event(session, request, actor, "request.vote_withdrawn", "pending", APPROVER_DEACTIVATED, details)
        events.append(ApprovalEvent("vote", request.id, RequestStatus.PENDING.value, {"withdrawn": username}))
    return emit(session, events)


def agreed_remember(counted: list[ApprovalVote]) -> Remember | None:
    """What every counted vote asked to remember, at its narrowest (the arguments rather than the whole tool, the
    shortest duration); None unless every one of them asked."""
    asked = [(v.remember_scope, v.remember_seconds) for v in counted]
    if not asked or any(scope is None or seconds is None for scope, seconds in asked):
        return None
    duration = timedelta(seconds=min(seconds or 0 for _, seconds in asked))
    if all(scope == "tool" for scope, _ in asked):
        return Remember("tool", duration)
    return Remember("arguments", duration)
