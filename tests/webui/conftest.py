"""The web UI under test: a real Airlock (uvicorn, the demo upstream, SQLite), people with known passwords, real
headless Chromium (the Debian package, never a downloaded browser), and agents calling through a real MCP client."""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.types import CallToolResult
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from service.db.engine import unit_of_work
from service.users.models import Role
from service.users.service import create_user
from tests.gateway.harness import RunningGateway, mcp_client, run_gateway
from tests.policy.helpers import fixture

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PEOPLE = {"root": Role.ADMIN, "ana": Role.APPROVER, "vic": Role.VIEWER}
DEAR: dict[str, Any] = {"prompt": "four lighthouses", "provider": "openai", "model": "gpt-image-1", "n": 2}


def password_of(username: str) -> str:
    return f"pw-{username}-0123456789"


def add_people(gw: RunningGateway) -> None:
    """root (admin), ana (approver) and vic (viewer), with known passwords; their API tokens go to gw.user_tokens."""
    runtime = gw.state.runtime
    with unit_of_work(runtime.engine) as session:
        for username, role in PEOPLE.items():
            created = create_user(
                session, runtime.hasher, username=username, role=role, actor="test", password=password_of(username)
            )
            gw.user_tokens[username] = created.api_token


@pytest.fixture
def gw(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningGateway]:
    """Settings overrides come as an indirect parameter: @pytest.mark.parametrize("gw", [{...}], indirect=True)."""
    overrides: dict[str, Any] = getattr(request, "param", {})
    with run_gateway(
        tmp_path, database_url=f"sqlite:///{tmp_path}/airlock.db", policy=fixture("airlock-demo.yaml"), **overrides
    ) as running:
        add_people(running)
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run installs it)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1360, "height": 900}, accept_downloads=True)
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    yield opened
    context.close()


def sign_in(page: Page, gw: RunningGateway, username: str, next_path: str = "/") -> None:
    page.goto(f"{gw.base_url}/login?next={next_path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password_of(username))
    page.click("button[type=submit]")
    page.wait_for_url(f"{gw.base_url}{next_path}")


def offers_no_approve(row: Locator) -> None:
    """A queue row cuts its arguments, so it offers Reject and Open, never Approve."""
    expect(row.locator("a[data-open]")).to_have_text("Open")
    expect(row.get_by_role("button", name=re.compile("approve", re.IGNORECASE))).to_have_count(0)
    expect(row.locator("form[action$='/approve']")).to_have_count(0)


def approve_on_its_page(page: Page, gw: RunningGateway, request_id: str) -> None:
    """Approve as a person does, queue rows never offering it: on the request's page, where every value is shown and
    the approve form carries the digest of what it showed."""
    if page.url != f"{gw.base_url}/requests/{request_id}":
        page.goto(f"{gw.base_url}/requests/{request_id}")
    expect(page.locator("[data-status]")).to_have_text("pending")
    page.click("#approve-button")
    expect(page.locator(".flash")).to_contain_text(f"Approved R-{request_id}")


@dataclass
class AgentCall:
    """An agent's tool call made with the real MCP client, running in a thread of its own while the browser works."""

    gw: RunningGateway
    tool: str
    arguments: dict[str, Any]
    result: CallToolResult | None = None
    error: BaseException | None = None

    def start(self) -> AgentCall:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        async def call() -> None:
            async with mcp_client(self.gw.mcp_url, self.gw.token) as client:
                self.result = await client.call_tool(self.tool, self.arguments)

        try:
            anyio.run(call)
        except BaseException as exc:  # reported by wait()
            self.error = exc

    def wait(self, timeout: float = 30) -> CallToolResult:
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        assert self.result is not None, "the agent's call did not return in time"
        return self.result


def call_now(gw: RunningGateway, tool: str, arguments: dict[str, Any]) -> CallToolResult:
    return AgentCall(gw, tool, arguments).start().wait()


def save_screenshot(page: Page, name: str, tmp_path: Path) -> Path:
    """Into the test's folder; also into docs/screenshots when AIRLOCK_SCREENSHOTS is set (the docs' pictures)."""
    import os

    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    target = os.environ.get("AIRLOCK_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)
    return path
