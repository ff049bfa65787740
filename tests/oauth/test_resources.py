"""The pure rules of OAuth at Airlock: which resource an authorization request names, which one an endpoint is, and
what a client's redirect URI may add to the consent page's Content-Security-Policy."""

from __future__ import annotations

import pytest

from service.oauth.consent import csp_source
from service.oauth.resources import endpoint_resource, metadata_url, requested_resource

ISSUER = "https://airlock.example.com"


@pytest.mark.parametrize(
    ("requested", "resource"),
    [
        (None, f"{ISSUER}/mcp"),
        ("", f"{ISSUER}/mcp"),
        (f"{ISSUER}/mcp", f"{ISSUER}/mcp"),
        (f"{ISSUER}/mcp/", f"{ISSUER}/mcp"),
        (f"{ISSUER}/mcp/imagegen", f"{ISSUER}/mcp/imagegen"),
        (f"{ISSUER}/mcp/no-such_one", f"{ISSUER}/mcp/no-such_one"),
        (f"{ISSUER}/mcp/a/b", None),
        (f"{ISSUER}/mcp/../api", None),
        (f"{ISSUER}/mcp?x=1", None),
        (f"{ISSUER}/mcp#top", None),
        (f"{ISSUER}/api", None),
        ("https://evil.example/mcp", None),
        (f"{ISSUER}.evil.example/mcp", None),
        ("http://airlock.example.com/mcp", None),
    ],
)
def test_an_authorization_names_one_of_our_endpoints_or_none(requested: str | None, resource: str | None) -> None:
    assert requested_resource(requested, ISSUER) == resource


def test_each_endpoint_is_its_own_resource_with_its_own_metadata() -> None:
    assert endpoint_resource(ISSUER, None) == f"{ISSUER}/mcp"
    assert endpoint_resource(ISSUER, "a") == f"{ISSUER}/mcp/a"
    assert metadata_url(ISSUER, None) == f"{ISSUER}/.well-known/oauth-protected-resource/mcp"
    assert metadata_url(ISSUER, "a") == f"{ISSUER}/.well-known/oauth-protected-resource/mcp/a"


@pytest.mark.parametrize(
    ("redirect_uri", "source"),
    [
        ("http://127.0.0.1:9/callback", "http://127.0.0.1:9"),
        ("https://claude.ai/api/mcp/auth_callback", "https://claude.ai"),
        ("http://[::1]:8080/cb", "http://[::1]:8080"),
        ("cursor://anysphere.cursor-mcp/oauth/callback", "cursor:"),
        ("https://a.example;script-src *@b/cb", ""),
        ("https://a.example 'unsafe-inline'/cb", ""),
        ("https://user@a.example/cb", ""),
    ],
)
def test_a_redirect_uri_adds_exactly_one_csp_source_or_nothing(redirect_uri: str, source: str) -> None:
    assert csp_source(redirect_uri) == source
