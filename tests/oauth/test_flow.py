"""The MCP SDK's own OAuth client (mcp.client.auth.OAuthClientProvider) against a running Airlock: discovery from the
401, Dynamic Client Registration, the authorize redirect answered by a person on the real sign-in and consent forms,
the token, a tool call acting as the person's grant, a refresh, and revocation cutting the client off."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import pytest
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from service.audit.models import AuditEvent
from tests.gateway.harness import RunningGateway, approve_via_api
from tests.gateway.test_gateway import db_url
from tests.gateway.test_holds import DEAR, held_call
from tests.oauth.helpers import REDIRECT_URI, Person, mcp_status, oauth_gateway
from tests.policy.helpers import fixture

pytestmark = pytest.mark.anyio


class MemoryStorage:
    """The SDK client's token storage (its TokenStorage protocol), kept in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class ConsentingBrowser:
    """The SDK's redirect and callback handlers: the person opens the authorize URL, signs in, allows the app, and
    the app reads code, state and iss off the redirect to its callback."""

    def __init__(self, person: Person) -> None:
        self.person = person
        self.results: list[AuthorizationCodeResult] = []
        self.opened: list[str] = []

    async def redirect(self, url: str) -> None:
        self.opened.append(url)
        query = await self.person.approve(url)
        self.results.append(AuthorizationCodeResult(code=query["code"], state=query.get("state"), iss=query.get("iss")))

    async def callback(self) -> AuthorizationCodeResult:
        return self.results[-1]


def sdk_auth(gw: RunningGateway, browser: ConsentingBrowser, storage: MemoryStorage) -> OAuthClientProvider:
    """The SDK's OAuth client for this gateway's aggregate endpoint, registering itself (DCR) as a public client."""
    return OAuthClientProvider(
        server_url=gw.mcp_url,
        client_metadata=OAuthClientMetadata(
            client_name="Test connector",
            redirect_uris=[AnyUrl(REDIRECT_URI)],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=browser.redirect,
        callback_handler=browser.callback,
    )


async def test_the_sdk_client_signs_in_calls_a_tool_refreshes_and_revocation_cuts_it_off(
    engine: Engine, tmp_path: Path
) -> None:
    with oauth_gateway(tmp_path, db_url(engine)) as gw:
        async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as web:
            browser = ConsentingBrowser(Person(web, "ana"))
            storage = MemoryStorage()
            auth = sdk_auth(gw, browser, storage)
            async with httpx2.AsyncClient(auth=auth, timeout=30) as http:
                async with Client(streamable_http_client(gw.mcp_url, http_client=http), cache=None) as client:
                    first = await client.call_tool("get_model_capabilities", {})
                    assert not first.is_error
                    issued = storage.tokens
                    assert issued is not None and issued.access_token.startswith("alko_")
                    assert storage.client_info is not None

                    # The client's clock says the access token expired: the SDK refreshes before its next call.
                    auth.context.token_expiry_time = time.time() - 1
                    second = await client.call_tool("get_model_capabilities", {})
                    assert not second.is_error
                    rotated = storage.tokens
                    assert rotated is not None
                    assert rotated.access_token != issued.access_token
                    assert rotated.refresh_token != issued.refresh_token

            # The authorize link carried PKCE S256 and the resource; the consent went through sign-in.
            opened = browser.opened[0]
            assert "code_challenge_method=S256" in opened and "resource=" in opened
            assert browser.results[0].iss == gw.base_url

            # Revocation (RFC 7009) by the client cuts off the rotated token at once.
            client_id = storage.client_info.client_id
            assert client_id is not None
            async with httpx2.AsyncClient(timeout=30) as plain:
                assert (await mcp_status(plain, gw.mcp_url, rotated.access_token)).status_code == 200
                revoked = await plain.post(
                    gw.base_url + "/revoke", data={"client_id": client_id, "token": rotated.access_token}
                )
                assert revoked.status_code == 200
                refused = await mcp_status(plain, gw.mcp_url, rotated.access_token)
                assert refused.status_code == 401
                assert 'error="invalid_token"' in refused.headers["www-authenticate"]
                # The family went with it: the rotated refresh token is no good either.
                again = await plain.post(
                    gw.base_url + "/token",
                    data={
                        "client_id": client_id,
                        "grant_type": "refresh_token",
                        "refresh_token": rotated.refresh_token,
                    },
                )
                assert again.status_code == 400 and again.json()["error"] == "invalid_grant"

        # Both calls ran upstream, as ana's grant; the consent is in the audit log.
        assert [c["tool"] for c in gw.upstream_calls()] == ["get_model_capabilities"] * 2
    with Session(engine) as session:
        events = list(session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all())
        calls = [e for e in events if e.action.startswith("call.")]
    assert {e.grant_name for e in calls} == {"ana-agent"}  # every audited call acted as ana's grant
    consented = [e for e in events if e.action == "oauth.consented"]
    assert len(consented) == 1
    assert consented[0].actor == "user:ana"
    assert urlsplit(consented[0].details["resource"]).path == "/mcp"


async def test_a_held_call_of_an_oauth_client_needs_someone_other_than_the_person_who_consented(
    tmp_path: Path,
) -> None:
    with oauth_gateway(tmp_path, policy=fixture("airlock-demo.yaml")) as gw:
        async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as web:
            auth = sdk_auth(gw, ConsentingBrowser(Person(web, "ana")), MemoryStorage())
            async with (
                httpx2.AsyncClient(auth=auth, timeout=30) as http,
                Client(streamable_http_client(gw.mcp_url, http_client=http), cache=None) as client,
            ):
                async with held_call(gw, client, "generate_image", DEAR) as (request_id, results):
                    async with gw.api("ana") as api:
                        own = await approve_via_api(api, request_id)
                    assert own.status_code == 403  # ana consented: the client's calls are hers to have approved
                    assert gw.upstream_calls("generate_image") == []
                    async with gw.api("root") as api:
                        assert (await approve_via_api(api, request_id)).status_code == 200
                assert not results[0].is_error
        assert len(gw.upstream_calls("generate_image")) == 1
