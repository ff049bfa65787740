"""The consent a person gives an OAuth client: a pending authorization request, the page's view of it, and the
answer (a one-time code for the grant the person picked, or `access_denied`); and consents listed and taken back."""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import urlsplit

from mcp.server.auth.provider import construct_redirect_uri
from sqlmodel import Session

from service.audit.schemas import AuditRecord
from service.audit.service import record
from service.errors import Forbidden, InvalidInput, NotFound
from service.grants import service as grants
from service.grants.repository import GrantRepository
from service.oauth.models import OAuthAuthorization, OAuthClient, OAuthConsent
from service.oauth.redirect_uris import is_loopback, shown_host
from service.oauth.repository import OAuthRepository
from service.oauth.schemas import ConsentPublic, ConsentView, Lifetimes
from service.oauth.service import announce_revocation, client_information
from service.security import TokenHasher, new_token
from service.users.models import Role, User

_REQUEST_KIND = "alkq"
_CODE_KIND = "alkc"
MAX_GRANT_NAME_LENGTH = 64
_ROLE_RANK = {Role.VIEWER: 0, Role.APPROVER: 1, Role.ADMIN: 2}
_CSP_SOURCE = re.compile(r"^[a-z][a-z0-9+.-]*:(//[A-Za-z0-9.-]+(:[0-9]{1,5})?|//\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?)?$")
UNKNOWN_REQUEST = "this sign-in request is unknown, already answered or expired; start again from the app"


def begin_authorization(
    session: Session,
    hasher: TokenHasher,
    *,
    client_id: str,
    redirect_uri: str,
    redirect_uri_explicit: bool,
    code_challenge: str,
    state: str | None,
    scopes: list[str],
    resource: str,
    lifetimes: Lifetimes,
    now: datetime,
) -> str:
    """Keep an authorization request until a person answers it; the key names it on the consent page. `now`: the
    app's clock (service/clock.py), as for every time decision in this module."""
    repo = OAuthRepository(session)
    client = repo.client(client_id)
    if client is None or client.id is None:
        raise NotFound(f"no client {client_id!r}")
    key = new_token(_REQUEST_KIND)
    repo.add(
        OAuthAuthorization(
            request_hash=hasher.hash(key),
            client_row_id=client.id,
            redirect_uri=redirect_uri,
            redirect_uri_explicit=redirect_uri_explicit,
            code_challenge=code_challenge,
            state=state,
            scopes=scopes,
            resource=resource,
            expires_at=now + lifetimes.consent,
        )
    )
    return key


def may_create_grant(user: User, creator_role: Role) -> bool:
    return _ROLE_RANK[user.role] >= _ROLE_RANK[creator_role]


def consent_view(
    session: Session, hasher: TokenHasher, key: str, user: User, creator_role: Role, *, now: datetime
) -> ConsentView:
    repo = OAuthRepository(session)
    authorization, client = _pending(repo, hasher, key, now)
    assert user.id is not None
    owned = repo.owned_live_grants(user.id)
    consent = repo.consent(user.id, authorization.client_row_id)
    chosen = next((g.name for g in owned if consent is not None and g.id == consent.grant_id), None)
    info = client_information(client)
    redirect_uri = authorization.redirect_uri
    # A metadata document vouches only for what its host publishes: the page names that host before the name the
    # document chose, and says so when the answer goes to another host (a native app's loopback is its own machine).
    client_host = shown_host(client.client_id) if client.verified else None
    elsewhere = client.verified and not is_loopback(redirect_uri) and _host(redirect_uri) != _host(client.client_id)
    return ConsentView(
        client_name=info.client_name or client.client_id,
        client_id=client.client_id,
        client_host=client_host,
        redirect_host=shown_host(redirect_uri),
        redirect_elsewhere=elsewhere,
        redirect_origin=csp_source(redirect_uri),
        verified=client.verified,
        resource=authorization.resource,
        grants=[g.name for g in owned],
        chosen=chosen,
        may_create_grant=may_create_grant(user, creator_role),
    )


def _host(url: str) -> str | None:
    return urlsplit(url).hostname


def csp_source(url: str) -> str:
    """A CSP source for a redirect URI: its origin, or its scheme alone for an app's own scheme (cursor:). Empty
    when the URI would not read as exactly one source: a client chose it, and it goes into a header."""
    parts = urlsplit(url)
    source = f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") else f"{parts.scheme}:"
    return source if _CSP_SOURCE.match(source) else ""


def _pending(
    repo: OAuthRepository, hasher: TokenHasher, key: str, now: datetime
) -> tuple[OAuthAuthorization, OAuthClient]:
    authorization = repo.authorization_by_request(hasher.hash(key))
    if authorization is None or authorization.decided_at is not None or authorization.expires_at <= now:
        raise NotFound(UNKNOWN_REQUEST)
    client = repo.client_by_row(authorization.client_row_id)
    if client is None:
        raise NotFound(UNKNOWN_REQUEST)
    return authorization, client


def deny(session: Session, hasher: TokenHasher, key: str, user: User, *, issuer: str, now: datetime) -> str:
    """The person said no: the client learns `access_denied` (RFC 6749 §4.1.2.1) and nothing else."""
    authorization, client = _pending(OAuthRepository(session), hasher, key, now)
    authorization.decided_at = now
    authorization.user_id = user.id
    OAuthRepository(session).add(authorization)
    record(
        session,
        AuditRecord(
            kind="admin", action="oauth.denied", actor=f"user:{user.username}", details={"client_id": client.client_id}
        ),
    )
    return construct_redirect_uri(
        authorization.redirect_uri, error="access_denied", state=authorization.state, iss=issuer
    )


