"""Which redirect URIs a client may register, whether it registers itself (RFC 7591) or publishes a metadata document
(service/oauth/client_metadata.py), and how a consent page names where one goes. One rule for both paths: a person
is told where their answer goes, so that place must read as exactly one host."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

from service.errors import InvalidInput

LOOPBACK_REDIRECT_HOSTS = {"localhost", "127.0.0.1", "::1"}


class InvalidRedirectUri(InvalidInput):
    """A client asked to register a redirect URI that `redirect_uri_problem` refuses."""


def redirect_uri_problem(uri: object) -> str | None:
    """Why a redirect URI is unusable: https anywhere, http only to loopback, or a native app's private-use scheme
    (RFC 8252 section 7); never with userinfo, which would make `https://claude.ai@evil.example/` read as claude.ai."""
    if not isinstance(uri, str):
        return "is not a string"
    parts = urlsplit(uri)
    if "#" in uri:
        return "has a fragment"
    if "@" in parts.netloc:
        return "has a user name or password before its host"
    return _scheme_problem(parts)


def _scheme_problem(parts: SplitResult) -> str | None:
    if parts.scheme == "https":
        return None if parts.hostname else "has no host"
    if parts.scheme == "http":
        return None if parts.hostname in LOOPBACK_REDIRECT_HOSTS else "uses http to a host other than loopback"
    if "." in parts.scheme:
        return None
    return "has a scheme that is neither https, http to loopback, nor a reverse-domain app scheme"


def is_loopback(url: str) -> bool:
    return urlsplit(url).hostname in LOOPBACK_REDIRECT_HOSTS


def shown_host(url: str) -> str:
    """Where a URL goes, as a person should read it: its host and port, never the userinfo a netloc may carry; an
    app's own scheme (cursor:) when it names no host."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return f"{parts.scheme}:"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:  # not a number: refused at registration, but never a 500 on a page
        port = None
    return host if port is None else f"{host}:{port}"
