"""The OAuth authorization server's rules for clients, one-time codes, and access and refresh tokens with rotation
and family revocation (OAuth 2.1 §4.1, §4.3; docs/security.md). The consent a person gives is service/oauth/consent.py.

Tokens act as a grant. A token works only while its grant is live, checked on every lookup like a grant token, so
revoking a grant cuts off every token issued for it at once."""

from __future__ import annotations

from datetime import datetime

from mcp.shared.auth import OAuthClientInformationFull
from mcp.shared.auth import OAuthToken as IssuedTokens
from sqlmodel import Session

from service.audit.schemas import AuditRecord
from service.audit.service import record
from service.db.notify import CHANGES, announce
from service.errors import Conflict
from service.grants.repository import GrantRepository
from service.grants.schemas import AuthenticatedGrant
from service.oauth.models import (
    ACCESS,
    DYNAMIC,
    METADATA_DOCUMENT,
    REFRESH,
    OAuthAuthorization,
    OAuthClient,
    OAuthToken,
)
from service.oauth.redirect_uris import InvalidRedirectUri, redirect_uri_problem
from service.oauth.repository import OAuthRepository
from service.oauth.schemas import (
    CodeGrant,
    IssuedAccess,
    Lifetimes,
    OAuthAccess,
    RefreshGrant,
)
from service.policy.decision import GrantInfo
from service.security import TokenHasher, new_token, same_secret

ACCESS_TOKEN_KIND = "alko"  # noqa: S105 - a prefix, not a secret
"""Access tokens start with `alko_`, so the gateway tells them from grant tokens (`alk_`) without a lookup."""
_REFRESH_TOKEN_KIND = "alkr"  # noqa: S105 - a prefix, not a secret
CLIENT_SECRET_HMAC = "client_secret_hmac"  # noqa: S105 - a key's name
"""Where a dynamic client's secret is kept, as its HMAC, beside the metadata; the SDK's model drops the key, so a
client read back has no `client_secret` and only `matching_client_secret` can authenticate it."""


def is_access_token(token: str) -> bool:
    return token.startswith(ACCESS_TOKEN_KIND + "_")


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def announce_revocation(session: Session) -> None:
    """Tokens were revoked: every process drops its cached token lookups (service/caches.py)."""
    announce(session, CHANGES, {"what": "oauth"})


# Clients


def client_information(row: OAuthClient) -> OAuthClientInformationFull:
    return OAuthClientInformationFull.model_validate(row.client_metadata)


def find_client(session: Session, client_id: str) -> OAuthClientInformationFull | None:
    row = OAuthRepository(session).client(client_id)
    return client_information(row) if row is not None else None


def register_dynamic_client(
    session: Session, hasher: TokenHasher, client: OAuthClientInformationFull, *, actor: str
) -> None:
    """A client registered itself (RFC 7591): kept, and shown as unverified wherever a person is asked about it. Its
    redirect URIs pass the same rule as a metadata document's; its secret, if it has one, is kept only as an HMAC."""
    for uri in client.redirect_uris or []:
        if (why := redirect_uri_problem(str(uri))) is not None:
            raise InvalidRedirectUri(f"redirect URI {str(uri)[:100]!r} {why}")
    repo = OAuthRepository(session)
    if repo.client(client.client_id) is not None:
        raise Conflict("a client with this client_id is already registered")
    metadata = client.model_dump(mode="json", exclude_none=True, exclude={"client_secret"})
    if client.client_secret is not None:
        metadata[CLIENT_SECRET_HMAC] = hasher.hash(client.client_secret)
    repo.add(
        OAuthClient(
            client_id=client.client_id,
            client_metadata=metadata,
            registered_by=DYNAMIC,
            verified=False,
        )
    )
    record(
        session,
        AuditRecord(
            kind="admin",
            action="oauth.client_registered",
            actor=actor,
            details={"client_id": client.client_id, "client_name": client.client_name, "how": DYNAMIC},
        ),
    )


