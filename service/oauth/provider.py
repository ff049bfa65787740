"""The MCP SDK's authorization-server provider protocol (mcp.server.auth.provider), answered by the OAuth service.

The SDK's handlers parse and check each request (PKCE S256, redirect URIs, expiry, client authentication); this
class only moves between them and the service, one unit of work per call, off the event loop. Client ID Metadata
Documents come in through `ClientMetadataResolver`, the one seam to the fetcher (service/oauth/client_metadata.py)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from functools import partial
from typing import Protocol, TypeVar

import anyio
from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    IdentityAssertionParams,
    RefreshToken,
    RegistrationError,
    TokenError,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from sqlalchemy import Engine
from sqlmodel import Session

from service.clock import SYSTEM_CLOCK, Clock
from service.db.engine import unit_of_work
from service.errors import AirlockError
from service.oauth import consent, service
from service.oauth.redirect_uris import InvalidRedirectUri
from service.oauth.registration import RegistrationLimit
from service.oauth.resources import requested_resource
from service.oauth.schemas import Lifetimes
from service.security import TokenHasher

log = logging.getLogger(__name__)
T = TypeVar("T")
CONSENT_PATH = "/oauth/consent"
MAX_CLIENT_ID_LENGTH = 2048
MAX_STATE_LENGTH = 2048
# RFC 7636 §4.2: S256 is BASE64URL(SHA256(verifier)) without padding, always 43 characters.
_S256_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")


class ClientMetadataResolver(Protocol):
    """Fetches and checks the metadata document a client_id URL names (the Client ID Metadata Document draft):
    https only, no private addresses, size and time limits, no redirects. Answers the client as the document
    describes it, with `client_id` equal to the URL, or None when the document cannot be had or is refused."""

    async def __call__(self, client_id: str) -> OAuthClientInformationFull | None: ...


def is_metadata_document_id(client_id: str) -> bool:
    return client_id.startswith("https://")


def is_plausible_client_id(client_id: str) -> bool:
    return 0 < len(client_id) <= MAX_CLIENT_ID_LENGTH and client_id.isprintable()


class AirlockCode(AuthorizationCode):
    authorization_id: int


class AirlockRefreshToken(RefreshToken):
    authorization_id: int
    token_id: int


class AirlockAccessToken(AccessToken):
    authorization_id: int


class AirlockOAuthProvider:
    """Built with the app (its routes exist from the start); `attach` hands it the database once the lifespan has
    built it. Until then every call fails closed. Every expiry it sets or checks reads `clock`, the app's
    (service/clock.py)."""

    def __init__(
        self,
        issuer: str,
        lifetimes: Lifetimes,
        resolver: ClientMetadataResolver | None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.issuer = issuer
        self.lifetimes = lifetimes
        self.resolver = resolver
        self.clock = clock
        self._engine: Engine | None = None
        self._hasher: TokenHasher | None = None
        self._registrations: RegistrationLimit | None = None

    def attach(self, engine: Engine, hasher: TokenHasher, registrations: RegistrationLimit) -> None:
        self._engine, self._hasher, self._registrations = engine, hasher, registrations

    @property
    def registrations(self) -> RegistrationLimit:
        if self._registrations is None:
            raise RuntimeError("Airlock has not started")
        return self._registrations

    @property
    def hasher(self) -> TokenHasher:
        if self._hasher is None:
            raise RuntimeError("Airlock has not started")
        return self._hasher

    async def _run(self, work: Callable[[Session], T]) -> T:
        engine = self._engine
        if engine is None:
            raise RuntimeError("Airlock has not started")

        def run() -> T:
            with unit_of_work(engine) as session:
                return work(session)

        return await anyio.to_thread.run_sync(run)

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        if not is_plausible_client_id(client_id):
            return None  # ours are UUIDs or https URLs; text a database refuses (NUL) never reaches one
        if not is_metadata_document_id(client_id):
            return await self._run(partial(service.find_client, client_id=client_id))
        if self.resolver is None:
            return None
        try:
            client = await self.resolver(client_id)
        except Exception as exc:  # a fetcher's failure is the client's problem, not a 500: one line, and no client
            log.warning("client metadata document %s not resolved: %s: %s", client_id, type(exc).__name__, exc)
            return None
        if client is None or client.client_id != client_id:
            return None
        # A metadata document names a public client: no secret was ever shared with it.
        client = client.model_copy(update={"client_secret": None, "token_endpoint_auth_method": "none"})
        await self._run(partial(service.remember_metadata_client, client=client))
        return client

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        register = partial(
            service.register_dynamic_client, hasher=self.hasher, client=client_info, actor="oauth:registration"
        )
        try:
            await self._run(register)
        except InvalidRedirectUri as exc:  # RFC 7591 section 3.2.2
            raise RegistrationError("invalid_redirect_uri", exc.message) from None

    async def matching_client_secret(self, client_id: str, presented: list[str]) -> str | None:
        """For service/oauth/client_auth.py: which presented secret is the client's, checked against its HMAC."""
        if not presented or not is_plausible_client_id(client_id):
            return None
        work = partial(service.matching_client_secret, hasher=self.hasher, client_id=client_id, presented=presented)
        return await self._run(work)

    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        if not _S256_CHALLENGE.match(params.code_challenge):
            raise AuthorizeError("invalid_request", "code_challenge must be a base64url SHA-256 digest (43 characters)")
        if params.state is not None and (len(params.state) > MAX_STATE_LENGTH or "\x00" in params.state):
            raise AuthorizeError("invalid_request", f"state must be at most {MAX_STATE_LENGTH} characters, without NUL")
        resource = requested_resource(params.resource, self.issuer)
        if resource is None:
            raise AuthorizeError("invalid_target", f"resource must be {self.issuer}/mcp or {self.issuer}/mcp/<name>")
        key = await self._run(
            partial(
                consent.begin_authorization,
                hasher=self.hasher,
                client_id=client.client_id or "",
                redirect_uri=str(params.redirect_uri),
                redirect_uri_explicit=params.redirect_uri_provided_explicitly,
                code_challenge=params.code_challenge,
                state=params.state,
                scopes=list(params.scopes or []),
                resource=resource,
                lifetimes=self.lifetimes,
                now=self.clock.now(),
            )
        )
        return f"{self.issuer}{CONSENT_PATH}/{key}"

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> AirlockCode | None:
        found = await self._run(
            partial(
                service.load_code,
                hasher=self.hasher,
                code=authorization_code,
                client_id=client.client_id or "",
                now=self.clock.now(),
            )
        )
        if found is None:
            return None
        return AirlockCode(
            code=authorization_code,
            scopes=found.scopes,
            expires_at=found.expires_at,
            client_id=found.client_id,
            code_challenge=found.code_challenge,
            redirect_uri=found.redirect_uri,
            redirect_uri_provided_explicitly=found.redirect_uri_explicit,
            resource=found.resource,
            authorization_id=found.authorization_id,
        )

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: AirlockCode
    ) -> OAuthToken:
        work = partial(service.exchange_code, hasher=self.hasher, authorization_id=authorization_code.authorization_id)
        return await self._exchange(work)

    async def load_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: str
    ) -> AirlockRefreshToken | None:
        found = await self._run(
            partial(
                service.load_refresh,
                hasher=self.hasher,
                token=refresh_token,
                client_id=client.client_id or "",
                now=self.clock.now(),
            )
        )
        if found is None:
            return None
        return AirlockRefreshToken(
            token=refresh_token,
            client_id=found.client_id,
            scopes=found.scopes,
            expires_at=found.expires_at,
            resource=found.resource,
            authorization_id=found.authorization_id,
            token_id=found.token_id,
        )

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: AirlockRefreshToken, scopes: list[str]
    ) -> OAuthToken:
        work = partial(
            service.exchange_refresh, hasher=self.hasher, token_id=refresh_token.token_id, scopes=list(scopes)
        )
        return await self._exchange(work)

    async def _exchange(self, work: Callable[..., OAuthToken]) -> OAuthToken:
        try:
            return await self._run(partial(work, lifetimes=self.lifetimes, now=self.clock.now()))
        except AirlockError as exc:  # used twice at once, or the grant was revoked meanwhile
            raise TokenError("invalid_grant", exc.message) from None

    async def load_access_token(self, token: str) -> AirlockAccessToken | None:
        """For the revocation endpoint; the gateway reads access tokens through its cache (service/oauth/cache.py)."""
        found = await self._run(partial(service.load_access_for_revocation, hasher=self.hasher, token=token))
        if found is None:
            return None
        return AirlockAccessToken(
            token=token,
            client_id=found.client_id,
            scopes=found.scopes,
            expires_at=found.expires_at,
            resource=found.resource,
            authorization_id=found.authorization_id,
        )

    async def revoke_token(self, token: AirlockAccessToken | AirlockRefreshToken) -> None:
        revoke = partial(
            service.revoke, authorization_id=token.authorization_id, now=self.clock.now(), client_id=token.client_id
        )
        await self._run(revoke)

    async def exchange_identity_assertion(
        self, client: OAuthClientInformationFull, params: IdentityAssertionParams
    ) -> OAuthToken:
        raise TokenError("unsupported_grant_type", "this authorization server supports no JWT bearer grant")
