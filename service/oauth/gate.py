"""OAuth access tokens on the MCP endpoints: looked up through a short cache like grant tokens
(service/grants/cache.py), held to the one resource they were issued for (service/oauth/resources.py), and the
`WWW-Authenticate` challenge that sends a client to discovery (RFC 9728 §5.1)."""

from __future__ import annotations

from functools import partial

from sqlalchemy import Engine

from service.clock import SYSTEM_CLOCK, Clock
from service.db.engine import reading
from service.errors import NotAuthenticated
from service.grants.schemas import AuthenticatedGrant
from service.lookups import TokenLookups
from service.oauth import service
from service.oauth.resources import endpoint_resource, metadata_url
from service.oauth.schemas import OAuthAccess
from service.security import TokenHasher


class OAuthTokenCache:
    """A revoked token stops working within `ttl_seconds` on another process; this process and replicas on
    PostgreSQL drop the cache as soon as a revocation commits (service/caches.py). Expiry and the cache's own
    lifetime read `clock`, the app's (service/clock.py); only OAuth tokens come here, so a grant token's call
    pays nothing for it."""

    def __init__(
        self,
        engine: Engine,
        hasher: TokenHasher,
        clock: Clock = SYSTEM_CLOCK,
        ttl_seconds: float = 2.0,
        max_entries: int = 10_000,
    ) -> None:
        self._engine = engine
        self._hasher = hasher
        self._clock = clock
        self._lookups: TokenLookups[OAuthAccess | None] = TokenLookups(clock, ttl_seconds, max_entries)

    async def authenticate(self, token: str) -> OAuthAccess:
        found = await self._lookups.get(self._hasher.hash(token), partial(self._load, token))
        if found is None or found.expires_at <= self._clock.time():
            raise NotAuthenticated("unknown, expired or revoked access token")
        return found

    def clear(self) -> None:
        self._lookups.clear()

    def _load(self, token: str) -> OAuthAccess | None:
        with reading(self._engine) as session:
            return service.authenticate_access(session, self._hasher, token, self._clock.now())


class OAuthGate:
    def __init__(self, cache: OAuthTokenCache, issuer: str) -> None:
        self._cache = cache
        self._issuer = issuer

    @staticmethod
    def owns(token: str) -> bool:
        return service.is_access_token(token)

    async def authenticate(self, token: str, upstream: str | None) -> AuthenticatedGrant:
        access = await self._cache.authenticate(token)
        if access.resource != endpoint_resource(self._issuer, upstream):
            raise NotAuthenticated("this access token was issued for another resource")
        return access.grant

    def challenge(self, upstream: str | None, *, token_sent: bool) -> str:
        """RFC 9728 §5.1 and RFC 6750 §3.1: where to discover how to get a token, and whether the one sent failed."""
        value = f'Bearer resource_metadata="{metadata_url(self._issuer, upstream)}"'
        return value + ', error="invalid_token"' if token_sent else value
