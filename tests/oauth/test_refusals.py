"""Every way an OAuth request can be wrong gets a clear 4xx or OAuth error and changes nothing it should not: wrong
PKCE verifier, reused code (which revokes what it issued), foreign redirect URI, wrong audience, expired, revoked and
tampered tokens, refresh-token reuse, a denied or forged consent, a redirect URI no one may register, a wrong client
secret."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx2
import pytest
from sqlmodel import Session, select

from service.oauth.models import OAuthAuthorization, OAuthClient, OAuthToken
from tests.clock import MovableClock
from tests.gateway.harness import RunningGateway
from tests.oauth.helpers import (
    REDIRECT_URI,
    Person,
    RawClient,
    csrf_in,
    mcp_status,
    oauth_gateway,
    pkce,
    redirected_query,
)

pytestmark = pytest.mark.anyio


def count(gw: RunningGateway, model: type[OAuthToken] | type[OAuthAuthorization] | type[OAuthClient]) -> int:
    with Session(gw.state.runtime.engine) as session:
        return len(session.exec(select(model)).all())


async def test_codes_are_single_use_pkce_bound_and_tied_to_their_redirect_uri(tmp_path: Path) -> None:
    with oauth_gateway(tmp_path) as gw:
        async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as web, httpx2.AsyncClient(timeout=30) as http:
            person = Person(web, "ana")
            client = await RawClient.register(http, gw)
            code, verifier = await client.code_for(person)

            wrong = await client.exchange(code, verifier[:-1] + ("A" if verifier[-1] != "A" else "B"))
            assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
            elsewhere = await client.token(
                grant_type="authorization_code", code=code, code_verifier=verifier, redirect_uri=REDIRECT_URI + "x"
            )
            assert elsewhere.status_code == 400 and elsewhere.json()["error"] == "invalid_request"
            assert count(gw, OAuthToken) == 0  # neither refusal issued anything or spent the code

            issued = await client.exchange(code, verifier)
            assert issued.status_code == 200
            access = issued.json()["access_token"]
            assert (await mcp_status(http, gw.mcp_url, access)).status_code == 200

            replayed = await client.exchange(code, verifier)
            assert replayed.status_code == 400 and replayed.json()["error"] == "invalid_grant"
            # A replayed code means it leaked: what it issued is revoked (OAuth 2.1 §4.1.3).
            assert (await mcp_status(http, gw.mcp_url, access)).status_code == 401
            refreshed = await client.refresh(issued.json()["refresh_token"])
            assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"

            other = await RawClient.register(http, gw, "Another client")
            stolen, stolen_verifier = await client.code_for(person)
            as_other = await other.exchange(stolen, stolen_verifier)
            assert as_other.status_code == 400 and as_other.json()["error"] == "invalid_grant"
            assert (await client.exchange(stolen, stolen_verifier)).status_code == 200  # the theft spent nothing


async def test_codes_tokens_and_consent_requests_expire_on_the_gateways_clock(tmp_path: Path) -> None:
    """Each lifetime is the default (oauth.code_ttl 60 s, consent_ttl 10 min, access 1 h, refresh 30 days), and it is
    the gateway's clock that passes them: no row is edited and no test waits."""
    clock = MovableClock.from_now()
    with oauth_gateway(tmp_path, clock=clock) as gw:
        async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as web, httpx2.AsyncClient(timeout=30) as http:
            person = Person(web, "ana")
            client = await RawClient.register(http, gw)

            _verifier, challenge = pkce()
            page = await person.consent_page(client.authorize_url(challenge))
            clock.advance(9 * 60)
            assert (await web.get(page.url)).status_code == 200  # still inside its ten minutes
            clock.advance(61)
            assert (await web.get(page.url)).status_code == 404
            late = await person.answer(page, decision="approve", grant="ana-agent")
            assert late.status_code == 404 and "location" not in late.headers

            code, verifier = await client.code_for(person)
            clock.advance(61)
            expired = await client.exchange(code, verifier)
            assert expired.status_code == 400 and expired.json()["error"] == "invalid_grant"

            tokens = await client.tokens(person)
            clock.advance(59 * 60)
            assert (await mcp_status(http, gw.mcp_url, tokens["access_token"])).status_code == 200
            clock.advance(61)
            refused = await mcp_status(http, gw.mcp_url, tokens["access_token"])
            assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["www-authenticate"]
            # The refresh token outlives it: the client gets a working access token without asking the person.
            rotated = await client.refresh(tokens["refresh_token"])
            assert rotated.status_code == 200
            assert (await mcp_status(http, gw.mcp_url, rotated.json()["access_token"])).status_code == 200

            clock.advance(30 * 24 * 3600)
            stale = await client.refresh(rotated.json()["refresh_token"])
            assert stale.status_code == 400 and stale.json()["error"] == "invalid_grant"
            # The static grant token keeps working beside OAuth, whatever the clock says.
            assert (await mcp_status(http, gw.mcp_url, gw.token)).status_code == 200


