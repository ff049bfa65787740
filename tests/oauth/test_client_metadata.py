"""Fetching and checking client metadata documents, against a real HTTP server on 127.0.0.1.

With the loopback switch on, the server stands in for a client's public host. With it off, the tests prove that
Airlock refuses a URL that reaches inside before it opens any connection: the server counts every one it accepts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from service.oauth.client_metadata import (
    ClientMetadataCache,
    ClientMetadataDocument,
    ClientMetadataRefused,
    ClientMetadataSettings,
    check_client_id_url,
    fetch_client_metadata,
    parse_client_metadata,
)
from tests.clock import MovableClock
from tests.conftest import skip_or_fail
from tests.oauth.metadata_server import JSON, MetadataServer, Reply, make_certificate, metadata_server

pytestmark = pytest.mark.anyio

LOOPBACK = ClientMetadataSettings(allow_loopback_metadata=True, timeout="3s")
PRODUCTION = ClientMetadataSettings()


@pytest.fixture(scope="module")
def running_server() -> Iterator[MetadataServer]:
    with metadata_server() as running:
        yield running


@pytest.fixture
def server(running_server: MetadataServer) -> MetadataServer:
    running_server.reset()
    return running_server


def document(client_id: str, **members: Any) -> dict[str, Any]:
    return {
        "client_id": client_id,
        "client_name": "Example MCP Client",
        "redirect_uris": ["http://127.0.0.1:3000/callback", "https://app.example.com/oauth/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        **members,
    }


def serve(server: MetadataServer, path: str = "/client.json", **reply: Any) -> str:
    url = server.base + path
    server.serve_json(path, document(url), **reply)
    return url


async def refused(client_id: str, settings: ClientMetadataSettings = LOOPBACK, **kwargs: Any) -> str:
    with pytest.raises(ClientMetadataRefused) as caught:
        await fetch_client_metadata(client_id, settings, **kwargs)
    assert caught.value.status_code == 400
    assert caught.value.client_id == client_id
    return caught.value.reason


def resolver_to(*addresses: str) -> Any:
    calls: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return list(addresses)

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


# --- a good document --------------------------------------------------------------------------------------------


async def test_a_good_document_is_fetched_and_typed(server: MetadataServer) -> None:
    url = serve(server, headers={"Content-Type": "application/json; charset=utf-8"})

    fetched = await fetch_client_metadata(url, LOOPBACK)

    assert isinstance(fetched, ClientMetadataDocument)
    assert fetched.client_id == url
    assert fetched.client_name == "Example MCP Client"
    assert [str(uri) for uri in fetched.redirect_uris] == [
        "http://127.0.0.1:3000/callback",
        "https://app.example.com/oauth/callback",
    ]
    assert fetched.token_endpoint_auth_method == "none"
    assert [(seen.path, seen.host) for seen in server.requests] == [("/client.json", f"127.0.0.1:{server.port}")]


async def test_a_json_subtype_is_json(server: MetadataServer) -> None:
    url = serve(server, headers={"Content-Type": "application/client-metadata+json"})

    assert (await fetch_client_metadata(url, LOOPBACK)).client_id == url


# --- documents that must be refused -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "claimed",
    [
        "https://trusted.example.com/client.json",
        "{url}/",
        "{url}?",
        "{upper}",
        "{dotted}",
    ],
)
async def test_a_document_that_names_another_client_id_is_refused(server: MetadataServer, claimed: str) -> None:
    url = server.base + "/client.json"
    variants = {"upper": url.replace("http://", "HTTP://"), "dotted": url.replace("/client", "/./client")}
    server.serve_json("/client.json", document(claimed.format(url=url, **variants)))

    assert "client_id is not the URL" in await refused(url)


async def test_a_redirect_is_refused_and_not_followed(server: MetadataServer) -> None:
    target = serve(server, "/real.json")
    url = server.base + "/client.json"
    server.routes["/client.json"] = Reply(status=302, headers={"Location": target})

    assert "redirect (HTTP 302)" in await refused(url)
    assert [seen.path for seen in server.requests] == ["/client.json"]


@pytest.mark.parametrize("status", [404, 500, 204])
async def test_any_status_but_200_is_refused(server: MetadataServer, status: int) -> None:
    url = serve(server)
    server.routes["/client.json"].status = status

    assert f"HTTP {status}" in await refused(url)


def padded(url: str, size: int) -> bytes:
    return json.dumps(document(url, padding="x" * size)).encode()


async def test_a_document_over_the_size_cap_is_refused(server: MetadataServer) -> None:
    url = server.base + "/client.json"
    server.routes["/client.json"] = Reply(body=padded(url, 6000))

    assert "larger than 5120 bytes" in await refused(url, ClientMetadataSettings(allow_loopback_metadata=True))


async def test_the_size_cap_counts_bytes_when_no_length_is_declared(server: MetadataServer) -> None:
    url = server.base + "/client.json"
    server.routes["/client.json"] = Reply(body=padded(url, 64 * 1024), content_length="chunked")

    assert "larger than 5120 bytes" in await refused(url, ClientMetadataSettings(allow_loopback_metadata=True))


async def test_a_document_just_under_the_cap_is_read_in_chunks(server: MetadataServer) -> None:
    url = server.base + "/client.json"
    body = padded(url, 4800)
    assert 5000 < len(body) <= 5120
    server.routes["/client.json"] = Reply(body=body, content_length="chunked")

    assert (await fetch_client_metadata(url, ClientMetadataSettings(allow_loopback_metadata=True))).client_id == url


async def test_a_content_length_that_understates_the_body_does_not_let_it_through(server: MetadataServer) -> None:
    url = server.base + "/client.json"
    server.routes["/client.json"] = Reply(body=padded(url, 64 * 1024), content_length="100")

    # Only the 100 declared bytes are read, and they are not a whole document.
    assert await refused(url) == "the document is not valid JSON"


async def test_a_host_that_never_answers_is_cut_off_at_the_time_limit(server: MetadataServer) -> None:
    url = serve(server, stall_before_headers=True)
    settings = ClientMetadataSettings(allow_loopback_metadata=True, timeout="300ms")

    started = time.monotonic()
    assert "longer than 0.3 s" in await refused(url, settings)
    assert time.monotonic() - started < 2


async def test_the_time_limit_covers_the_whole_body_not_each_read(server: MetadataServer) -> None:
    # Each byte arrives well within any per-read timeout; the whole document would take about 15 s.
    url = serve(server, seconds_per_byte=0.05)
    settings = ClientMetadataSettings(allow_loopback_metadata=True, timeout="500ms")

    started = time.monotonic()
    assert "longer than 0.5 s" in await refused(url, settings)
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("content_type", ["text/html", "text/plain", "application/javascript", "json"])
async def test_a_document_not_served_as_json_is_refused(server: MetadataServer, content_type: str) -> None:
    url = serve(server, headers={"Content-Type": content_type})

    assert "not served as JSON" in await refused(url)


async def test_a_compressed_document_is_refused(server: MetadataServer) -> None:
    url = serve(server, headers={"Content-Type": JSON, "Content-Encoding": "gzip"})

    assert "compressed" in await refused(url)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b"[" * 2500 + b"]" * 2500, "not valid JSON"),  # nested past the recursion limit
        (b'{"client_id": "a", "client_id": "b"}', "appears twice"),
    ],
)
async def test_a_body_that_is_not_one_json_object_is_refused(server: MetadataServer, body: bytes, reason: str) -> None:
    url = server.base + "/client.json"
    server.routes["/client.json"] = Reply(body=body)

    assert reason in await refused(url)


@pytest.mark.parametrize("member", ["redirect_uris", "client_name"])
async def test_a_document_without_a_required_member_is_refused(server: MetadataServer, member: str) -> None:
    url = server.base + "/client.json"
    incomplete = document(url)
    del incomplete[member]
    server.serve_json("/client.json", incomplete)

    assert f"has no {member}" in await refused(url)


URL = "https://app.example.com/oauth/client.json"


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ({"redirect_uris": []}, "has no redirect_uris"),
        ({"redirect_uris": "https://app.example.com/cb"}, "has no redirect_uris"),
        ({"client_secret": "s3cret"}, "has a client_secret"),
        ({"client_secret_expires_at": 0}, "has a client_secret_expires_at"),
        ({"token_endpoint_auth_method": "client_secret_basic"}, "uses a shared secret"),
        ({"token_endpoint_auth_method": "client_secret_post"}, "uses a shared secret"),
        ({"token_endpoint_auth_method": "client_secret_jwt"}, "uses a shared secret"),
        ({"token_endpoint_auth_method": "tls_client_auth"}, "token_endpoint_auth_method"),
        ({"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}, "private key material"),
        ({"jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b", "d": "c"}]}}, "private key material"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "neither https"),
        ({"redirect_uris": ["http://evil.example/cb"]}, "http to a host other than loopback"),
        ({"redirect_uris": ["http://localhost@evil.example/cb"]}, "has a user name or password before its host"),
        ({"redirect_uris": ["https://claude.ai@evil.example/cb"]}, "has a user name or password before its host"),
        ({"redirect_uris": ["https://app.example.com/cb#frag"]}, "has a fragment"),
        ({"redirect_uris": [42]}, "not a string"),
        ({"client_name": ""}, "has no client_name"),
        ({"client_name": "x" * 201}, "client_name"),
    ],
)
def test_a_document_that_breaks_a_rule_is_refused(members: dict[str, Any], reason: str) -> None:
    with pytest.raises(ClientMetadataRefused) as caught:
        parse_client_metadata(URL, json.dumps(document(URL, **members)).encode())

    assert reason in caught.value.reason


def test_public_keys_and_native_redirects_are_accepted() -> None:
    members = {
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}]},
        "redirect_uris": ["com.example.app:/oauth/callback", "http://[::1]:8000/cb", "http://localhost/cb"],
    }

    parsed = parse_client_metadata(URL, json.dumps(document(URL, **members)).encode())

    assert parsed.token_endpoint_auth_method == "private_key_jwt"
    assert len(parsed.redirect_uris) == 3


# --- URLs that are not client ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client_id", "reason"),
    [
        ("https://app.example.com/client.json#x", "fragment"),
        ("https://app.example.com/client.json#", "fragment"),
        ("https://user:pw@app.example.com/client.json", "user name or password"),
        ("https://user@app.example.com/client.json", "user name or password"),
        ("https://app.example.com", "must have a path"),
        ("https://app.example.com/a/../client.json", ". or .. segments"),
        ("https://app.example.com/./client.json", ". or .. segments"),
        ("https://app.example.com/a/%2e%2E/client.json", ". or .. segments"),
        ("https://app.example.com/client .json", "whitespace"),
        ("https:///client.json", "no host"),
        ("ftp://app.example.com/client.json", "https URL"),
        ("app.example.com/client.json", "https URL"),
        ("https://app.example.com/" + "a" * 2100, "longer than"),
        ("https://[::1/client.json", "not a valid URL"),
        ("https://[zz]/client.json", "not a valid URL"),
        ("https://app.example.com:99999/client.json", "not a valid URL"),
        ("https://app.example.com:abc/client.json", "not a valid URL"),
        ("https://app.example.com/clïent.json", "must be ASCII"),
    ],
)
def test_a_client_id_that_breaks_the_url_rules_is_refused(client_id: str, reason: str) -> None:
    with pytest.raises(ClientMetadataRefused) as caught:
        check_client_id_url(client_id, LOOPBACK)

    assert reason in caught.value.reason


# --- addresses that reach inside, with the loopback switch off ----------------------------------------------------


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("localhost", "loopback"),  # the system resolver answers
        ("2130706433", "loopback"),  # 127.0.0.1 as one decimal number, which the system resolver accepts
        ("[::1]", "loopback"),
        ("[::ffff:127.0.0.1]", "loopback"),
        ("[::ffff:7f00:1]", "loopback"),
    ],
)
async def test_loopback_is_refused_before_any_connection(server: MetadataServer, host: str, reason: str) -> None:
    serve(server)
    client_id = f"https://{host}:{server.port}/client.json"

    assert f"resolves to a {reason} address" in await refused(client_id, PRODUCTION)
    assert server.connections == 0


async def test_plain_http_is_refused_before_any_connection(server: MetadataServer) -> None:
    url = serve(server)

    assert "must be an https URL" in await refused(url, PRODUCTION)
    assert server.connections == 0


@pytest.mark.parametrize(
    ("client_id", "reason"),
    [
        ("https://10.1.2.3/client.json", "a private address"),
        ("https://192.168.0.10/client.json", "a private address"),
        ("https://169.254.169.254/latest/meta-data", "a link-local address"),
        ("https://100.64.0.1/client.json", "a shared (carrier-grade NAT) address"),
        ("https://224.0.0.1/client.json", "a multicast address"),
        ("https://0.0.0.0/client.json", "an unspecified address"),
        ("https://240.0.0.1/client.json", "a reserved address"),
        ("https://[fe80::1]/client.json", "a link-local address"),
        ("https://[fd00::1]/client.json", "a private address"),
        ("https://[::ffff:10.0.0.1]/client.json", "a private address"),
        ("https://[::ffff:169.254.169.254]/client.json", "a link-local address"),
    ],
)
@pytest.mark.parametrize("settings", [PRODUCTION, LOOPBACK], ids=["switch-off", "switch-on"])
async def test_private_addresses_are_refused_with_the_switch_on_or_off(
    client_id: str, reason: str, settings: ClientMetadataSettings
) -> None:
    assert f"resolves to {reason}" in await refused(client_id, settings)


async def test_a_host_name_that_resolves_to_a_private_address_is_refused() -> None:
    resolve = resolver_to("10.0.0.7")

    reason = await refused("https://metadata.example/client.json", PRODUCTION, resolve=resolve)

    assert "resolves to a private address" in reason
    assert resolve.calls == ["metadata.example"]


async def test_one_private_address_among_public_ones_is_enough_to_refuse(server: MetadataServer) -> None:
    # The connection would go to the first, public address; a later one could be tried on failure, so all must pass.
    client_id = f"https://metadata.example:{server.port}/client.json"

    reason = await refused(client_id, PRODUCTION, resolve=resolver_to("93.184.215.14", "127.0.0.1"))

    assert "resolves to a loopback address" in reason
    assert server.connections == 0


async def test_a_name_that_does_not_resolve_is_refused() -> None:
    reason = await refused("https://no-such-host.invalid/client.json", PRODUCTION)

    assert "does not resolve" in reason


async def test_the_switch_allows_http_only_to_loopback() -> None:
    # A public address over plain http: refused on the scheme, before any connection to it is tried.
    reason = await refused("http://metadata.example/client.json", LOOPBACK, resolve=resolver_to("93.184.215.14"))

    assert "must be an https URL" in reason


async def test_the_connection_goes_to_the_address_that_was_checked(server: MetadataServer) -> None:
    # DNS rebinding: a name that answers a safe address to the check and an inside one to the connection. The fetch
    # resolves once and connects to the checked address, with the name kept in Host; the name itself resolves
    # nowhere, so a second lookup by the HTTP client would fail the fetch.
    client_id = f"http://rebinding.test:{server.port}/client.json"
    server.serve_json("/client.json", document(client_id))
    resolve = resolver_to("127.0.0.1")

    fetched = await fetch_client_metadata(client_id, LOOPBACK, resolve=resolve)

    assert fetched.client_id == client_id
    assert resolve.calls == ["rebinding.test"]
    assert [(seen.path, seen.host) for seen in server.requests] == [("/client.json", f"rebinding.test:{server.port}")]


# --- the cache ----------------------------------------------------------------------------------------------------


async def test_a_document_is_reused_until_its_max_age_passes(server: MetadataServer) -> None:
    url = serve(server)
    clock = MovableClock()
    cache = ClientMetadataCache(clock)
    settings = ClientMetadataSettings(allow_loopback_metadata=True, cache_max_age="5m")

    first = await fetch_client_metadata(url, settings, cache=cache)
    clock.advance(299)
    again = await fetch_client_metadata(url, settings, cache=cache)
    assert again == first
    assert len(server.requests) == 1

    clock.advance(2)
    await fetch_client_metadata(url, settings, cache=cache)
    assert len(server.requests) == 2


@pytest.mark.parametrize(("cache_control", "fetches"), [("no-store", 2), ("no-cache", 2), ("max-age=10", 2)])
async def test_the_server_can_shorten_the_cache_life(server: MetadataServer, cache_control: str, fetches: int) -> None:
    url = serve(server, headers={"Content-Type": JSON, "Cache-Control": cache_control})
    clock = MovableClock()
    cache = ClientMetadataCache(clock)

    await fetch_client_metadata(url, LOOPBACK, cache=cache)
    clock.advance(11)
    await fetch_client_metadata(url, LOOPBACK, cache=cache)

    assert len(server.requests) == fetches


async def test_a_long_server_max_age_does_not_outlive_the_setting(server: MetadataServer) -> None:
    url = serve(server, headers={"Content-Type": JSON, "Cache-Control": "public, max-age=86400"})
    clock = MovableClock()
    cache = ClientMetadataCache(clock)
    settings = ClientMetadataSettings(allow_loopback_metadata=True, cache_max_age="1m")

    await fetch_client_metadata(url, settings, cache=cache)
    clock.advance(30)
    await fetch_client_metadata(url, settings, cache=cache)
    assert len(server.requests) == 1
    clock.advance(31)
    await fetch_client_metadata(url, settings, cache=cache)
    assert len(server.requests) == 2


async def test_a_refused_document_is_not_cached(server: MetadataServer) -> None:
    url = server.base + "/client.json"
    server.serve_json("/client.json", document("https://someone-else.example/client.json"))
    cache = ClientMetadataCache(MovableClock())

    await refused(url, cache=cache)
    server.serve_json("/client.json", document(url))

    assert (await fetch_client_metadata(url, LOOPBACK, cache=cache)).client_id == url
    assert len(server.requests) == 2


def test_the_cache_holds_at_most_its_size() -> None:
    clock = MovableClock()
    cache = ClientMetadataCache(clock, max_entries=2)
    parsed = parse_client_metadata(URL, json.dumps(document(URL)).encode())

    for name in ("a", "b", "c"):
        cache.put(name, parsed, timedelta(minutes=1))

    assert cache.get("a") is None
    assert cache.get("b") is parsed
    assert cache.get("c") is parsed


# --- settings -----------------------------------------------------------------------------------------------------


def test_the_loopback_switch_is_off_by_default() -> None:
    assert ClientMetadataSettings().allow_loopback_metadata is False
    assert ClientMetadataSettings().max_bytes == 5 * 1024


def test_settings_read_durations_as_people_write_them() -> None:
    settings = ClientMetadataSettings.model_validate({"timeout": "2s", "cache_max_age": 0})

    assert settings.timeout == timedelta(seconds=2)
    assert settings.cache_max_age == timedelta(0)


# --- https ----------------------------------------------------------------------------------------------------------


async def test_over_tls_the_certificate_is_checked_against_the_name_not_the_address(tmp_path: Path) -> None:
    host = "metadata.test"
    contexts = make_certificate(tmp_path, host)
    if contexts is None:
        skip_or_fail("the openssl command is not installed")
        return
    server_tls, trusts_only_it = contexts
    with metadata_server(server_tls) as tls_server:
        client_id = f"https://{host}:{tls_server.port}/client.json"
        tls_server.serve_json("/client.json", document(client_id))

        fetched = await fetch_client_metadata(
            client_id, LOOPBACK, resolve=resolver_to("127.0.0.1"), verify=trusts_only_it
        )

        assert fetched.client_id == client_id
        assert tls_server.server_names == [host]
        assert [(seen.path, seen.host) for seen in tls_server.requests] == [
            ("/client.json", f"{host}:{tls_server.port}")
        ]

        # The same server reached under another name presents a certificate that does not match it.
        other = f"https://other.test:{tls_server.port}/client.json"
        tls_server.serve_json("/client.json", document(other))
        reason = await refused(other, resolve=resolver_to("127.0.0.1"), verify=trusts_only_it)
        assert "could not be fetched" in reason
