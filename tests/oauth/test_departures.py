"""A person who leaves takes their apps' OAuth access with them: deactivation revokes every token acting as a grant
they own and forgets their consents, in the same transaction; reactivation brings back none of it."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest
from sqlmodel import Session, select

from service.db.engine import unit_of_work
from service.oauth.models import OAuthConsent, OAuthToken
from service.users.departures import deactivate_user, reactivate_user
from tests.gateway.harness import mcp_client
from tests.oauth.helpers import CALL, MCP_HEADERS, Person, RawClient, mcp_status, oauth_gateway

pytestmark = pytest.mark.anyio


async def test_deactivating_a_person_cuts_off_their_apps_and_reactivating_does_not_restore_them(tmp_path: Path) -> None:
    with oauth_gateway(tmp_path) as gw:
        engine = gw.state.runtime.engine
        async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as web, httpx2.AsyncClient(timeout=30) as http:
            client = await RawClient.register(http, gw)
            tokens = await client.tokens(Person(web, "ana"))
            async with mcp_client(gw.mcp_url, tokens["access_token"]) as agent:
                assert not (await agent.call_tool("get_model_capabilities", {})).is_error
            assert len(gw.upstream_calls()) == 1

            with unit_of_work(engine) as session:
                deactivate_user(session, "ana", actor="user:root")

            refused = await mcp_status(http, gw.mcp_url, tokens["access_token"])
            assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["www-authenticate"]
            call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": CALL}
            headers = {**MCP_HEADERS, "Authorization": f"Bearer {tokens['access_token']}"}
            assert (await http.post(gw.mcp_url, json=call, headers=headers)).status_code == 401
            refreshed = await client.refresh(tokens["refresh_token"])
            assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
            with Session(engine) as session:
                assert session.exec(select(OAuthConsent)).all() == []
                assert all(row.revoked_at is not None for row in session.exec(select(OAuthToken)).all())

            with unit_of_work(engine) as session:
                assert reactivate_user(session, "ana", actor="user:root") == ["ana-agent"]
            assert (await mcp_status(http, gw.mcp_url, tokens["access_token"])).status_code == 401
            assert (await client.refresh(tokens["refresh_token"])).status_code == 400
        assert len(gw.upstream_calls()) == 1  # nothing ran after the deactivation
