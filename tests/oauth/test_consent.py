"""The consent page: who asks and where the answer goes, verified or not; the person picks one of their own grants
(or, with the creator role, a new grant that reaches nothing yet); a denial, a forged post and a framing attempt."""

from __future__ import annotations

import re
from pathlib import Path

import httpx2
import pytest
from mcp.shared.auth import OAuthClientInformationFull
from pydantic import AnyUrl
from sqlmodel import Session, col, select

from service.db.engine import unit_of_work
from service.grants.service import create_grant, set_upstreams
from service.oauth.client_metadata import ClientMetadataSettings, MetadataDocuments
from service.oauth.models import OAuthAuthorization, OAuthToken
from tests.conftest import skip_or_fail
from tests.gateway.harness import RunningGateway
from tests.oauth.helpers import (
    CALL,
    MCP_HEADERS,
    REDIRECT_URI,
    Person,
    RawClient,
    csrf_in,
    mcp_status,
    oauth_gateway,
    pkce,
)
from tests.oauth.metadata_server import make_certificate, metadata_server

pytestmark = pytest.mark.anyio
DOCUMENT_URL = "https://app.example/oauth/client.json"


async def test_the_page_shows_the_client_and_a_denial_tells_the_client_nothing_more(tmp_path: Path) -> None:
    with oauth_gateway(tmp_path) as gw:
        async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as web, httpx2.AsyncClient(timeout=30) as http:
            person = Person(web, "ana")
            client = await RawClient.register(http, gw, name="Sketchy <b>tool</b>")
            _verifier, challenge = pkce()
            page = await person.consent_page(client.authorize_url(challenge))
            assert "Sketchy &lt;b&gt;tool&lt;/b&gt;" in page.text
            assert '<strong id="redirect-host">127.0.0.1:9</strong>' in page.text
            assert 'id="client-trust">unverified<' in page.text
            assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
            assert "form-action 'self' http://127.0.0.1:9" in page.headers["content-security-policy"]
            assert page.headers["x-frame-options"] == "DENY"

            forged = await web.post(page.url.path, data={"decision": "approve", "grant": "ana-agent"})
            assert forged.status_code == 403  # no CSRF token: nothing decided
            denied = await person.answer(page, decision="deny")
            assert denied.status_code == 303
            location = denied.headers["location"]
            assert location.startswith(REDIRECT_URI + "?")
            assert "error=access_denied" in location and "state=st-123" in location
            assert f"iss={gw.base_url.replace(':', '%3A').replace('/', '%2F')}" in location
            assert "code=" not in location
            again = await person.answer(page, decision="approve", grant="ana-agent")
            assert again.status_code == 404  # answered once, for good
            with Session(gw.state.runtime.engine) as session:
                assert session.exec(select(OAuthToken)).all() == []


async def test_a_person_may_pick_only_their_own_grant_and_only_the_creator_role_makes_one(tmp_path: Path) -> None:
    with oauth_gateway(tmp_path) as gw:
        async with httpx2.AsyncClient(timeout=30) as http:
            client = await RawClient.register(http, gw)
            _verifier, challenge = pkce()
            async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as web:
                ana = Person(web, "ana")
                page = await ana.consent_page(client.authorize_url(challenge))
                assert "root-agent" not in page.text and 'name="new_grant"' not in page.text
                refused = await ana.answer(page, decision="approve", grant="root-agent")
                assert refused.status_code == 403
                refused = await ana.answer(page, decision="approve", new_grant="ana-made")
                assert refused.status_code == 403
            with Session(gw.state.runtime.engine) as session:
                pending = session.exec(select(OAuthAuthorization)).one()
                assert pending.decided_at is None and pending.code_hash is None  # still waiting for an answer

            # root (an admin, the default creator role) makes a fresh grant at consent.
            verifier2, challenge2 = pkce()
            async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as web:
                root = Person(web, "root")
                query = await root.approve(client.authorize_url(challenge2), new_grant="connector-x", grant="")
            tokens = (await client.exchange(query["code"], verifier2)).json()
            access = tokens["access_token"]
            opened = await mcp_status(http, gw.mcp_url, access)
            assert opened.status_code == 200
            session_headers = {
                **MCP_HEADERS,
                "Authorization": f"Bearer {access}",
                "mcp-session-id": opened.headers["mcp-session-id"],
                "mcp-protocol-version": "2025-11-25",
            }
            listed = await http.post(
                gw.mcp_url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=session_headers
            )
            # A grant made at consent reaches no upstream yet: only Airlock's own tool is listed.
            assert [t["name"] for t in listed.json()["result"]["tools"]] == ["airlock_approval_status"]
            called = await http.post(
                gw.mcp_url,
                json={"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": CALL},
                headers=session_headers,
            )
            assert called.json()["result"]["isError"] is True
            assert gw.upstream_calls() == []

            with unit_of_work(gw.state.runtime.engine) as session:  # an admin assigns it an upstream
                set_upstreams(session, "connector-x", ["imagegen"], actor="user:root", known_upstreams=["imagegen"])
            listed = await http.post(
                gw.mcp_url, json={"jsonrpc": "2.0", "id": 4, "method": "tools/list"}, headers=session_headers
            )
            assert "get_model_capabilities" in [t["name"] for t in listed.json()["result"]["tools"]]


