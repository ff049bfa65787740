"""People come and go: deactivating, reactivating and deleting a user, each in the caller's one transaction.

Deactivation cuts the person off on every channel at once. Their web sessions end (the session generation, as a
sign-out does), their API tokens are revoked, the standing approvals they made end, their votes on requests still
pending are withdrawn (a quorum counts only people who are still here), and the grants they own are suspended: an
agent of theirs is refused saying why, and its calls that have not run are cancelled as a revocation cancels them.
Sign-in, the REST API and Slack all refuse a deactivated user. Reactivation lifts the suspension of their grants, and
gives back none of the sessions or tokens (nor the withdrawn votes).

Deletion deactivates first, then revokes their grants and strips the row of every credential. The row stays, as a
tombstone: the audit log names people by their username (never by a key that could cascade), and a deleted owner's
grants keep `owner_id` pointing at it, so they still say whose they were. The foreign key is RESTRICT, so no path
can leave a grant with a NULL owner.

Other packages end what they hold of a person by adding a listener to `ON_DEACTIVATED` (for example OAuth tokens and
consents): it runs inside the deactivating transaction, so what it ends is ended together with the rest, or not at
all. This package imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlmodel import Session

from service.approvals.cancellation import Cancellation
from service.approvals.events import EventBus
from service.approvals.schemas import ApprovalEvent
from service.approvals.standing import revoke_standing_by
from service.approvals.votes import withdraw_votes_of
from service.audit.schemas import AuditRecord
from service.audit.service import record
from service.db.types import utcnow
from service.grants import service as grants
from service.policy import CounterStore
from service.users.models import User
from service.users.repository import UserRepository
from service.users.service import end_sessions_of, get_user, refuse_to_lose_an_admin

DeactivationListener = Callable[[Session, User, str], None]
"""(session, user, actor): ends what its package holds of the person, in the deactivating transaction."""

ON_DEACTIVATED: list[DeactivationListener] = []
"""Listeners run by every deactivation (and so by every deletion), after Airlock's own steps."""

UNUSABLE_PASSWORD_HASH = "!deleted"  # noqa: S105 (not a secret: a value no password matches)
"""Matches no password: verify_password refuses anything that is not an argon2 hash."""


@dataclass
class Departure:
    """What a deactivation or deletion changed. Settle it once the transaction has committed."""

    username: str
    grants: list[str] = field(default_factory=list)
    """The grants suspended (a deactivation) or revoked (a deletion)."""
    tokens_revoked: int = 0
    standing_ended: int = 0
    votes_withdrawn: list[ApprovalEvent] = field(default_factory=list)
    """One event per pending request the person's vote was withdrawn from."""
    cancellation: Cancellation = field(default_factory=Cancellation)

    def settle(self, counters: CounterStore | None, bus: EventBus | None = None) -> None:
        self.cancellation.settle(counters, bus)
        if bus is not None:
            bus.publish(self.votes_withdrawn)


def deactivate_user(session: Session, username: str, *, actor: str) -> Departure:
    """Cut the person off everywhere (see the module's docstring); deactivating twice changes nothing."""
    user = get_user(session, username)
    refuse_to_lose_an_admin(session, user, actor, "deactivate")
    if user.disabled_at is not None:
        return Departure(username)
    return _deactivate(session, user, actor)


def reactivate_user(session: Session, username: str, *, actor: str) -> list[str]:
    """Let the person sign in again and lift their grants' suspension; the names of the grants restored. Their old
    sessions and API tokens stay ended: they sign in afresh, and an admin issues new tokens."""
    user = get_user(session, username)
    if user.disabled_at is None:
        return []
    assert user.id is not None
    user.disabled_at = None
    session.add(user)
    restored = grants.restore_owned(session, user.id, actor=actor)
    record(
        session,
        AuditRecord(
            kind="admin",
            action="user.reactivated",
            actor=actor,
            details={"username": username, "grants_restored": restored},
        ),
    )
    return restored


def delete_user(session: Session, username: str, *, actor: str) -> Departure:
    """Deactivate the person (if they are not already), revoke their grants, and leave a tombstone with their name
    and no credential (see the module's docstring)."""
    user = get_user(session, username)
    refuse_to_lose_an_admin(session, user, actor, "delete")
    departure = _deactivate(session, user, actor) if user.disabled_at is None else Departure(username)
    assert user.id is not None
    revoked, cancellation = grants.revoke_owned(session, user.id, actor=actor)
    departure.grants = revoked  # every grant they still had, suspended just now or before
    departure.cancellation.events += cancellation.events
    departure.cancellation.cancelled += cancellation.cancelled
    user.deleted_at = utcnow()
    user.password_hash = UNUSABLE_PASSWORD_HASH
    user.slack_user_id = None  # the Slack account may be linked to someone else now
    user.email = None
    session.add(user)
    details: dict[str, object] = {"username": username, "grants_revoked": revoked}
    record(session, AuditRecord(kind="admin", action="user.deleted", actor=actor, details=details))
    return departure


def _deactivate(session: Session, user: User, actor: str) -> Departure:
    assert user.id is not None
    now = utcnow()
    repo = UserRepository(session)
    user.disabled_at = now
    session.add(user)
    session.flush()
    end_sessions_of(session, user)
    departure = Departure(user.username)
    departure.tokens_revoked = repo.revoke_tokens(user.id, now)
    departure.standing_ended = revoke_standing_by(session, user.username, actor=actor, now=now)
    departure.votes_withdrawn = withdraw_votes_of(session, user.username, actor=actor)
    departure.grants, departure.cancellation = grants.suspend_owned(session, user.id, actor=actor)
    for listener in ON_DEACTIVATED:
        listener(session, user, actor)
    record(
        session,
        AuditRecord(
            kind="admin",
            action="user.deactivated",
            actor=actor,
            details={
                "username": user.username,
                "grants_suspended": departure.grants,
                "requests_cancelled": [r.id for r in departure.cancellation.cancelled],
                "api_tokens_revoked": departure.tokens_revoked,
                "standing_approvals_ended": departure.standing_ended,
                "votes_withdrawn": [e.request_id for e in departure.votes_withdrawn],
            },
        ),
    )
    return departure
