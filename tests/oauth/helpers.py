"""OAuth against a running Airlock: a person who signs in through the web UI's real forms and answers the real
consent form, and a plain OAuth client (DCR, PKCE S256, the token endpoint) for the refusals the SDK's client would
never send."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2

from service.db.engine import unit_of_work
from service.grants.service import create_grant
from tests.gateway.harness import RunningGateway, free_port, run_gateway
from tests.webui.conftest import add_people, password_of

REDIRECT_URI = "http://127.0.0.1:9/callback"
"""The client's callback: never fetched, its query is read off the consent's last redirect."""
ALLOW_ALL = 'version: "1"\ndefault: allow\n'
CALL = {"name": "get_model_capabilities", "arguments": {}}


@contextmanager
def oauth_gateway(tmp_path: Path, database_url: str | None = None, **overrides: Any) -> Iterator[RunningGateway]:
    """A running Airlock with OAuth on (its issuer is its own address), root/ana/vic with known passwords, and
    grants owned by ana ("ana-agent", every upstream) and root ("root-agent")."""
    port = free_port()
    with run_gateway(
        tmp_path,
        database_url=database_url or f"sqlite:///{tmp_path}/airlock.db",
        policy=overrides.pop("policy", ALLOW_ALL),
        port=port,
        oauth={"issuer": f"http://127.0.0.1:{port}", **overrides.pop("oauth", {})},
        **overrides,
    ) as gw:
        add_people(gw)
        with unit_of_work(gw.state.runtime.engine) as session:
            for owner in ("ana", "root"):
                create_grant(session, gw.state.runtime.hasher, name=f"{owner}-agent", actor="test", owner=owner)
        yield gw


def csrf_in(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, "the page has no CSRF field"
    return found.group(1)


def hidden_next(html: str) -> str:
    found = re.search(r'name="next" value="([^"]*)"', html)
    assert found is not None, "the sign-in page has no next field"
    return found.group(1).replace("&amp;", "&")


@dataclass
class Person:
    """Someone at a browser: cookies kept, redirects followed by hand so each step is seen."""

    web: httpx2.AsyncClient
    username: str

    async def sign_in(self) -> None:
        form = await self.web.get("/login")
        data = {"username": self.username, "password": password_of(self.username), "csrf_token": csrf_in(form.text)}
        signed = await self.web.post("/login", data=data)
        assert signed.status_code == 303, signed.text[:300]

    async def consent_page(self, authorize_url: str) -> httpx2.Response:
        """Open the app's authorize link; sign in through the real sign-in form when asked; land on the consent page."""
        answer = await self.web.get(authorize_url)
        assert answer.status_code == 302, (answer.status_code, answer.text[:300])
        consent = answer.headers["location"]
        answer = await self.web.get(consent)
        if answer.status_code == 303 and answer.headers["location"].startswith("/login"):
            form = await self.web.get(answer.headers["location"])
            signed = await self.web.post(
                "/login",
                data={
                    "username": self.username,
                    "password": password_of(self.username),
                    "csrf_token": csrf_in(form.text),
                    "next": hidden_next(form.text),
                },
            )
            assert signed.status_code == 303, signed.text[:300]
            assert signed.headers["location"] == urlsplit(consent).path  # back to the consent page
            answer = await self.web.get(signed.headers["location"])
        assert answer.status_code == 200, (answer.status_code, answer.text[:300])
        return answer

    async def answer(self, page: httpx2.Response, **form: str) -> httpx2.Response:
        action = re.search(r'<form method="post" action="(/oauth/consent/[^"]+)"', page.text)
        assert action is not None
        return await self.web.post(action.group(1), data={"csrf_token": csrf_in(page.text), **form})

    async def approve(self, authorize_url: str, **form: str) -> dict[str, str]:
        """Allow the app; the query the app's redirect URI receives."""
        page = await self.consent_page(authorize_url)
        answer = await self.answer(page, decision="approve", **({"grant": f"{self.username}-agent"} | form))
        assert answer.status_code == 303, (answer.status_code, answer.text[:300])
        return redirected_query(answer)


def redirected_query(answer: httpx2.Response) -> dict[str, str]:
    location = answer.headers["location"]
    assert location.startswith(REDIRECT_URI + "?"), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


@dataclass
class RawClient:
    """A public OAuth client registered by DCR, speaking the endpoints with plain HTTP."""

    http: httpx2.AsyncClient
    gw: RunningGateway
    client_id: str

    @classmethod
    async def register(cls, http: httpx2.AsyncClient, gw: RunningGateway, name: str = "Raw client") -> RawClient:
        answer = await http.post(
            gw.base_url + "/register",
            json={
                "client_name": name,
                "redirect_uris": [REDIRECT_URI],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
            },
        )
        assert answer.status_code == 201, answer.text
        return cls(http, gw, answer.json()["client_id"])

    def authorize_url(self, challenge: str, resource: str | None = None, **extra: str) -> str:
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": REDIRECT_URI,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "st-123",
            "resource": resource or self.gw.mcp_url,
            **extra,
        }
        return f"{self.gw.base_url}/authorize?{urlencode(params)}"

    async def token(self, **form: str) -> httpx2.Response:
        return await self.http.post(self.gw.base_url + "/token", data={"client_id": self.client_id, **form})

    async def code_for(self, person: Person, resource: str | None = None) -> tuple[str, str]:
        """(code, verifier) for a fresh authorization the person allowed."""
        verifier, challenge = pkce()
        query = await person.approve(self.authorize_url(challenge, resource))
        return query["code"], verifier

    async def tokens(self, person: Person, resource: str | None = None) -> dict[str, Any]:
        code, verifier = await self.code_for(person, resource)
        answer = await self.exchange(code, verifier)
        assert answer.status_code == 200, answer.text
        tokens: dict[str, Any] = answer.json()
        return tokens

    async def exchange(self, code: str, verifier: str) -> httpx2.Response:
        return await self.token(
            grant_type="authorization_code", code=code, code_verifier=verifier, redirect_uri=REDIRECT_URI
        )

    async def refresh(self, refresh_token: str) -> httpx2.Response:
        return await self.token(grant_type="refresh_token", refresh_token=refresh_token)


INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def mcp_status(http: httpx2.AsyncClient, url: str, token: str | None) -> httpx2.Response:
    """An MCP handshake with this bearer token: 200 when it is let in."""
    headers = dict(MCP_HEADERS)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return await http.post(url, json=INIT, headers=headers)
