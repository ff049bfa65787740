"""Creating, listing, revoking and authenticating grants."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from service.approvals.cancellation import Cancellation, cancel_grant_requests
from service.audit.schemas import AuditRecord
from service.audit.service import record
from service.db.notify import CHANGES, announce
from service.db.types import utcnow
from service.errors import AlreadyExists, InvalidInput, NotAuthenticated, NotFound
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
    if owner is not None:
        user = UserRepository(session).by_username(owner)
        if user is None:
            raise NotFound(f"no user named {owner!r} to own this grant")
        owner_id = user.id
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
            details={"owner": owner, "labels": dict(labels or {}), "upstreams": list(upstreams or [])},
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
    if grant.revoked_at is not None:
        return Cancellation()
    assert grant.id is not None
    grant.revoked_at = utcnow()
    session.add(grant)
    session.flush()  # the grant row is written (and, on PostgreSQL, locked) before its requests are read
    announce(session, CHANGES, {"what": "grants"})  # other replicas drop their cached grant lookups
    record(
        session,
        AuditRecord(kind="admin", action="grant.revoked", actor=actor, grant_id=grant.id, grant_name=name),
    )
    return cancel_grant_requests(session, grant.id, actor=actor)


def set_labels(session: Session, name: str, labels: Mapping[str, str], *, actor: str) -> None:
    """Labels feed the policy (`grant.labels` in conditions), so a change is audited with what it replaced and
    announced, like a revoke: every replica's cached lookups of this grant must see it at once."""
    grant = GrantRepository(session).by_name(name)
    if grant is None:
        raise NotFound(f"no grant named {name!r}")
    if grant.revoked_at is not None:
        raise InvalidInput(f"grant {name!r} is revoked: its labels no longer matter")
    before, after = dict(grant.labels or {}), dict(labels)
    if before == after:
        return
    grant.labels = after
    session.add(grant)
    announce(session, CHANGES, {"what": "grants"})
    record(
        session,
        AuditRecord(
            kind="admin",
            action="grant.labels_changed",
            actor=actor,
            grant_id=grant.id,
            grant_name=name,
            details={"before": before, "after": after},
        ),
    )


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
    grant = GrantRepository(session).by_name(name)
    if grant is None:
        raise NotFound(f"no grant named {name!r}")
    if grant.revoked_at is not None:
        raise InvalidInput(f"grant {name!r} is revoked: it reaches nothing")
    _check_known(upstreams, known_upstreams)
    before, after = grant.upstreams, None if upstreams is None else sorted(set(upstreams))
    if before == after:
        return
    grant.upstreams = after
    session.add(grant)
    announce(session, CHANGES, {"what": "grants"})
    record(
        session,
        AuditRecord(
            kind="admin",
            action="grant.upstreams_changed",
            actor=actor,
            grant_id=grant.id,
            grant_name=name,
            details={"before": before, "after": after},
        ),
    )


def grant_info(session: Session, name: str) -> GrantInfo:
    """The policy's view of a grant, looked up by name (for simulate and the rules page)."""
    found = GrantRepository(session).by_name_with_owner(name)
    if found is None or found[0].revoked_at is not None:
        raise NotFound(f"no active grant named {name!r}")
    grant, owner = found
    return GrantInfo(id=str(grant.id), name=grant.name, owner=owner, labels=grant.labels)


def authenticate(session: Session, hasher: TokenHasher, token: str) -> tuple[Grant, GrantInfo]:
    found = GrantRepository(session).by_token_hash(hasher.hash(token))
    if found is None or found[0].revoked_at is not None:
        raise NotAuthenticated("unknown or revoked grant token")
    grant, owner = found
    return grant, GrantInfo(id=str(grant.id), name=grant.name, owner=owner, labels=grant.labels)


def hold_live(session: Session, grant_id: int) -> bool:
    """Whether the grant is live, kept so until this transaction ends: a request opened in it cannot slip past a
    revocation (which either waits for it and then cancels the request, or went first and is seen here)."""
    return GrantRepository(session).is_live_locked(grant_id)


def authenticated_by_id(session: Session, grant_id: int) -> AuthenticatedGrant | None:
    """The gateway's view of an active grant, by id (for work done on an agent's behalf, such as approved tasks)."""
    found = GrantRepository(session).by_id_with_owner(grant_id)
    if found is None or found[0].revoked_at is not None:
        return None
    grant, owner = found
    return AuthenticatedGrant.of(grant, GrantInfo(id=str(grant_id), name=grant.name, owner=owner, labels=grant.labels))