class MetadataDocumentStub:
    """A test double for the metadata-document fetcher only (service/oauth/client_metadata.py): answers one fixed,
    already-checked document for its URL, and nothing for any other client_id."""

    def __init__(self, url: str, claims: str | None = None, redirect_uris: tuple[str, ...] = (REDIRECT_URI,)) -> None:
        self.url = url
        self.claims = claims or url
        self.redirect_uris = redirect_uris
        self.asked: list[str] = []

    async def __call__(self, client_id: str) -> OAuthClientInformationFull | None:
        self.asked.append(client_id)
        if client_id != self.url:
            return None
        return OAuthClientInformationFull(
            client_id=self.claims,
            client_name="Documented App",
            redirect_uris=[AnyUrl(uri) for uri in self.redirect_uris],
            token_endpoint_auth_method="none",
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
        )


async def test_a_client_id_metadata_document_is_resolved_through_the_seam_and_shown_verified(tmp_path: Path) -> None:
    stub = MetadataDocumentStub(DOCUMENT_URL)
    with oauth_gateway(tmp_path, client_metadata=stub) as gw:
        async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as web, httpx2.AsyncClient(timeout=30) as http:
            metadata = (await http.get(gw.base_url + "/.well-known/oauth-authorization-server")).json()
            assert metadata["client_id_metadata_document_supported"] is True
            client = RawClient(http, gw, DOCUMENT_URL)
            verifier, challenge = pkce()
            person = Person(web, "ana")
            page = await person.consent_page(client.authorize_url(challenge))
            assert 'id="client-trust">metadata from app.example<' in page.text and "Documented App" in page.text
            assert 'id="redirect-warning"' not in page.text  # a loopback answer stays on the person's machine
            answer = await person.answer(page, decision="approve", grant="ana-agent")
            code = answer.headers["location"].split("code=")[1].split("&")[0]
            tokens = await client.exchange(code, verifier)
            assert tokens.status_code == 200
            assert (await mcp_status(http, gw.mcp_url, tokens.json()["access_token"])).status_code == 200
            assert DOCUMENT_URL in stub.asked

            other = RawClient(http, gw, "https://other.example/client.json")
            assert (await http.get(other.authorize_url(challenge))).status_code == 400


