"""One identity provider over HTTP: its discovery document and keys (cached), the authorization URL of a sign-in with
PKCE, the code exchange, and the verified identity in the ID token it returns."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx2

from service.clock import SYSTEM_CLOCK, Clock
from service.errors import NotAuthenticated, NotFound, Unavailable
from service.oidc.config import OIDCProviderSettings, OIDCSettings
from service.oidc.id_tokens import UnknownSigningKey, allowed_algorithms, verify_id_token
from service.oidc.service import Identity

DOCUMENT_MAX_AGE_SECONDS = 3600.0
HTTP_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class SignInAttempt:
    """What a started sign-in keeps (in a signed cookie) until the provider sends the person back."""

    provider: str
    state: str
    nonce: str
    code_verifier: str
    next_path: str

    @classmethod
    def start(cls, provider: str, next_path: str) -> SignInAttempt:
        return cls(provider, secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48), next_path)

    @property
    def code_challenge(self) -> str:
        """PKCE S256 (RFC 7636, section 4.2)."""
        digest = hashlib.sha256(self.code_verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


@dataclass(frozen=True)
class Discovery:
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    algorithms: list[str]


def _endpoint(document: dict[str, Any], key: str, issuer: str) -> str:
    value = document.get(key)
    parts = urlsplit(value) if isinstance(value, str) else None
    loopback = parts is not None and parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts is None or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        raise Unavailable(f"the discovery document of {issuer} has no usable {key}")
    return str(value)


@dataclass
class ProviderClient:
    name: str
    settings: OIDCProviderSettings
    clock: Clock = SYSTEM_CLOCK
    transport: httpx2.AsyncBaseTransport | None = None
    _discovery: tuple[float, Discovery] | None = field(default=None, repr=False)
    _jwks: tuple[float, dict[str, Any]] | None = field(default=None, repr=False)

    def _client(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            transport=self.transport, trust_env=False, follow_redirects=False, timeout=HTTP_TIMEOUT_SECONDS
        )

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with self._client() as client:
                response = await client.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            document = response.json()
        except (httpx2.HTTPError, ValueError) as exc:
            raise Unavailable(f"the identity provider {self.name} cannot be reached ({url}: {exc})") from None
        if not isinstance(document, dict):
            raise Unavailable(f"the identity provider {self.name} answered {url} with something not a JSON object")
        return document

    def _fresh(self, cached_at: float) -> bool:
        return self.clock.monotonic() - cached_at < DOCUMENT_MAX_AGE_SECONDS

    async def discovery(self) -> Discovery:
        if self._discovery is not None and self._fresh(self._discovery[0]):
            return self._discovery[1]
        issuer = self.settings.issuer
        # OpenID Connect Discovery 1.0, section 4: a terminating "/" of the issuer goes before the suffix is added;
        # the issuer itself is still compared exactly, slash and all.
        document = await self._get_json(f"{issuer.removesuffix('/')}/.well-known/openid-configuration")
        if document.get("issuer") != issuer:
            # OpenID Connect Discovery 1.0, section 4.3: a document for another issuer is not this provider's.
            raise Unavailable(f"the discovery document at {issuer} names another issuer ({document.get('issuer')!r})")
        announced = document.get("id_token_signing_alg_values_supported")
        found = Discovery(
            authorization_endpoint=_endpoint(document, "authorization_endpoint", issuer),
            token_endpoint=_endpoint(document, "token_endpoint", issuer),
            jwks_uri=_endpoint(document, "jwks_uri", issuer),
            algorithms=allowed_algorithms(announced if isinstance(announced, list) else None),
        )
        self._discovery = (self.clock.monotonic(), found)
        return found

    async def _keys(self, *, refresh: bool) -> dict[str, Any]:
        if not refresh and self._jwks is not None and self._fresh(self._jwks[0]):
            return self._jwks[1]
        keys = await self._get_json((await self.discovery()).jwks_uri)
        self._jwks = (self.clock.monotonic(), keys)
        return keys

    async def authorization_url(self, attempt: SignInAttempt, redirect_uri: str) -> str:
        endpoint = (await self.discovery()).authorization_endpoint
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.settings.client_id,
                "redirect_uri": redirect_uri,
                "scope": " ".join(self.settings.scopes),
                "state": attempt.state,
                "nonce": attempt.nonce,
                "code_challenge": attempt.code_challenge,
                "code_challenge_method": "S256",
            }
        )
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    async def exchange_code(self, code: str, attempt: SignInAttempt, redirect_uri: str) -> str:
        """The ID token the provider gives for the code (client_secret_basic, RFC 6749 section 2.3.1)."""
        endpoint = (await self.discovery()).token_endpoint
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": attempt.code_verifier,
        }
        auth = (self.settings.client_id, self.settings.client_secret.get_secret_value())
        try:
            async with self._client() as client:
                response = await client.post(endpoint, data=form, auth=auth, headers={"Accept": "application/json"})
            answer = response.json()
        except (httpx2.HTTPError, ValueError) as exc:
            raise Unavailable(f"the identity provider {self.name} cannot be reached ({exc})") from None
        if response.status_code != 200 or not isinstance(answer, dict):
            error = answer.get("error") if isinstance(answer, dict) else None
            raise NotAuthenticated(f"{self.name} refused the sign-in code ({error or response.status_code})")
        id_token = answer.get("id_token")
        if not isinstance(id_token, str):
            raise NotAuthenticated(f"{self.name} answered the sign-in code without an ID token")
        return id_token

    async def verified_identity(self, id_token: str, attempt: SignInAttempt) -> Identity:
        discovery = await self.discovery()
        for refresh in (False, True):
            try:
                claims = verify_id_token(
                    id_token,
                    jwks=await self._keys(refresh=refresh),
                    algorithms=discovery.algorithms,
                    issuer=self.settings.issuer,
                    client_id=self.settings.client_id,
                    nonce=attempt.nonce,
                    now=self.clock.time,
                )
                break
            except UnknownSigningKey:
                if refresh:
                    raise
        return identity_of(claims, self.settings.groups_claim)


def identity_of(claims: dict[str, Any], groups_claim: str) -> Identity:
    groups = claims.get(groups_claim)
    email = claims.get("email")
    username = claims.get("preferred_username")
    hosted_domain = claims.get("hd")
    return Identity(
        subject=str(claims["sub"]),
        hosted_domain=hosted_domain if isinstance(hosted_domain, str) and hosted_domain else None,
        email=email if isinstance(email, str) and email else None,
        email_verified=claims.get("email_verified") is True,
        groups=tuple(g for g in groups if isinstance(g, str)) if isinstance(groups, list) else (),
        preferred_username=username if isinstance(username, str) else None,
    )


@dataclass
class Providers:
    """The configured providers by name, each with its cached documents; built once when the app starts."""

    clients: dict[str, ProviderClient]

    @classmethod
    def from_settings(cls, settings: OIDCSettings, clock: Clock = SYSTEM_CLOCK) -> Providers:
        return cls({name: ProviderClient(name, p, clock) for name, p in settings.providers.items()})

    def get(self, name: str) -> ProviderClient:
        client = self.clients.get(name)
        if client is None:
            raise NotFound(f"no identity provider named {name!r}")
        return client