async def test_a_foreign_redirect_uri_or_resource_is_refused_before_anyone_is_asked(tmp_path: Path) -> None:
    with oauth_gateway(tmp_path) as gw:
        async with httpx2.AsyncClient(timeout=30) as http:
            client = await RawClient.register(http, gw)
            _verifier, challenge = pkce()
            foreign = client.authorize_url(challenge, redirect_uri="https://evil.example/steal")
            answer = await http.get(foreign)
            # Never sent to the foreign address: a plain 400 for the person's browser.
            assert answer.status_code == 400 and answer.json()["error"] == "invalid_request"
            assert "location" not in answer.headers
            for resource in ("https://evil.example/mcp", gw.base_url + "/api", gw.mcp_url + "/a/b", gw.mcp_url + "#x"):
                refused = await http.get(client.authorize_url(challenge, resource))
                assert refused.status_code == 302, resource
                query = redirected_query(refused)
                assert query["error"] == "invalid_target" and query["state"] == "st-123", resource
                assert query["iss"] == gw.base_url, resource  # RFC 9207: on errors too
            unknown = await http.get(client.authorize_url(challenge).replace(client.client_id, "no-such-client"))
            assert unknown.status_code == 400
            plain = await http.get(client.authorize_url(challenge, code_challenge_method="plain"))
            assert plain.status_code == 302 and redirected_query(plain)["error"] == "invalid_request"
            assert redirected_query(plain)["iss"] == gw.base_url
            assert count(gw, OAuthAuthorization) == 0


async def test_tokens_are_bound_to_their_resource_expire_and_cannot_be_forged(tmp_path: Path) -> None:
    with oauth_gateway(tmp_path) as gw:
        async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as web, httpx2.AsyncClient(timeout=30) as http:
            person = Person(web, "ana")
            client = await RawClient.register(http, gw)
            one = (await client.tokens(person, gw.mcp_url + "/imagegen"))["access_token"]
            assert (await mcp_status(http, gw.mcp_url + "/imagegen", one)).status_code == 200
            for elsewhere in (gw.mcp_url, gw.mcp_url + "/other"):
                refused = await mcp_status(http, elsewhere, one)
                assert refused.status_code == 401, elsewhere
                assert 'error="invalid_token"' in refused.headers["www-authenticate"]
            aggregate = (await client.tokens(person))["access_token"]
            assert (await mcp_status(http, gw.mcp_url, aggregate)).status_code == 200
            assert (await mcp_status(http, gw.mcp_url + "/imagegen", aggregate)).status_code == 401

            for forged in (aggregate[:-1] + ("x" if aggregate[-1] != "x" else "y"), "alko_" + "A" * 43, "alko_"):
                assert (await mcp_status(http, gw.mcp_url, forged)).status_code == 401, forged

            # The static grant token keeps working beside OAuth.
            assert (await mcp_status(http, gw.mcp_url, gw.token)).status_code == 200


async def test_a_reused_refresh_token_revokes_its_whole_family(tmp_path: Path) -> None:
    with oauth_gateway(tmp_path) as gw:
        async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as web, httpx2.AsyncClient(timeout=30) as http:
            client = await RawClient.register(http, gw)
            first = await client.tokens(Person(web, "ana"))
            rotated = await client.refresh(first["refresh_token"])
            assert rotated.status_code == 200
            newer = rotated.json()
            assert newer["refresh_token"] != first["refresh_token"]
            assert (await mcp_status(http, gw.mcp_url, newer["access_token"])).status_code == 200

            reused = await client.refresh(first["refresh_token"])
            assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
            assert (await mcp_status(http, gw.mcp_url, newer["access_token"])).status_code == 401
            assert (await client.refresh(newer["refresh_token"])).status_code == 400


