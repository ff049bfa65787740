"""Which resource (RFC 8707 audience) a token is for, and which one an MCP endpoint is.

Every MCP endpoint is its own resource: `<issuer>/mcp` (every upstream the grant reaches) and `<issuer>/mcp/<name>`
(that upstream alone). A token is good on exactly the endpoint it was issued for: one for /mcp/a is refused on
/mcp/b and on /mcp, and one for /mcp is refused on /mcp/a. Equality is the whole rule, so no endpoint's token
reaches further than the person who consented was shown. Pure: no I/O."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

MCP_RESOURCE_PATH = "/mcp"
PROTECTED_RESOURCE_WELL_KNOWN = "/.well-known/oauth-protected-resource"
_UPSTREAM_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def resource_base(issuer: str) -> str:
    return issuer + MCP_RESOURCE_PATH


def endpoint_resource(issuer: str, upstream: str | None) -> str:
    """The resource an MCP endpoint is: what a token used on it must have been issued for."""
    return resource_base(issuer) if upstream is None else f"{resource_base(issuer)}/{upstream}"


def metadata_url(issuer: str, upstream: str | None) -> str:
    """Where the endpoint's Protected Resource Metadata is (RFC 9728 §3.1: the well-known path before the path)."""
    return f"{issuer}{PROTECTED_RESOURCE_WELL_KNOWN}{MCP_RESOURCE_PATH}" + (f"/{upstream}" if upstream else "")


def is_upstream_name(name: str) -> bool:
    """Shaped like an upstream name (service/config.py allows letters, digits, - and _). Whether one by that name
    exists is never told: an unknown name gets the same answers as a known one it may not reach."""
    return bool(_UPSTREAM_NAME.match(name))


def requested_resource(requested: str | None, issuer: str) -> str | None:
    """The resource an authorization request asked for, normalised; None when it names none of ours. A request
    without one is for `<issuer>/mcp` (RFC 8707 lets the server choose a default; older clients send none)."""
    if requested is None or not requested.strip():
        return resource_base(issuer)
    value = requested.strip()
    parts = urlsplit(value)
    if parts.query or parts.fragment:
        return None
    value = value.rstrip("/")
    base = resource_base(issuer)
    if value == base:
        return base
    prefix = base + "/"
    if value.startswith(prefix) and is_upstream_name(value[len(prefix) :]):
        return value
    return None
