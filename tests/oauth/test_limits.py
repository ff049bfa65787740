"""What a hostile client could grow without bound: registrations are counted per address in a window on the gateway's
clock, and expired or revoked authorizations and tokens are swept away while everything that can still work stays."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx2
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from service.oauth.models import ACCESS, REFRESH, OAuthAuthorization, OAuthClient, OAuthToken
from tests.clock import MovableClock
from tests.gateway.harness import RunningGateway
from tests.gateway.test_gateway import db_url
from tests.oauth.helpers import REDIRECT_URI, Person, RawClient, mcp_status, oauth_gateway, pkce

pytestmark = pytest.mark.anyio
REGISTRATION = {"client_name": "Flood", "redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none"}


def clients(gw: RunningGateway) -> int:
    with Session(gw.state.runtime.engine) as session:
        return len(session.exec(select(OAuthClient)).all())


async def test_registrations_per_address_are_bounded_in_a_window_on_the_gateways_clock(tmp_path: Path) -> None:
    clock = MovableClock.from_now()
    with oauth_gateway(tmp_path, clock=clock, oauth={"registrations_per_address": 3}) as gw:
        async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as http:
            for _ in range(3):
                assert (await http.post("/register", json=REGISTRATION)).status_code == 201
            refused = await http.post("/register", json=REGISTRATION)
            assert refused.status_code == 429
            assert refused.json()["error"] == "too_many_requests"
            assert "too many client registrations from this address" in refused.json()["error_description"]
            assert 3000 < int(refused.headers["retry-after"]) <= 3600
            assert clients(gw) == 3

            clock.advance(3600)  # the oldest registration leaves the hour
            assert (await http.post("/register", json=REGISTRATION)).status_code == 201
            assert clients(gw) == 4


async def rows(gw: RunningGateway) -> tuple[set[int], dict[int, tuple[int, str]]]:
    """(authorization ids, token id -> (authorization id, kind)) as stored now."""
    with Session(gw.state.runtime.engine) as session:
        authorizations = {a.id for a in session.exec(select(OAuthAuthorization)).all() if a.id is not None}
        tokens = session.exec(select(OAuthToken).order_by(col(OAuthToken.id))).all()
        return authorizations, {t.id: (t.authorization_id, t.kind) for t in tokens if t.id is not None}


async def swept(gw: RunningGateway, gone: set[int]) -> tuple[set[int], dict[int, tuple[int, str]]]:
    """The rows once the authorizations in `gone` were deleted: the sweep that follows a clock move, within a
    second of real time."""
    with anyio.fail_after(10):
        while True:
            authorizations, tokens = await rows(gw)
            if not authorizations & gone:
                return authorizations, tokens
            await anyio.sleep(0.05)


async def test_the_sweep_deletes_dead_authorizations_and_tokens_and_keeps_everything_live(
    engine: Engine, tmp_path: Path
) -> None:
    clock = MovableClock.from_now()
    with oauth_gateway(tmp_path, db_url(engine), clock=clock) as gw:
        async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as web, httpx2.AsyncClient(timeout=30) as http:
            person = Person(web, "ana")
            client = await RawClient.register(http, gw)
            live = await client.tokens(person)
            before, _ = await rows(gw)
            revoked = await client.tokens(person)
            revocation = {"client_id": client.client_id, "token": revoked["access_token"]}
            assert (await http.post(gw.base_url + "/revoke", data=revocation)).status_code == 200
            _code, _verifier = await client.code_for(person)  # a code never exchanged
            _unused, challenge = pkce()
            pending = await person.consent_page(client.authorize_url(challenge))  # a request never answered
            authorizations, tokens = await rows(gw)
            (live_id,) = before
            revoked_id, unused_code_id, pending_id = sorted(authorizations - before)
            assert len(tokens) == 4

            # Past the code's minute, inside the consent request's ten minutes and the access token's hour.
            clock.advance(61)
            authorizations, tokens = await swept(gw, {revoked_id, unused_code_id})
            assert authorizations == {live_id, pending_id}
            assert sorted(tokens.values()) == [(live_id, ACCESS), (live_id, REFRESH)]
            assert (await mcp_status(http, gw.mcp_url, live["access_token"])).status_code == 200
            assert (await web.get(pending.url)).status_code == 200  # still answerable

            # Past the hour: the access token and the consent request go; the refresh token and its family stay.
            clock.advance(3600)
            authorizations, tokens = await swept(gw, {pending_id})
            assert authorizations == {live_id}
            assert list(tokens.values()) == [(live_id, REFRESH)]
            rotated = await client.refresh(live["refresh_token"])
            assert rotated.status_code == 200
            assert (await mcp_status(http, gw.mcp_url, rotated.json()["access_token"])).status_code == 200