def matching_client_secret(session: Session, hasher: TokenHasher, client_id: str, presented: list[str]) -> str | None:
    """The one of the secrets a request carries whose HMAC is the client's stored one, if any."""
    row = OAuthRepository(session).client(client_id)
    stored = row.client_metadata.get(CLIENT_SECRET_HMAC) if row is not None else None
    if not isinstance(stored, str):
        return None
    return next((secret for secret in presented if same_secret(hasher.hash(secret), stored)), None)


def remember_metadata_client(session: Session, client: OAuthClientInformationFull) -> None:
    """A client whose metadata document was fetched from its client_id URL: stored (its rows hang off it) and
    refreshed with each fetch. A dynamic client can never claim a URL client_id: those are always fetched."""
    repo = OAuthRepository(session)
    row = repo.client(client.client_id)
    metadata = client.model_dump(mode="json", exclude_none=True)
    if row is None:
        repo.add(
            OAuthClient(
                client_id=client.client_id, client_metadata=metadata, registered_by=METADATA_DOCUMENT, verified=True
            )
        )
    elif row.client_metadata != metadata:
        row.client_metadata = metadata
        repo.add(row)


# Codes and tokens


def load_code(session: Session, hasher: TokenHasher, code: str, client_id: str, now: datetime) -> CodeGrant | None:
    """An unused, unexpired code of this client. A code presented again means it leaked: every token issued from it
    is revoked (OAuth 2.1 §4.1.3), and the answer is the same as for an unknown code. `now`: the app's clock
    (service/clock.py), as for every time decision in this module; the SDK's own expiry check reads the system's,
    so an expired code is refused here."""
    repo = OAuthRepository(session)
    found = repo.authorization_by_code(hasher.hash(code))
    if found is None or found[1].client_id != client_id:
        return None
    authorization, _client = found
    assert authorization.id is not None
    assert authorization.code_expires_at is not None
    if authorization.code_used_at is not None:
        _revoke_family(session, authorization.id, now, actor=f"client:{client_id}", why="authorization code reused")
        return None
    if authorization.code_expires_at <= now:
        return None
    return CodeGrant(
        authorization_id=authorization.id,
        client_id=client_id,
        code_challenge=authorization.code_challenge,
        redirect_uri=authorization.redirect_uri,
        redirect_uri_explicit=authorization.redirect_uri_explicit,
        resource=authorization.resource,
        scopes=list(authorization.scopes),
        expires_at=authorization.code_expires_at.timestamp(),
    )


def exchange_code(
    session: Session, hasher: TokenHasher, authorization_id: int, lifetimes: Lifetimes, now: datetime
) -> IssuedTokens:
    """Spend the code (checked by the token endpoint) and issue the first access and refresh token."""
    repo = OAuthRepository(session)
    authorization = session.get(OAuthAuthorization, authorization_id, with_for_update=True)
    if authorization is None or authorization.code_used_at is not None or authorization.grant_id is None:
        raise Conflict("authorization code already used")
    authorization.code_used_at = now
    repo.add(authorization)
    _require_live_grant(session, authorization.grant_id)
    return _issue(repo, hasher, authorization, lifetimes, now)


def load_refresh(
    session: Session, hasher: TokenHasher, token: str, client_id: str, now: datetime
) -> RefreshGrant | None:
    """A live refresh token of this client. A spent one presented again means it leaked: its whole family is revoked
    (OAuth 2.1 §4.3.1), and the answer is the same as for an unknown token."""
    found = OAuthRepository(session).token(hasher.hash(token), REFRESH)
    if found is None or found[1].client_id != client_id:
        return None
    row, _client = found
    assert row.id is not None
    if row.revoked_at is not None or row.expires_at <= now:
        return None
    if row.used_at is not None:
        _revoke_family(session, row.authorization_id, now, actor=f"client:{client_id}", why="refresh token reused")
        return None
    if not _grant_live(session, row.grant_id):
        return None
    return RefreshGrant(row.id, row.authorization_id, client_id, row.resource, list(row.scopes), _epoch(row.expires_at))


