"""Discovery: the authorization server's metadata (RFC 8414), each MCP endpoint's Protected Resource Metadata
(RFC 9728), answered alike for every upstream name so none is told, and the 401 that points a client to it. With
OAuth not configured, none of it exists and the 401 is what it was."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from service.app import transport_security
from service.config import load_settings
from service.errors import ConfigInvalid
from tests.gateway.harness import run_gateway
from tests.oauth.helpers import ALLOW_ALL, mcp_status, oauth_gateway

pytestmark = pytest.mark.anyio
PRM = "/.well-known/oauth-protected-resource"


async def test_metadata_and_challenges_lead_a_client_to_the_authorization_server(tmp_path: Path) -> None:
    with oauth_gateway(tmp_path) as gw:
        base = gw.base_url
        async with httpx2.AsyncClient(base_url=base, timeout=30) as http:
            server = (await http.get("/.well-known/oauth-authorization-server")).json()
            assert server["issuer"] == base  # exactly as configured: clients compare `iss` as plain text
            assert server["code_challenge_methods_supported"] == ["S256"]
            assert server["authorization_response_iss_parameter_supported"] is True
            assert server["client_id_metadata_document_supported"] is True  # the fetcher is on with OAuth
            assert server["registration_endpoint"] == base + "/register"
            assert server["revocation_endpoint"] == base + "/revoke"
            assert server["response_types_supported"] == ["code"]

            aggregate = (await http.get(PRM + "/mcp")).json()
            assert aggregate["resource"] == base + "/mcp"
            assert aggregate["authorization_servers"] == [base]
            known, unknown = await http.get(PRM + "/mcp/imagegen"), await http.get(PRM + "/mcp/no-such-upstream")
            assert known.status_code == unknown.status_code == 200
            assert known.json()["resource"] == base + "/mcp/imagegen"
            assert unknown.json()["resource"] == base + "/mcp/no-such-upstream"
            # The same document but for the name: nothing tells a configured upstream from an unknown one.
            assert known.json() | {"resource": "", "resource_name": ""} == unknown.json() | {
                "resource": "",
                "resource_name": "",
            }
            assert known.headers["cache-control"] == unknown.headers["cache-control"]

            bare = await mcp_status(http, gw.mcp_url, None)
            assert bare.status_code == 401
            assert bare.headers["www-authenticate"] == f'Bearer resource_metadata="{base}{PRM}/mcp"'
            for name in ("imagegen", "no-such-upstream"):
                wrong = await mcp_status(http, f"{gw.mcp_url}/{name}", "alko_nothing")
                assert wrong.status_code == 401
                assert wrong.headers["www-authenticate"] == (
                    f'Bearer resource_metadata="{base}{PRM}/mcp/{name}", error="invalid_token"'
                )
            stale_grant = await mcp_status(http, gw.mcp_url, "alk_not-a-grant")
            assert stale_grant.status_code == 401 and "resource_metadata=" in stale_grant.headers["www-authenticate"]


async def test_without_an_issuer_oauth_is_off_and_nothing_changes(tmp_path: Path) -> None:
    with run_gateway(tmp_path, database_url=f"sqlite:///{tmp_path}/airlock.db", policy=ALLOW_ALL) as gw:
        async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as http:
            for path in ("/.well-known/oauth-authorization-server", PRM + "/mcp", "/oauth/consent/x"):
                assert (await http.get(path)).status_code in (303, 404), path
            assert (await http.post("/register", json={"redirect_uris": ["http://x/"]})).status_code == 404
            bare = await mcp_status(http, gw.mcp_url, None)
            assert bare.status_code == 401 and bare.headers["www-authenticate"] == 'Bearer realm="airlock"'
            assert (await mcp_status(http, gw.mcp_url, gw.token)).status_code == 200


def test_the_issuer_is_a_host_the_mcp_endpoint_accepts() -> None:
    settings = load_settings(None, oauth={"issuer": "https://airlock.example.com/"})
    security = transport_security(settings)
    assert "airlock.example.com" in (security.allowed_hosts or [])
    assert "https://airlock.example.com" in (security.allowed_origins or [])
    assert settings.oauth.issuer == "https://airlock.example.com"  # one spelling, without the trailing slash


@pytest.mark.parametrize("issuer", ["http://airlock.example.com", "https://a.example/?x=1", "ftp://a.example"])
def test_an_issuer_that_is_not_https_or_has_a_query_is_refused(issuer: str) -> None:
    with pytest.raises(ConfigInvalid, match=r"oauth\.issuer"):
        load_settings(None, oauth={"issuer": issuer})
