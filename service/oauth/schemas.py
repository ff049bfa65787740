"""What the OAuth service hands its callers: plain values, no rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from service.config import OAuthConfig
from service.grants.schemas import AuthenticatedGrant


@dataclass(frozen=True)
class Lifetimes:
    access: timedelta
    refresh: timedelta
    code: timedelta
    consent: timedelta

    @classmethod
    def of(cls, config: OAuthConfig) -> Lifetimes:
        return cls(config.access_token_ttl, config.refresh_token_ttl, config.code_ttl, config.consent_ttl)


@dataclass(frozen=True, slots=True)
class OAuthAccess:
    """A live access token: the grant it acts as, the one resource it is for, and when it stops working."""

    grant: AuthenticatedGrant
    resource: str
    expires_at: float
    """Seconds since the epoch."""


@dataclass(frozen=True)
class CodeGrant:
    """An unused authorization code, as the token endpoint checks it (PKCE, redirect URI, expiry)."""

    authorization_id: int
    client_id: str
    code_challenge: str
    redirect_uri: str
    redirect_uri_explicit: bool
    resource: str
    scopes: list[str]
    expires_at: float


@dataclass(frozen=True)
class RefreshGrant:
    token_id: int
    authorization_id: int
    client_id: str
    resource: str
    scopes: list[str]
    expires_at: int


@dataclass(frozen=True)
class IssuedAccess:
    """An access token looked up for revocation."""

    authorization_id: int
    client_id: str
    resource: str
    scopes: list[str]
    expires_at: int


@dataclass(frozen=True)
class ConsentView:
    """What the consent page shows: who asks, where the answer goes, whether the client is verified, and which of
    the person's grants it may act as."""

    client_name: str
    client_id: str
    client_host: str | None
    """The host a metadata document was fetched from, the one party that vouches for the app; None for an app that
    registered itself."""
    redirect_host: str
    redirect_elsewhere: bool
    """The answer goes to a host other than the one that vouches for the app (loopback aside)."""
    redirect_origin: str
    """For the page's form-action: a browser checks the redirect a form's answer makes against it."""
    verified: bool
    resource: str
    grants: list[str]
    chosen: str | None
    may_create_grant: bool


@dataclass(frozen=True)
class ConsentPublic:
    """A person's consent for a client, as the Grants page lists it."""

    id: int
    username: str
    client_id: str
    client_name: str
    verified: bool
    grant: str
    created_at: datetime
    live_tokens: int
