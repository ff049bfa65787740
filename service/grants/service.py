"""Creating, listing, revoking and authenticating grants."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from service.approvals.cancellation import OWNER_DEACTIVATED, Cancellation, cancel_grant_requests
from service.audit.schemas import AuditRecord
from service.audit.service import record
from service.db.notify import CHANGES, announce
from service.db.types import utcnow
from service.errors import AlreadyExists, Forbidden, InvalidInput, NotAuthenticated, NotFound
from service.grants.models import Grant
from service.grants.repository import GrantRepository
from service.grants.schemas import AuthenticatedGrant, GrantCreated, GrantPublic
from service.policy.decision import GrantInfo
from service.security import TokenHasher, new_token, token_prefix
from service.users.repository import UserRepository

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$")


def parse_labels(pairs: Sequence[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not _LABEL_KEY.match(key):
            raise InvalidInput(f"label {pair!r} must look like key=value")
        labels[key] = value
    return labels


def to_public(grant: Grant, owner: str | None) -> GrantPublic:
    assert grant.id is not None
    return GrantPublic(
        id=grant.id,
        name=grant.name,
        owner=owner,
        labels=grant.labels,
        upstreams=grant.upstreams,
        token_prefix=grant.token_prefix,
        created_at=grant.created_at,
        last_used_at=grant.last_used_at,
        revoked=grant.revoked_at is not None,
        suspended=grant.suspended_at is not None,
    )


def create_grant(
    session: Session,
    hasher: TokenHasher,
    *,
    name: str,
    actor: str,
    owner: str | None = None,
    labels: Mapping[str, str] | None = None,
    upstreams: Sequence[str] | None = None,
    known_upstreams: Sequence[str] | None = None,
    unassigned: bool = False,
) -> GrantCreated:
    """`unassigned`: the grant reaches no upstream until an admin assigns some (a grant created at OAuth consent)."""
    if not _NAME.match(name):
        raise InvalidInput("a grant name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    repo = GrantRepository(session)
    if repo.by_name(name) is not None:
        raise AlreadyExists(f"a grant named {name!r} already exists")
    owner_id = None
    suspended_at = None
    if owner is not None:
        user = UserRepository(session).by_username(owner)
        if user is None or user.deleted_at is not None:
            raise NotFound(f"no user named {owner!r} to own this grant")
        owner_id = user.id
        # A deactivated owner's grants are suspended (service/users/departures.py); a new one is no exception, and
        # reactivating the owner restores it with the others.
        suspended_at = utcnow() if user.disabled_at is not None else None
    _check_known(upstreams, known_upstreams)
    token = new_token("alk")
    try:
        with session.begin_nested():
            repo.add(
                Grant(
                    name=name,
                    owner_id=owner_id,
                    labels=dict(labels or {}),
                    upstreams=[] if unassigned else sorted(set(upstreams)) if upstreams else None,
                    token_hash=hasher.hash(token),
                    token_prefix=token_prefix(token),
                    suspended_at=suspended_at,
                )
            )
    except IntegrityError:
        raise AlreadyExists(f"a grant named {name!r} already exists") from None
    record(
        session,
        AuditRecord(
            kind="admin",
            action="grant.created",
            actor=actor,
            grant_name=name,
            details={
                "owner": owner,
                "labels": dict(labels or {}),
                "upstreams": list(upstreams or []),
                "suspended": suspended_at is not None,
            },
        ),
    )
    return GrantCreated(name=name, token=token)


def _check_known(upstreams: Sequence[str] | None, known_upstreams: Sequence[str] | None) -> None:
    if upstreams and known_upstreams is not None:
        unknown = sorted(set(upstreams) - set(known_upstreams))
        if unknown:
            raise InvalidInput(f"unknown upstream {unknown[0]!r}; configured: {', '.join(known_upstreams) or 'none'}")


def list_grants(session: Session, *, include_revoked: bool = False) -> list[GrantPublic]:
    return [to_public(g, owner) for g, owner in GrantRepository(session).list_with_owners(include_revoked)]


def revoke_grant(session: Session, name: str, *, actor: str) -> Cancellation:
    """Revoke the grant and, in the same transaction, cancel its calls that have not run (a call runs only for a
    live grant). Settle the returned cancellation once the transaction has committed."""
    grant = GrantRepository(session).by_name(name)
    if grant is None:
        raise NotFound(f"no grant named {name!r}")
    return _revoke(session, grant, actor)


def _revoke(session: Session, grant: Grant, actor: str) -> Cancellation:
    if grant.revoked_at is not None:
        return Cancellation()
    assert grant.id is not None
    name = grant.name
    grant.revoked_at = utcnow()
    session.add(grant)
    session.flush()  # the grant row is written (and, on PostgreSQL, locked) before its requests are read
    announce(session, CHANGES, {"what": "grants"})  # other replicas drop their cached grant lookups
    record(
        session,
        AuditRecord(kind="admin", action="grant.revoked", actor=actor, grant_id=grant.id, grant_name=name),
    )
    return cancel_grant_requests(session, grant.id, actor=actor)


def suspend_owned(session: Session, owner_id: int, *, actor: str) -> tuple[list[str], Cancellation]:
    """Suspend the live grants of a deactivated owner and cancel their calls that have not run, as a revocation
    does (service/approvals/cancellation.py), but with the owner's deactivation as the reason. Returns the grants'
    names and the cancellation to settle after the commit."""
    outcome = Cancellation()
    names: list[str] = []
    now = utcnow()
    for grant in GrantRepository(session).owned_by(owner_id):
        if grant.suspended_at is not None:
            continue
        assert grant.id is not None
        grant.suspended_at = now
        session.add(grant)
        session.flush()  # written (and locked) before its requests are read, as for a revocation
        names.append(grant.name)
        record(
            session,
            AuditRecord(kind="admin", action="grant.suspended", actor=actor, grant_id=grant.id, grant_name=grant.name),
        )
        cancelled = cancel_grant_requests(session, grant.id, actor=actor, reason=OWNER_DEACTIVATED, now=now)
        outcome.events += cancelled.events
        outcome.cancelled += cancelled.cancelled
    if names:
        announce(session, CHANGES, {"what": "grants"})  # every replica's cached lookups refuse them at once
    return names, outcome


def restore_owned(session: Session, owner_id: int, *, actor: str) -> list[str]:
    """Lift the suspension of a reactivated owner's grants (revoked ones stay revoked); their names."""
    names: list[str] = []
    for grant in GrantRepository(session).owned_by(owner_id):
        if grant.suspended_at is None:
            continue
        grant.suspended_at = None
        session.add(grant)
        names.append(grant.name)
        record(
            session,
            AuditRecord(kind="admin", action="grant.restored", actor=actor, grant_id=grant.id, grant_name=grant.name),
        )
    if names:
        announce(session, CHANGES, {"what": "grants"})
    return names


