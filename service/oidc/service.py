"""Who a verified ID token signs in as: the linked user, or at a first sign-in a user matched by a verified e-mail or
a new one, with the role their groups give (docs/sign-in.md, "Linking")."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlmodel import Session

from service.audit.schemas import AuditRecord
from service.audit.service import record
from service.db.types import utcnow
from service.errors import Forbidden
from service.oidc.config import OIDCProviderSettings
from service.oidc.models import OIDCLink
from service.oidc.repository import OIDCLinkRepository
from service.oidc.roles import role_from_groups
from service.security import TokenHasher
from service.users import service as users
from service.users.models import Role, User
from service.users.repository import UserRepository

_NOT_IN_USERNAMES = re.compile(r"[^A-Za-z0-9._@-]+")


@dataclass(frozen=True)
class Identity:
    """What a verified ID token says about the person."""

    subject: str
    email: str | None = None
    email_verified: bool = False
    groups: tuple[str, ...] = ()
    preferred_username: str | None = None
    hosted_domain: str | None = None
    """Google's `hd` claim: the Workspace domain of the account (absent for a personal Google account)."""


def sign_in(
    session: Session, hasher: TokenHasher, name: str, provider: OIDCProviderSettings, identity: Identity
) -> User:
    """The user this person signs in as, their role brought in line with their groups; Forbidden when refused."""
    if provider.allowed_domains and _domain_of(identity) not in provider.allowed_domains:
        raise Forbidden(f"{name} signs in only accounts of {', '.join(provider.allowed_domains)} here; ask an admin")
    links = OIDCLinkRepository(session)
    role = role_from_groups(identity.groups, provider.roles, provider.default_role)
    groups = sorted(set(identity.groups))
    link = links.by_subject(provider.issuer, identity.subject)
    if link is None:
        if role is None:
            raise Forbidden(f"none of your groups at {name} gives a role in Airlock; ask an admin")
        user = _first_sign_in(session, hasher, name, provider, identity, role)
        assert user.id is not None
        link = links.add(OIDCLink(user_id=user.id, issuer=provider.issuer, subject=identity.subject, groups=groups))
    else:
        found = UserRepository(session).by_id(link.user_id)
        if found is None or found.deleted_at is not None:
            raise Forbidden("the Airlock user linked to this sign-in was deleted")
        user = found
    if user.disabled_at is not None:
        raise Forbidden("this account is deactivated; ask an admin to reactivate it")
    if role is None:
        raise Forbidden(f"none of your groups at {name} gives a role in Airlock any more; ask an admin")
    if user.role is not role:
        users.set_role(session, user.username, role, actor=f"oidc:{name}")  # which ends their other sessions
    elif link.groups != groups:
        # New groups are a new level of trust even when the role stays: the sessions begun under the old ones end.
        users.end_sessions_of(session, user)
    link.groups = groups
    link.last_sign_in_at = utcnow()
    session.add(link)
    session.flush()
    session.refresh(user)
    return user


def _first_sign_in(
    session: Session, hasher: TokenHasher, name: str, provider: OIDCProviderSettings, identity: Identity, role: Role
) -> User:
    links = OIDCLinkRepository(session)
    matches = list(links.users_with_email(identity.email)) if identity.email else []
    if matches:
        # An e-mail is a claim the provider makes, not a proof: it links only when the provider verified it, the
        # config trusts this provider for it, and the user is not already someone's at any provider.
        if not (provider.match_verified_email and identity.email_verified):
            raise Forbidden(
                f"an Airlock user already has the e-mail {identity.email}, and {name} may not link to it "
                "(unverified e-mail, or match_verified_email is off); ask an admin"
            )
        if len(matches) > 1:
            raise Forbidden(f"several Airlock users have the e-mail {identity.email}; ask an admin")
        user = matches[0]
        assert user.id is not None
        if links.links_of(user.id):
            raise Forbidden(f"the Airlock user with the e-mail {identity.email} is already linked to another sign-in")
        _linked(session, name, provider, identity, user, how="email")
        return user
    if not provider.create_users:
        raise Forbidden(
            f"there is no Airlock user for you at {name}, and {name} does not create new ones; ask an admin to add you"
        )
    username = _free_username(session, name, identity)
    # The password is random and never shown: this person signs in through the provider only.
    users.create_user(
        session,
        hasher,
        username=username,
        role=role,
        actor=f"oidc:{name}",
        email=identity.email if identity.email_verified else None,
    )
    user = users.get_user(session, username)
    _linked(session, name, provider, identity, user, how="created")
    return user


def _domain_of(identity: Identity) -> str | None:
    """The `hd` claim when present, else the verified e-mail's domain; ASCII only, as `allowed_domains` is."""
    if identity.hosted_domain is not None:
        domain: str | None = identity.hosted_domain
    elif identity.email is not None and identity.email_verified and "@" in identity.email:
        domain = identity.email.rsplit("@", 1)[1]
    else:
        domain = None
    return domain.lower() if domain is not None and domain.isascii() else None


def _free_username(session: Session, name: str, identity: Identity) -> str:
    """`<provider>-<name they chose at the provider>`: the prefix keeps a person from taking, before it exists, a
    name that a policy lists among its approvers (docs/sign-in.md, "Linking")."""
    wanted = identity.preferred_username or (identity.email or "").split("@")[0] or identity.subject
    chosen = _NOT_IN_USERNAMES.sub("-", wanted).strip("-._@")[: 55 - len(name)] or "user"
    base = f"{name}-{chosen}"
    repo = UserRepository(session)
    candidate, number = base, 1
    while repo.by_username(candidate) is not None:  # deleted users' names included: they stay in the audit log
        number += 1
        candidate = f"{base}-{number}"
    return candidate


def _linked(
    session: Session, name: str, provider: OIDCProviderSettings, identity: Identity, user: User, *, how: str
) -> None:
    details = {"username": user.username, "provider": name, "issuer": provider.issuer, "subject": identity.subject}
    details["how"] = how
    record(session, AuditRecord(kind="admin", action="user.oidc_linked", actor=f"oidc:{name}", details=dict(details)))