def exchange_refresh(
    session: Session, hasher: TokenHasher, token_id: int, scopes: list[str], lifetimes: Lifetimes, now: datetime
) -> IssuedTokens:
    """Rotate: the refresh token is spent, and a new access and refresh token of the same family are issued."""
    repo = OAuthRepository(session)
    row = session.get(OAuthToken, token_id, with_for_update=True)
    if row is None or row.used_at is not None or row.revoked_at is not None:
        raise Conflict("refresh token already used")
    row.used_at = now
    repo.add(row)
    authorization = session.get(OAuthAuthorization, row.authorization_id)
    assert authorization is not None
    _require_live_grant(session, row.grant_id)
    return _issue(repo, hasher, authorization, lifetimes, now, scopes=scopes)


def _issue(
    repo: OAuthRepository,
    hasher: TokenHasher,
    authorization: OAuthAuthorization,
    lifetimes: Lifetimes,
    now: datetime,
    *,
    scopes: list[str] | None = None,
) -> IssuedTokens:
    assert authorization.id is not None
    assert authorization.grant_id is not None
    access, refresh = new_token(ACCESS_TOKEN_KIND), new_token(_REFRESH_TOKEN_KIND)
    granted = list(authorization.scopes if scopes is None else scopes)
    for kind, value, ttl in ((ACCESS, access, lifetimes.access), (REFRESH, refresh, lifetimes.refresh)):
        repo.add(
            OAuthToken(
                token_hash=hasher.hash(value),
                kind=kind,
                authorization_id=authorization.id,
                client_row_id=authorization.client_row_id,
                grant_id=authorization.grant_id,
                resource=authorization.resource,
                scopes=granted,
                expires_at=now + ttl,
            )
        )
    return IssuedTokens(
        access_token=access,
        token_type="Bearer",  # noqa: S106 - the scheme's name
        expires_in=int(lifetimes.access.total_seconds()),
        refresh_token=refresh,
        scope=" ".join(granted) or None,
    )


def _grant_live(session: Session, grant_id: int) -> bool:
    grant = GrantRepository(session).by_id_with_owner(grant_id)
    return grant is not None and grant[0].is_active


def _require_live_grant(session: Session, grant_id: int) -> None:
    if not _grant_live(session, grant_id):
        raise Conflict("the grant this client acts as is revoked")


def authenticate_access(session: Session, hasher: TokenHasher, token: str, now: datetime) -> OAuthAccess | None:
    """The gateway's view of an access token: None unless it is known, unrevoked, unexpired and its grant is live."""
    found = OAuthRepository(session).access_with_grant(hasher.hash(token), ACCESS)
    if found is None:
        return None
    row, grant, owner = found
    if row.revoked_at is not None or row.expires_at <= now or not grant.is_active:
        return None
    info = GrantInfo(id=str(grant.id), name=grant.name, owner=owner, labels=grant.labels)
    return OAuthAccess(AuthenticatedGrant.of(grant, info), row.resource, row.expires_at.timestamp())


def load_access_for_revocation(session: Session, hasher: TokenHasher, token: str) -> IssuedAccess | None:
    found = OAuthRepository(session).token(hasher.hash(token), ACCESS)
    if found is None:
        return None
    row, client = found
    return IssuedAccess(row.authorization_id, client.client_id, row.resource, list(row.scopes), _epoch(row.expires_at))


def revoke(session: Session, authorization_id: int, now: datetime, *, client_id: str) -> None:
    """RFC 7009: revoking either token of a family revokes the family (access and refresh alike)."""
    _revoke_family(session, authorization_id, now, actor=f"client:{client_id}", why="revoked by the client")


def _revoke_family(session: Session, authorization_id: int, now: datetime, *, actor: str, why: str) -> None:
    if OAuthRepository(session).revoke_family(authorization_id, now) == 0:
        return
    announce_revocation(session)
    record(
        session,
        AuditRecord(
            kind="admin",
            action="oauth.tokens_revoked",
            actor=actor,
            details={"authorization": authorization_id, "why": why},
        ),
    )
