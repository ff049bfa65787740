"""Client ID Metadata Documents: a client whose client_id is an https URL publishes its metadata there, and Airlock
fetches and checks it instead of a registration (the MCP authorization spec, 2025-11-25 onwards, after
draft-ietf-oauth-client-id-metadata-document).

The client chooses the URL, so the fetch is guarded: https only, the host's addresses all public (resolved once, and
the connection goes to the address that was checked, so a DNS answer that changes in between cannot reach inside),
no redirects, a size cap counted while reading, a time limit for the whole fetch, a JSON content type. The document
must name exactly the URL it was fetched from as its client_id, list its redirect URIs, and hold no shared secret.
Every failure is one `ClientMetadataRefused`, whose reason is short enough for a consent page or a 400.

    document = await fetch_client_metadata(client_id, settings, cache=cache)
"""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
import string
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import anyio
import httpx2
from mcp.shared.auth import OAuthClientInformationFull
from pydantic import AnyUrl, BaseModel, ConfigDict, Field, ValidationError, field_validator

from service.clock import SYSTEM_CLOCK, Clock
from service.durations import parse_duration
from service.errors import InvalidInput
from service.oauth.addresses import IPAddress, reached, refusal
from service.oauth.redirect_uris import redirect_uri_problem

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""Turns a host name and port into the addresses to connect to (a seam for tests; the default asks the system)."""

_MAX_URL_LENGTH = 2048
_MAX_CLIENT_NAME = 200
_LONGEST_MAX_AGE = 365 * 86400  # a bigger Cache-Control max-age would overflow timedelta; settings cap it far lower
_SHARED_SECRET_METHODS = {"client_secret_basic", "client_secret_post", "client_secret_jwt"}
# JWK members that only a private or symmetric key has (RFC 7518 section 6): a document is public, so none belong.
_PRIVATE_KEY_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


class ClientMetadataRefused(InvalidInput):
    """A client's metadata document could not be fetched, or was fetched and is not acceptable.

    `reason` is short and safe to show (a consent page, an OAuth error_description); it never echoes the body.
    """

    def __init__(self, client_id: str, reason: str) -> None:
        super().__init__(f"client metadata document refused: {reason}")
        self.client_id = client_id
        self.reason = reason


class ClientMetadataSettings(BaseModel):
    """Limits on fetching metadata documents; meant to sit in the OAuth section of Settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_bytes: int = Field(5 * 1024, ge=256, le=1024 * 1024)
    """The largest document read; the draft recommends 5 KB. Counted while reading, whatever Content-Length says."""
    timeout: timedelta = timedelta(seconds=5)
    """The whole fetch: resolving the name, connecting, TLS, and reading the body."""
    cache_max_age: timedelta = timedelta(minutes=5)
    """How long a checked document is reused; shorter when its Cache-Control says so; 0 turns caching off."""
    allow_loopback_metadata: bool = False
    """DANGEROUS outside tests. On, documents may come from loopback addresses (127.0.0.0/8, ::1), and over plain
    http when every address of the host is loopback, so a test can serve them from a local server. Any client could
    then make Airlock send requests to services on its own machine (its admin API, a database's HTTP port, a cloud
    agent bound to localhost), and read the answers back through error messages. The draft allows this only for an
    authorization server that is itself a development server on loopback; never turn it on in production."""

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> timedelta:
        return parse_duration(value)

    @field_validator("cache_max_age", mode="before")
    @classmethod
    def _cache_max_age(cls, value: Any) -> timedelta:
        if value in (0, "0", "0s") and not isinstance(value, bool):
            return timedelta(0)
        return parse_duration(value)


class ClientMetadataDocument(OAuthClientInformationFull):
    """A metadata document that passed every check, as the SDK's client record (mcp.server.auth providers return
    that type from get_client), with the fields the MCP spec requires made required."""

    client_name: str = Field(min_length=1, max_length=_MAX_CLIENT_NAME)
    redirect_uris: list[AnyUrl] = Field(min_length=1)
    token_endpoint_auth_method: Literal["none", "private_key_jwt"] = "none"  # noqa: S105 - a method's name


