"""The one redirect-URI rule both registration paths apply, and how a consent page names where an answer goes."""

from __future__ import annotations

import pytest

from service.oauth.redirect_uris import redirect_uri_problem, shown_host


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("https://app.example/cb", None),
        ("http://127.0.0.1:33418/callback", None),
        ("http://[::1]:8080/cb", None),
        ("cursor.app://anysphere/oauth/callback", None),
        ("https://claude.ai@evil.example/cb", "has a user name or password before its host"),
        ("https://user:pw@app.example/cb", "has a user name or password before its host"),
        ("http://evil.example/cb", "uses http to a host other than loopback"),
        ("javascript:alert(1)//", "has a scheme that is neither"),
        ("data:text/html,hi", "has a scheme that is neither"),
        ("https:///cb", "has no host"),
        ("https://app.example/cb#x", "has a fragment"),
    ],
)
def test_a_redirect_uri_is_refused_for_what_would_mislead_or_leak(uri: str, problem: str | None) -> None:
    found = redirect_uri_problem(uri)
    assert found == problem if problem is None else (found is not None and found.startswith(problem))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://claude.ai@evil.example/cb", "evil.example"),
        ("https://claude.ai:x@evil.example:8443/cb", "evil.example:8443"),
        ("http://127.0.0.1:9/callback", "127.0.0.1:9"),
        ("http://[::1]:8080/cb", "[::1]:8080"),
        ("https://APP.example/cb", "app.example"),
        ("com.example.app:/cb", "com.example.app:"),
        ("https://app.example:notaport/cb", "app.example"),
    ],
)
def test_the_page_names_the_host_and_port_never_the_userinfo(url: str, shown: str) -> None:
    assert shown_host(url) == shown