async def test_a_metadata_document_fetched_over_tls_by_the_real_fetcher_is_shown_verified(tmp_path: Path) -> None:
    """The fetcher Airlock runs in production (MetadataDocuments), not a double: the document comes over real TLS
    from a host name the test resolves to loopback (the loopback switch on), and a document that names another
    client_id is refused before any consent page exists."""
    contexts = make_certificate(tmp_path, "app.test")
    if contexts is None:
        skip_or_fail("the openssl command is not installed")
        return
    server_tls, trusts_only_it = contexts
    with metadata_server(server_tls) as documents:
        honest = f"https://app.test:{documents.port}/client.json"
        liar = f"https://app.test:{documents.port}/liar.json"
        documents.serve_json("/client.json", _document(honest, "Fetched App"))
        documents.serve_json("/liar.json", _document("https://victim.example/client.json", "Victim"))
        fetcher = MetadataDocuments(
            ClientMetadataSettings(allow_loopback_metadata=True), resolve=_to_loopback, verify=trusts_only_it
        )
        with oauth_gateway(tmp_path, client_metadata=fetcher) as gw:
            async with (
                httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as web,
                httpx2.AsyncClient(timeout=30) as http,
            ):
                verifier, challenge = pkce()
                refused = await http.get(RawClient(http, gw, liar).authorize_url(challenge))
                assert refused.status_code == 400 and "location" not in refused.headers

                client = RawClient(http, gw, honest)
                person = Person(web, "ana")
                page = await person.consent_page(client.authorize_url(challenge))
                assert f'id="client-trust">metadata from app.test:{documents.port}<' in page.text
                assert "Fetched App" in page.text
                answer = await person.answer(page, decision="approve", grant="ana-agent")
                code = answer.headers["location"].split("code=")[1].split("&")[0]
                tokens = await client.exchange(code, verifier)
                assert tokens.status_code == 200
                assert (await mcp_status(http, gw.mcp_url, tokens.json()["access_token"])).status_code == 200
        assert {seen.path for seen in documents.requests} == {"/client.json", "/liar.json"}


def _document(client_id: str, name: str) -> dict[str, object]:
    return {
        "client_id": client_id,
        "client_name": name,
        "redirect_uris": [REDIRECT_URI],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }


async def _to_loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


async def test_a_document_naming_another_client_id_is_refused(tmp_path: Path) -> None:
    stub = MetadataDocumentStub(DOCUMENT_URL, claims="https://victim.example/client.json")
    with oauth_gateway(tmp_path, client_metadata=stub) as gw:
        async with httpx2.AsyncClient(timeout=30) as http:
            _verifier, challenge = pkce()
            answer = await http.get(RawClient(http, gw, DOCUMENT_URL).authorize_url(challenge))
            assert answer.status_code == 400 and "location" not in answer.headers


async def test_the_grants_page_lists_apps_to_their_person_and_admins_and_either_revokes_one(tmp_path: Path) -> None:
    with oauth_gateway(tmp_path) as gw:
        async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as web, httpx2.AsyncClient(timeout=30) as http:
            client = await RawClient.register(http, gw, name="Listed App")
            tokens = await client.tokens(Person(web, "ana"))
            listing = await web.get("/grants")
            row = listing.text.split('id="oauth-consents"')[1]
            assert "Listed App" in row and "unverified" in row and "ana-agent" in row
            form = re.search(r'action="(/grants/consents/\d+/revoke)"', row)
            assert form is not None

            async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as admin_web:
                await Person(admin_web, "root").sign_in()
                page = await admin_web.get("/grants")
                assert "Listed App" in page.text and form.group(1) in page.text  # an admin sees and may revoke it
            async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as other_web:
                vic = Person(other_web, "vic")
                await vic.sign_in()
                page = await other_web.get("/grants")
                assert "ana-agent" in page.text  # vic sees the grants, as before
                assert "Listed App" not in page.text and 'id="oauth-consents"' not in page.text  # not ana's apps
                refused = await other_web.post(form.group(1), data={"csrf_token": csrf_in(page.text)})
                assert refused.status_code == 403
            assert (await mcp_status(http, gw.mcp_url, tokens["access_token"])).status_code == 200

            revoked = await web.post(form.group(1), data={"csrf_token": csrf_in(listing.text)})
            assert revoked.status_code == 303
            assert (await mcp_status(http, gw.mcp_url, tokens["access_token"])).status_code == 401
            assert (await client.refresh(tokens["refresh_token"])).status_code == 400
            assert 'id="oauth-consents"' not in (await web.get("/grants")).text


