"""A second, independent OAuth client: the TypeScript SDK's (@modelcontextprotocol/client, installed by `make install`
with the Inspector) discovers Airlock's authorization server, registers itself, is allowed by a person on the real
sign-in and consent forms, calls a tool as that person's grant, has a held call approved by someone else (never by
the person who consented), refreshes when the gateway's clock passes its access token's life, and is cut off when
the person revokes the consent on the Grants page."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import anyio
import httpx2
import pytest

from tests.clients.conftest import CHECKOUT
from tests.clock import MovableClock
from tests.conftest import skip_or_fail
from tests.gateway.harness import approve_via_api
from tests.gateway.test_holds import DEAR, pending_request_id
from tests.oauth.helpers import REDIRECT_URI, Person, csrf_in, mcp_status, oauth_gateway
from tests.policy.helpers import fixture

pytestmark = pytest.mark.anyio
NODE_CLIENTS = CHECKOUT / "tests" / "clients" / "node"
TS_CLIENT = NODE_CLIENTS / "oauth_client.mjs"
ACCESS_TOKEN_LIFE = 3600  # oauth.access_token_ttl's default


@pytest.fixture
def node() -> str:
    found = shutil.which("node")
    if found is None:
        skip_or_fail("the TypeScript SDK's client needs Node.js (`node`), which is not on PATH")
    if not (NODE_CLIENTS / "node_modules" / "@modelcontextprotocol" / "client").is_dir():
        skip_or_fail("@modelcontextprotocol/client is not installed: `make install` installs it (npm ci)")
    assert found is not None
    return found


class TsClient:
    """oauth_client.mjs in a child process: commands in on stdin, one JSON event a line out on stdout."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        assert process.stdout is not None and process.stdin is not None
        self._out = process.stdout
        self._in = process.stdin

    async def event(self, timeout: float = 60) -> dict[str, Any]:
        with anyio.fail_after(timeout):
            line = await anyio.to_thread.run_sync(self._out.readline, abandon_on_cancel=True)
        assert line, f"the client exited with status {self.process.wait()}"
        parsed: dict[str, Any] = json.loads(line)
        assert parsed["event"] != "error", parsed
        return parsed

    def send(self, command: str, **fields: Any) -> None:
        self._in.write(json.dumps({"command": command, **fields}) + "\n")
        self._in.flush()

    async def ask(self, command: str, **fields: Any) -> dict[str, Any]:
        self.send(command, **fields)
        return await self.event()

    async def call(self, tool: str, arguments: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The events one call printed: any new authorization the SDK started, then its result or failure."""
        self.send("call", tool=tool, arguments=arguments or {})
        events = [await self.event()]
        while events[-1]["event"] not in ("result", "call_failed"):
            events.append(await self.event())
        return events

    async def tokens(self) -> dict[str, Any]:
        answer = await self.ask("tokens")
        assert answer["event"] == "tokens"
        return answer


@asynccontextmanager
async def ts_client(node: str, mcp_url: str) -> AsyncIterator[TsClient]:
    process = subprocess.Popen(
        [node, str(TS_CLIENT), mcp_url, REDIRECT_URI],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=NODE_CLIENTS,
    )
    try:
        yield TsClient(process)
    finally:
        try:  # after "exit" it ends by itself; after a failure it may be stuck in a call
            await anyio.to_thread.run_sync(lambda: process.communicate(timeout=10))
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


async def test_the_typescript_sdk_client_signs_in_is_held_refreshes_and_is_revoked(node: str, tmp_path: Path) -> None:
    clock = MovableClock.from_now()
    with oauth_gateway(tmp_path, policy=fixture("airlock-demo.yaml"), clock=clock) as gw:
        async with ts_client(node, gw.mcp_url) as ts, httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as web:
            # Discovery and registration happen before the first line: the client was sent to /authorize.
            authorize = await ts.event()
            assert authorize["event"] == "authorize"
            assert urlsplit(authorize["url"]).path == "/authorize"
            assert "code_challenge_method=S256" in authorize["url"] and "resource=" in authorize["url"]
            ana = Person(web, "ana")
            query = await ana.approve(authorize["url"])
            assert query["iss"] == gw.base_url
            assert (await ts.ask("authorized", query=urlencode(query)))["event"] == "connected"

            first = await ts.call("get_model_capabilities")
            assert [e["event"] for e in first] == ["result"] and not first[0]["isError"]
            issued = await ts.tokens()
            assert issued["access_token"].startswith("alko_") and issued["refresh_token"].startswith("alkr_")

            # A held call: ana consented, so the client's calls are hers, and she may not approve them herself.
            ts.send("call", tool="generate_image", arguments=DEAR)
            request_id = await pending_request_id(gw)
            async with gw.api("ana") as api:
                assert (await approve_via_api(api, request_id)).status_code == 403
            assert gw.upstream_calls("generate_image") == []
            async with gw.api("root") as api:
                assert (await approve_via_api(api, request_id)).status_code == 200
            held = await ts.event()
            assert held["event"] == "result" and not held["isError"], held
            assert len(gw.upstream_calls("generate_image")) == 1

            # The gateway's clock passes the access token's life: the server answers 401 invalid_token, and the SDK
            # refreshes with its refresh token and sends the call again.
            clock.advance(ACCESS_TOKEN_LIFE + 1)
            async with httpx2.AsyncClient(timeout=30) as plain:
                stale = await mcp_status(plain, gw.mcp_url, issued["access_token"])
            assert stale.status_code == 401 and 'error="invalid_token"' in stale.headers["www-authenticate"]
            refreshed = await ts.call("get_model_capabilities")
            assert [e["event"] for e in refreshed] == ["result"] and not refreshed[0]["isError"]
            rotated = await ts.tokens()
            assert rotated["access_token"] != issued["access_token"]
            assert rotated["refresh_token"] != issued["refresh_token"]
            assert len(gw.upstream_calls("get_model_capabilities")) == 2

            # ana revokes the consent on the Grants page: the next call fails, and nothing runs upstream.
            listing = await web.get("/grants")
            form = re.search(r'action="(/grants/consents/\d+/revoke)"', listing.text.split('id="oauth-consents"')[1])
            assert form is not None
            revoked = await web.post(form.group(1), data={"csrf_token": csrf_in(listing.text)})
            assert revoked.status_code == 303
            ran = len(gw.upstream_calls())
            cut_off = await ts.call("get_model_capabilities")
            assert cut_off[-1]["event"] == "call_failed", cut_off
            # Its refresh token was refused too: the SDK dropped its tokens and asked for a new authorization.
            assert [e["event"] for e in cut_off[:-1]] == ["authorize"]
            assert "tokens" in (await ts.tokens())["invalidated"]
            assert len(gw.upstream_calls()) == ran
            assert (await ts.ask("exit"))["event"] == "bye"
        assert ts.process.returncode == 0