class ClientMetadataCache:
    """Checked documents by client_id, each until its max age passes. Per process, like every cache of ours that
    holds nothing another replica must see at once: a stale document lives at most `cache_max_age`."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK, max_entries: int = 1000) -> None:
        self._clock = clock
        self._max_entries = max_entries
        self._entries: dict[str, tuple[float, ClientMetadataDocument]] = {}

    def get(self, client_id: str) -> ClientMetadataDocument | None:
        entry = self._entries.get(client_id)
        if entry is None:
            return None
        expires, document = entry
        if self._clock.monotonic() >= expires:
            del self._entries[client_id]
            return None
        return document

    def put(self, client_id: str, document: ClientMetadataDocument, max_age: timedelta) -> None:
        if max_age <= timedelta(0):
            return
        now = self._clock.monotonic()
        self._entries.pop(client_id, None)
        if len(self._entries) >= self._max_entries:
            self._entries = {key: entry for key, entry in self._entries.items() if entry[0] > now}
            while len(self._entries) >= self._max_entries:
                del self._entries[next(iter(self._entries))]
        self._entries[client_id] = (now + max_age.total_seconds(), document)

    def forget(self, client_id: str) -> None:
        self._entries.pop(client_id, None)


class MetadataDocuments:
    """The provider's resolver of client_ids that are URLs (service/oauth/provider.py ClientMetadataResolver):
    `fetch_client_metadata` behind one cache per process. A refusal raises ClientMetadataRefused, which the provider
    logs with its reason and answers as an unknown client."""

    def __init__(
        self,
        settings: ClientMetadataSettings,
        clock: Clock = SYSTEM_CLOCK,
        *,
        resolve: Resolver | None = None,
        verify: ssl.SSLContext | None = None,
    ) -> None:
        """`resolve` and `verify` are fetch_client_metadata's seams for tests; production leaves them unset."""
        self._settings = settings
        self._cache = ClientMetadataCache(clock)
        self._resolve = resolve or resolve_host
        self._verify = verify

    async def __call__(self, client_id: str) -> ClientMetadataDocument:
        return await fetch_client_metadata(
            client_id, self._settings, cache=self._cache, resolve=self._resolve, verify=self._verify
        )