def revoke_owned(session: Session, owner_id: int, *, actor: str) -> tuple[list[str], Cancellation]:
    """Revoke every grant the owner still has (a deleted owner's agents never come back); the grants keep their
    owner, so the grants page and the audit log still say whose they were."""
    outcome = Cancellation()
    names: list[str] = []
    for grant in GrantRepository(session).owned_by(owner_id):
        names.append(grant.name)
        cancelled = _revoke(session, grant, actor)
        outcome.events += cancelled.events
        outcome.cancelled += cancelled.cancelled
    return names, outcome


def set_labels(session: Session, name: str, labels: Mapping[str, str], *, actor: str) -> None:
    """Labels feed the policy (`grant.labels` in conditions), so a change is audited with what it replaced and
    announced, like a revoke: every replica's cached lookups of this grant must see it at once."""
    grant = _live_by_name(session, name, "its labels no longer matter")
    before, after = dict(grant.labels or {}), dict(labels)
    if before != after:
        grant.labels = after
        _changed(session, grant, "grant.labels_changed", actor, before, after)


def set_upstreams(
    session: Session,
    name: str,
    upstreams: Sequence[str] | None,
    *,
    actor: str,
    known_upstreams: Sequence[str] | None = None,
) -> None:
    """Which upstreams the grant reaches: None every one, a list only those, an empty list none (as a grant made at
    OAuth consent starts). Audited with what it replaced, and announced like a revoke so every replica's cached
    lookups see it at once."""
    grant = _live_by_name(session, name, "it reaches nothing")
    _check_known(upstreams, known_upstreams)
    before, after = grant.upstreams, None if upstreams is None else sorted(set(upstreams))
    if before != after:
        grant.upstreams = after
        _changed(session, grant, "grant.upstreams_changed", actor, before, after)


def _live_by_name(session: Session, name: str, why_revoked_matters: str) -> Grant:
    grant = GrantRepository(session).by_name(name)
    if grant is None:
        raise NotFound(f"no grant named {name!r}")
    if grant.revoked_at is not None:
        raise InvalidInput(f"grant {name!r} is revoked: {why_revoked_matters}")
    return grant


def _changed(session: Session, grant: Grant, action: str, actor: str, before: object, after: object) -> None:
    """A change the policy or the gateway reads: audited with what it replaced, and announced like a revoke, so
    every replica's cached lookups of this grant see it at once."""
    session.add(grant)
    announce(session, CHANGES, {"what": "grants"})
    record(
        session,
        AuditRecord(
            kind="admin",
            action=action,
            actor=actor,
            grant_id=grant.id,
            grant_name=grant.name,
            details={"before": before, "after": after},
        ),
    )


def grant_info(session: Session, name: str) -> GrantInfo:
    """The policy's view of a grant, looked up by name (for simulate and the rules page)."""
    found = GrantRepository(session).by_name_with_owner(name)
    if found is None or not found[0].is_active:
        raise NotFound(f"no active grant named {name!r}")
    grant, owner = found
    return GrantInfo(id=str(grant.id), name=grant.name, owner=owner, labels=grant.labels)


def authenticate(session: Session, hasher: TokenHasher, token: str) -> tuple[Grant, GrantInfo]:
    found = GrantRepository(session).by_token_hash(hasher.hash(token))
    if found is None or found[0].revoked_at is not None:
        raise NotAuthenticated("unknown or revoked grant token")
    grant, owner = found
    if grant.suspended_at is not None:
        # The token is genuine, so say why it is refused: the agent's operator learns whom to ask.
        raise Forbidden(f"grant {grant.name!r} is suspended: its owner {owner} is deactivated")
    return grant, GrantInfo(id=str(grant.id), name=grant.name, owner=owner, labels=grant.labels)


def hold_live(session: Session, grant_id: int) -> bool:
    """Whether the grant is live, kept so until this transaction ends: a request opened in it cannot slip past a
    revocation (which either waits for it and then cancels the request, or went first and is seen here)."""
    return GrantRepository(session).is_live_locked(grant_id)


def authenticated_by_id(session: Session, grant_id: int) -> AuthenticatedGrant | None:
    """The gateway's view of an active grant, by id (for work done on an agent's behalf, such as approved tasks)."""
    found = GrantRepository(session).by_id_with_owner(grant_id)
    if found is None or not found[0].is_active:
        return None
    grant, owner = found
    return AuthenticatedGrant.of(grant, GrantInfo(id=str(grant_id), name=grant.name, owner=owner, labels=grant.labels))