async def test_consenting_again_with_another_grant_revokes_what_the_app_held_for_the_first(tmp_path: Path) -> None:
    with oauth_gateway(tmp_path) as gw:
        with unit_of_work(gw.state.runtime.engine) as session:
            create_grant(session, gw.state.runtime.hasher, name="ana-second", actor="test", owner="ana")
        async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as web, httpx2.AsyncClient(timeout=30) as http:
            client = await RawClient.register(http, gw, name="Twice App")
            person = Person(web, "ana")
            first = await client.tokens(person)  # acts as ana-agent
            pending_code, pending_verifier = await client.code_for(person)  # ana-agent again, not exchanged yet
            verifier, challenge = pkce()
            query = await person.approve(client.authorize_url(challenge), grant="ana-second")
            second = (await client.exchange(query["code"], verifier)).json()

            assert (await mcp_status(http, gw.mcp_url, first["access_token"])).status_code == 401
            assert (await client.refresh(first["refresh_token"])).status_code == 400
            assert (await client.exchange(pending_code, pending_verifier)).status_code == 400
            assert (await mcp_status(http, gw.mcp_url, second["access_token"])).status_code == 200

            listing = await web.get("/grants")
            row = listing.text.split('id="oauth-consents"')[1].split("</section>")[0]
            assert "ana-second" in row and "ana-agent" not in row
            forms = re.findall(r'action="(/grants/consents/\d+/revoke)"', row)
            assert len(forms) == 1  # the one consent lists every live token of the app
            revoked = await web.post(forms[0], data={"csrf_token": csrf_in(listing.text)})
            assert revoked.status_code == 303
            assert (await mcp_status(http, gw.mcp_url, second["access_token"])).status_code == 401
            with Session(gw.state.runtime.engine) as session:
                live = session.exec(select(OAuthToken).where(col(OAuthToken.revoked_at).is_(None))).all()
            assert live == []


async def test_a_code_approved_before_its_consent_was_revoked_is_refused_afterwards(tmp_path: Path) -> None:
    with oauth_gateway(tmp_path) as gw:
        async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as web, httpx2.AsyncClient(timeout=30) as http:
            client = await RawClient.register(http, gw, name="Revoked App")
            code, verifier = await client.code_for(Person(web, "ana"))  # approved, not yet exchanged
            listing = await web.get("/grants")
            form = re.search(r'action="(/grants/consents/\d+/revoke)"', listing.text)
            assert form is not None
            revoked = await web.post(form.group(1), data={"csrf_token": csrf_in(listing.text)})
            assert revoked.status_code == 303
            answer = await client.exchange(code, verifier)
            assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
            assert count_tokens(gw) == 0


def count_tokens(gw: RunningGateway) -> int:
    with Session(gw.state.runtime.engine) as session:
        return len(session.exec(select(OAuthToken)).all())


async def test_the_page_names_the_documents_host_and_warns_when_the_answer_goes_elsewhere(tmp_path: Path) -> None:
    elsewhere, own = "https://elsewhere.example/cb", "https://app.example/cb"
    stub = MetadataDocumentStub(DOCUMENT_URL, redirect_uris=(REDIRECT_URI, elsewhere, own))
    with oauth_gateway(tmp_path, client_metadata=stub) as gw:
        async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as web, httpx2.AsyncClient(timeout=30) as http:
            client = RawClient(http, gw, DOCUMENT_URL)
            person = Person(web, "ana")
            _verifier, challenge = pkce()
            page = await person.consent_page(client.authorize_url(challenge, redirect_uri=elsewhere))
            assert page.text.index('id="client-host">app.example<') < page.text.index('id="client-name"')
            assert 'id="client-trust">metadata from app.example<' in page.text
            warning = re.search(r'id="redirect-warning">([^<]*)<', page.text)
            assert warning is not None and "elsewhere.example" in warning.group(1) and "app.example" in warning.group(1)
            same_host = await person.consent_page(client.authorize_url(challenge, redirect_uri=own))
            assert '<strong id="redirect-host">app.example</strong>' in same_host.text
            assert 'id="redirect-warning"' not in same_host.text