async def test_revoking_the_grant_revokes_its_tokens(tmp_path: Path) -> None:
    with oauth_gateway(tmp_path) as gw:
        async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as web, httpx2.AsyncClient(timeout=30) as http:
            client = await RawClient.register(http, gw)
            tokens = await client.tokens(Person(web, "ana"))
            assert (await mcp_status(http, gw.mcp_url, tokens["access_token"])).status_code == 200
            async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as admin_web:
                admin = Person(admin_web, "root")
                await admin.sign_in()
                page = await admin_web.get("/grants")
                revoked = await admin_web.post("/grants/ana-agent/revoke", data={"csrf_token": csrf_in(page.text)})
                assert revoked.status_code == 303
            assert (await mcp_status(http, gw.mcp_url, tokens["access_token"])).status_code == 401
            assert (await client.refresh(tokens["refresh_token"])).status_code == 400


def _registration(redirect_uris: list[str], method: str = "none") -> dict[str, object]:
    return {
        "client_name": "Claude",
        "redirect_uris": redirect_uris,
        "token_endpoint_auth_method": method,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    }


async def test_registration_refuses_a_redirect_uri_a_metadata_document_could_not_have(tmp_path: Path) -> None:
    with oauth_gateway(tmp_path) as gw:
        async with httpx2.AsyncClient(timeout=30) as http:
            for uri in (
                "javascript:alert(1)//",
                "data:text/html,hi",
                "http://evil.example/cb",
                "https://claude.ai@evil.example/cb",
                "http://127.0.0.1@evil.example/cb",
            ):
                answer = await http.post(gw.base_url + "/register", json=_registration([REDIRECT_URI, uri]))
                assert answer.status_code == 400, uri
                assert answer.json()["error"] == "invalid_redirect_uri", uri
            assert count(gw, OAuthClient) == 0
            for uri in ("https://app.example/cb", "com.example.app:/cb", REDIRECT_URI):
                answer = await http.post(gw.base_url + "/register", json=_registration([uri]))
                assert answer.status_code == 201, uri


async def test_a_confidential_client_authenticates_with_the_secret_it_was_given_which_is_stored_as_an_hmac(
    tmp_path: Path,
) -> None:
    with oauth_gateway(tmp_path) as gw:
        async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as web, httpx2.AsyncClient(timeout=30) as http:
            person = Person(web, "ana")
            for method in ("client_secret_post", "client_secret_basic"):
                registered = await http.post(gw.base_url + "/register", json=_registration([REDIRECT_URI], method))
                assert registered.status_code == 201
                client_id, secret = registered.json()["client_id"], registered.json()["client_secret"]
                with Session(gw.state.runtime.engine) as session:
                    row = session.exec(select(OAuthClient).where(OAuthClient.client_id == client_id)).one()
                stored = json.dumps(row.client_metadata)
                assert secret not in stored and "client_secret" not in row.client_metadata, method

                client = RawClient(http, gw, client_id)
                code, verifier = await client.code_for(person)
                exchange = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier}
                exchange["redirect_uri"] = REDIRECT_URI
                stored_hmac = gw.state.runtime.hasher.hash(secret)
                other = "client_secret_basic" if method == "client_secret_post" else "client_secret_post"
                for wrong, how in (("not-the-secret", method), (stored_hmac, method), (secret, other), ("", method)):
                    refused = await post_with_secret(client, "/token", exchange, wrong, how)
                    assert refused.status_code == 401, (method, how)
                    assert refused.json()["error"] == "invalid_client", (method, how)
                tokens = await post_with_secret(client, "/token", exchange, secret, method)  # the code is still unused
                assert tokens.status_code == 200, (method, tokens.text)
                access = tokens.json()["access_token"]
                assert (await mcp_status(http, gw.mcp_url, access)).status_code == 200

                revocation = {"token": access}
                assert (await post_with_secret(client, "/revoke", revocation, "wrong", method)).status_code == 401
                assert (await mcp_status(http, gw.mcp_url, access)).status_code == 200
                assert (await post_with_secret(client, "/revoke", revocation, secret, method)).status_code == 200
                assert (await mcp_status(http, gw.mcp_url, access)).status_code == 401


async def post_with_secret(
    client: RawClient, path: str, form: dict[str, str], secret: str, how: str
) -> httpx2.Response:
    """A confidential client's request, its secret in the form or in HTTP Basic (RFC 6749 section 2.3.1)."""
    if how == "client_secret_post":
        form = {**form, "client_secret": secret}
        headers = {}
    else:
        headers = {"Authorization": "Basic " + base64.b64encode(f"{client.client_id}:{secret}".encode()).decode()}
    return await client.http.post(
        client.gw.base_url + path, data={"client_id": client.client_id, **form}, headers=headers
    )