async def resolve_host(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host`."""
    answers = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(sockaddr[0]) for *_, sockaddr in answers]


async def fetch_client_metadata(
    client_id: str,
    settings: ClientMetadataSettings,
    *,
    cache: ClientMetadataCache | None = None,
    resolve: Resolver = resolve_host,
    verify: ssl.SSLContext | None = None,
) -> ClientMetadataDocument:
    """The checked metadata document at `client_id`, from the cache when it holds one; raises ClientMetadataRefused.

    `resolve` and `verify` (the certificates to trust; None trusts the usual public authorities) are seams for tests.
    """
    if cache is not None and (cached := cache.get(client_id)) is not None:
        return cached
    url = check_client_id_url(client_id, settings)
    try:
        with anyio.fail_after(settings.timeout.total_seconds()):
            body, max_age = await _fetch(client_id, url, settings, resolve, verify)
    except TimeoutError:
        raise ClientMetadataRefused(client_id, f"the fetch took longer than {_seconds(settings.timeout)}") from None
    document = parse_client_metadata(client_id, body)
    if cache is not None:
        cache.put(client_id, document, min(max_age, settings.cache_max_age))
    return document


def check_client_id_url(client_id: str, settings: ClientMetadataSettings) -> httpx2.URL:
    """The client_id as a URL to fetch, when it is one a client may use (the draft's section 3)."""

    def refuse(reason: str) -> ClientMetadataRefused:
        return ClientMetadataRefused(client_id, reason)

    if len(client_id) > _MAX_URL_LENGTH:
        raise refuse(f"the client_id is longer than {_MAX_URL_LENGTH} characters")
    if any(ch in string.whitespace or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in client_id):
        raise refuse("the client_id contains whitespace or control characters")
    schemes = ("https://", "http://") if settings.allow_loopback_metadata else ("https://",)
    if not client_id.startswith(schemes):
        raise refuse("the client_id must be an https URL")
    if "#" in client_id:
        raise refuse("the client_id must not have a fragment")
    if not client_id.isascii():
        raise refuse("the client_id must be ASCII (percent-encode other characters, punycode host names)")
    try:
        parts = urlsplit(client_id)
        hostname, _ = parts.hostname, parts.port  # reading the port checks it is a number from 0 to 65535
    except ValueError:
        raise refuse("the client_id is not a valid URL") from None
    if "@" in parts.netloc:
        raise refuse("the client_id must not have a user name or password")
    if not hostname:
        raise refuse("the client_id has no host")
    if not parts.path:
        raise refuse("the client_id must have a path")
    if any(unquote(segment) in (".", "..") for segment in parts.path.split("/")):
        raise refuse("the client_id's path must not have . or .. segments")
    try:
        url = httpx2.URL(client_id)
    except httpx2.InvalidURL:
        raise refuse("the client_id is not a valid URL") from None
    if url.userinfo or url.fragment or not url.raw_host:
        raise refuse("the client_id is not a valid URL")
    return url


async def _fetch(
    client_id: str, url: httpx2.URL, settings: ClientMetadataSettings, resolve: Resolver, verify: ssl.SSLContext | None
) -> tuple[bytes, timedelta]:
    def refuse(reason: str) -> ClientMetadataRefused:
        return ClientMetadataRefused(client_id, reason)

    host = url.raw_host.decode("ascii")
    port = url.port or (443 if url.scheme == "https" else 80)
    address = await _checked_address(client_id, host, port, url.scheme, settings, resolve)
    # The request goes to the checked address itself, so nothing resolves the name again. Host and SNI still name
    # the host, so virtual hosting works and the certificate is verified against the name, not the address.
    target = url.copy_with(host=str(address))
    headers = {
        "Host": url.netloc.decode("ascii"),
        "Accept": "application/json",
        # Compressed bodies are refused below: a few KB on the wire can inflate to gigabytes.
        "Accept-Encoding": "identity",
        "User-Agent": "Airlock (client metadata fetch)",
    }
    extensions = {} if _is_ip_literal(host) else {"sni_hostname": host}
    try:
        async with (
            httpx2.AsyncClient(verify=verify or True, trust_env=False, follow_redirects=False, timeout=None) as client,
            client.stream("GET", target, headers=headers, extensions=extensions) as response,
        ):
            if 300 <= response.status_code < 400:
                raise refuse(f"the URL answered with a redirect (HTTP {response.status_code}), which is not followed")
            if response.status_code != 200:
                raise refuse(f"the URL answered HTTP {response.status_code}, not 200")
            if not _is_json(response.headers.get("content-type", "")):
                raise refuse("the document is not served as JSON (Content-Type)")
            if response.headers.get("content-encoding", "identity").strip().lower() != "identity":
                raise refuse("the document is compressed; it must be sent uncompressed")
            too_large = refuse(f"the document is larger than {settings.max_bytes} bytes")
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > settings.max_bytes:
                raise too_large
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > settings.max_bytes:
                    raise too_large
            return bytes(body), _max_age(response.headers.get("cache-control"))
    except httpx2.HTTPError as exc:
        raise refuse(f"the document could not be fetched ({type(exc).__name__})") from None


async def _checked_address(
    client_id: str, host: str, port: int, scheme: str, settings: ClientMetadataSettings, resolve: Resolver
) -> IPAddress:
    """The one address to connect to, when every address of the host is one Airlock may reach."""
    if _is_ip_literal(host):
        texts = [host.strip("[]")]
    else:
        try:
            texts = await resolve(host, port)
        except (OSError, UnicodeError):  # UnicodeError: a name the IDNA codec cannot encode
            raise ClientMetadataRefused(client_id, "the client_id's host name does not resolve") from None
    if not texts:
        raise ClientMetadataRefused(client_id, "the client_id's host name does not resolve")
    addresses = [ipaddress.ip_address(text.split("%", 1)[0]) for text in texts]
    for address in addresses:
        why = refusal(address, allow_loopback=settings.allow_loopback_metadata)
        if why is not None:
            raise ClientMetadataRefused(client_id, f"the client_id's host resolves to {why}")
    if scheme != "https" and not all(reached(address).is_loopback for address in addresses):
        raise ClientMetadataRefused(client_id, "the client_id must be an https URL")
    return addresses[0]


def parse_client_metadata(client_id: str, body: bytes) -> ClientMetadataDocument:
    """Check a fetched document against the client_id it was fetched from (the draft's section 4)."""

    def refuse(reason: str) -> ClientMetadataRefused:
        return ClientMetadataRefused(client_id, reason)

    try:
        data = json.loads(body.decode("utf-8"), object_pairs_hook=_refuse_duplicate_members)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError; deep nesting recurses
        detail = str(exc) if isinstance(exc, _DuplicateMember) else "not valid JSON"
        raise refuse(f"the document is {detail}") from None
    if not isinstance(data, dict):
        raise refuse("the document is not a JSON object")
    if data.get("client_id") != client_id:
        raise refuse("the document's client_id is not the URL it was fetched from")
    for member in ("client_secret", "client_secret_expires_at"):
        if member in data:
            raise refuse(f"the document has a {member}; a metadata document cannot hold a shared secret")
    method = data.get("token_endpoint_auth_method")
    if isinstance(method, str) and (method in _SHARED_SECRET_METHODS or method.startswith("client_secret")):
        raise refuse(f"token_endpoint_auth_method {method[:40]} uses a shared secret, which a metadata document cannot")
    if _has_private_key(data.get("jwks")):
        raise refuse("the document's jwks holds private key material")
    redirect_uris = data.get("redirect_uris")
    if not isinstance(redirect_uris, list) or not redirect_uris:
        raise refuse("the document has no redirect_uris")
    for uri in redirect_uris:
        if (why := redirect_uri_problem(uri)) is not None:
            raise refuse(f"redirect URI {str(uri)[:100]!r} {why}")
    try:
        return ClientMetadataDocument.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "the document"
        if error["type"] == "missing":
            raise refuse(f"the document has no {where}") from None
        raise refuse(f"{where}: {error['msg']}") from None


class _DuplicateMember(ValueError):
    pass


def _refuse_duplicate_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two client_id members could make Airlock and another parser read different documents from the same bytes.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateMember(f"ambiguous: the member {key[:40]!r} appears twice")
        result[key] = value
    return result


def _has_private_key(jwks: object) -> bool:
    if not isinstance(jwks, dict):
        return False
    keys = jwks.get("keys")
    return isinstance(keys, list) and any(isinstance(key, dict) and _PRIVATE_KEY_MEMBERS & key.keys() for key in keys)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


def _max_age(cache_control: str | None) -> timedelta:
    """How long the server lets the document be reused: no-store and no-cache mean not at all; no header, no limit
    of its own (settings.cache_max_age still applies)."""
    if cache_control is None:
        return timedelta.max
    max_age = timedelta.max
    for directive in cache_control.lower().split(","):
        name, _, value = directive.strip().partition("=")
        if name in ("no-store", "no-cache"):
            return timedelta(0)
        if name == "max-age":
            value = value.strip().strip('"')
            max_age = timedelta(seconds=min(int(value), _LONGEST_MAX_AGE)) if value.isdigit() else timedelta(0)
    return max_age


def _seconds(delta: timedelta) -> str:
    return f"{delta.total_seconds():g} s"
