"""OAuth consent in real headless Chromium: the MCP SDK's OAuth client (in a thread of its own, as an agent's app)
opens the authorize link, the person signs in on the real sign-in page and clicks Allow, and the browser's last
redirect takes the code to the app; the app then calls a tool as the person's grant. The page's form-action names
the app's redirect origin, without which Chromium would refuse to follow the answer's redirect."""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata
from mcp.types import CallToolResult
from playwright.sync_api import Page, Route, expect
from pydantic import AnyUrl

from tests.gateway.harness import RunningGateway
from tests.oauth.helpers import REDIRECT_URI, oauth_gateway
from tests.oauth.test_flow import MemoryStorage
from tests.webui.conftest import password_of


class ConnectorApp:
    """An app with the SDK's OAuth client, in its own thread: it hands the authorize link to the browser and waits
    for the code the browser's redirect brings back."""

    def __init__(self, gw: RunningGateway) -> None:
        self.gw = gw
        self.links: queue.Queue[str] = queue.Queue()
        self.codes: queue.Queue[AuthorizationCodeResult] = queue.Queue()
        self.result: CallToolResult | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> ConnectorApp:
        self._thread.start()
        return self

    async def _redirect(self, url: str) -> None:
        self.links.put(url)

    async def _callback(self) -> AuthorizationCodeResult:
        return await anyio.to_thread.run_sync(lambda: self.codes.get(timeout=60))

    def _run(self) -> None:
        async def call() -> None:
            auth = OAuthClientProvider(
                server_url=self.gw.mcp_url,
                client_metadata=OAuthClientMetadata(
                    client_name="Chromium connector",
                    redirect_uris=[AnyUrl(REDIRECT_URI)],
                    grant_types=["authorization_code", "refresh_token"],
                    response_types=["code"],
                    token_endpoint_auth_method="none",
                ),
                storage=MemoryStorage(),
                redirect_handler=self._redirect,
                callback_handler=self._callback,
            )
            async with (
                httpx2.AsyncClient(auth=auth, timeout=60) as http,
                Client(streamable_http_client(self.gw.mcp_url, http_client=http), cache=None) as client,
            ):
                self.result = await client.call_tool("get_model_capabilities", {})

        try:
            anyio.run(call)
        except BaseException as exc:  # reported by wait()
            self.error = exc

    def wait(self, timeout: float = 60) -> CallToolResult:
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        assert self.result is not None, "the app's call did not return in time"
        return self.result


def test_a_person_allows_an_app_in_chromium_and_the_app_calls_a_tool(page: Page, tmp_path: Path) -> None:
    with oauth_gateway(tmp_path) as gw:
        app = ConnectorApp(gw).start()
        callbacks: list[str] = []

        def the_apps_callback(route: Route) -> None:
            callbacks.append(route.request.url)
            route.fulfill(status=200, body="You can close this window.")

        page.route(REDIRECT_URI + "*", the_apps_callback)
        page.goto(app.links.get(timeout=30))
        assert "/login" in page.url  # not signed in: the consent waits behind the sign-in page
        page.fill("input[name=username]", "ana")
        page.fill("input[name=password]", password_of("ana"))
        page.click("button[type=submit]")
        expect(page.locator("#client-name")).to_have_text("Chromium connector")
        expect(page.locator("#client-trust")).to_have_text("unverified")
        expect(page.locator("#redirect-host")).to_have_text("127.0.0.1:9")
        expect(page.locator("select[name=grant]")).to_have_value("ana-agent")
        page.click("button[value=approve]")
        page.wait_for_url(REDIRECT_URI + "*")
        assert len(callbacks) == 1
        query = {k: v[0] for k, v in parse_qs(urlsplit(callbacks[0]).query).items()}
        assert query["iss"] == gw.base_url
        app.codes.put(AuthorizationCodeResult(code=query["code"], state=query.get("state"), iss=query["iss"]))
        result = app.wait()
        assert not result.is_error
        assert [c["tool"] for c in gw.upstream_calls()] == ["get_model_capabilities"]