def approve(
    session: Session,
    hasher: TokenHasher,
    key: str,
    user: User,
    *,
    grant_name: str | None,
    new_grant_name: str | None,
    creator_role: Role,
    issuer: str,
    lifetimes: Lifetimes,
    now: datetime,
) -> str:
    """The person lets the client act as one of their grants (or, with the creator role, a new grant that reaches
    no upstream until an admin assigns one). The consenting person owns the grant, so every self-approval and
    quorum rule applies to the client's calls unchanged. Answers the redirect carrying the one-time code."""
    repo = OAuthRepository(session)
    authorization, client = _pending(repo, hasher, key, now)
    assert user.id is not None
    assert authorization.id is not None
    grant_id = _chosen_grant(session, hasher, user, grant_name, new_grant_name, creator_role)
    code = new_token(_CODE_KIND)
    authorization.user_id = user.id
    authorization.grant_id = grant_id
    authorization.decided_at = now
    authorization.code_hash = hasher.hash(code)
    authorization.code_expires_at = now + lifetimes.code
    repo.add(authorization)
    consent = repo.consent(user.id, authorization.client_row_id)
    replaced_tokens = 0
    if consent is None:
        repo.add(OAuthConsent(user_id=user.id, client_row_id=authorization.client_row_id, grant_id=grant_id))
    elif consent.grant_id != grant_id:
        # One consent per person and app: what the app holds for the grant it acted as until now goes with it, so
        # no token outlives the consent the Grants page lists (docs/security.md#oauth-for-agents).
        replaced_tokens = _withdraw(session, consent.client_row_id, consent.grant_id, now)
        consent.grant_id = grant_id
        consent.created_at = now
        repo.add(consent)
    replaced = {"tokens_revoked": replaced_tokens} if replaced_tokens else {}
    record(
        session,
        AuditRecord(
            kind="admin",
            action="oauth.consented",
            actor=f"user:{user.username}",
            grant_id=grant_id,
            details={
                "client_id": client.client_id,
                "resource": authorization.resource,
                "verified": client.verified,
                **replaced,
            },
        ),
    )
    return construct_redirect_uri(authorization.redirect_uri, code=code, state=authorization.state, iss=issuer)


def _chosen_grant(
    session: Session,
    hasher: TokenHasher,
    user: User,
    grant_name: str | None,
    new_grant_name: str | None,
    creator_role: Role,
) -> int:
    if new_grant_name:
        if not may_create_grant(user, creator_role):
            raise Forbidden(f"creating a grant here needs the {creator_role.value} role; pick one of your grants")
        grants.create_grant(
            session, hasher, name=new_grant_name, actor=f"user:{user.username}", owner=user.username, unassigned=True
        )
        grant_name = new_grant_name
    if not grant_name:
        raise InvalidInput("pick the grant this app will act as")
    if len(grant_name) > MAX_GRANT_NAME_LENGTH or "\x00" in grant_name:
        raise Forbidden("you own no active grant by that name")
    grant = GrantRepository(session).by_name(grant_name)
    if grant is None or grant.id is None or grant.owner_id != user.id or not grant.is_active:
        raise Forbidden(f"you own no active grant named {grant_name!r}")
    return grant.id


def list_consents(session: Session, viewer: User, now: datetime) -> list[ConsentPublic]:
    """A person's own consents; an admin's view, everyone's (as only an admin may revoke anyone's)."""
    repo = OAuthRepository(session)
    live = repo.live_tokens(now)
    listed = []
    for consent, client, grant, username in repo.consents_listed(None if viewer.role is Role.ADMIN else viewer.id):
        assert consent.id is not None
        assert client.id is not None
        assert grant.id is not None
        listed.append(
            ConsentPublic(
                id=consent.id,
                username=username,
                client_id=client.client_id,
                client_name=client_information(client).client_name or client.client_id,
                verified=client.verified,
                grant=grant.name,
                created_at=consent.created_at,
                live_tokens=live.get((client.id, grant.id), 0),
            )
        )
    return listed


def revoke_consent(session: Session, consent_id: int, user: User, now: datetime) -> str:
    """The person who consented, or an admin, takes it back: every token the client holds for that grant stops
    working, a code approved but not yet exchanged is spent, and the client must ask again. Answers the client's
    name."""
    repo = OAuthRepository(session)
    consent = repo.consent_by_id(consent_id)
    if consent is None:
        raise NotFound(f"no consent #{consent_id}")
    if consent.user_id != user.id and user.role is not Role.ADMIN:
        raise Forbidden("only the person who consented, or an admin, may revoke a consent")
    client = repo.client_by_row(consent.client_row_id)
    assert client is not None
    revoked = _withdraw(session, consent.client_row_id, consent.grant_id, now)
    repo.delete(consent)
    record(
        session,
        AuditRecord(
            kind="admin",
            action="oauth.consent_revoked",
            actor=f"user:{user.username}",
            grant_id=consent.grant_id,
            details={"client_id": client.client_id, "tokens_revoked": revoked},
        ),
    )
    return client_information(client).client_name or client.client_id


def _withdraw(session: Session, client_row_id: int, grant_id: int, now: datetime) -> int:
    """The client may no longer act as the grant: its unexchanged codes are spent first, so a code being exchanged
    right now either is refused or its tokens are among those revoked next. Answers how many tokens were revoked."""
    repo = OAuthRepository(session)
    repo.spend_unused_codes(client_row_id, grant_id, now)
    revoked = repo.revoke_client_grant(client_row_id, grant_id, now)
    if revoked:
        announce_revocation(session)
    return revoked
