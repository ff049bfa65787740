"""Running a real gateway for tests: uvicorn in a thread, real upstream child processes, a real database."""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from service.app import AirlockApp, create_app
from service.clock import SYSTEM_CLOCK, Clock
from service.config import Settings, load_settings
from service.db.engine import unit_of_work
from service.grants.service import create_grant
from service.runtime import Runtime
from service.state import AppState
from service.users.models import Role
from service.users.service import create_user

FIXTURE_SERVER = Path(__file__).with_name("fixture_server.py")
SECRET = "test-secret-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def demo_upstream(log: Path) -> dict[str, Any]:
    return {
        "command": sys.executable,
        "args": ["-m", "service.demo.upstream"],
        "env": {"AIRLOCK_DEMO_UPSTREAM_LOG": str(log)},
    }


def fixture_upstream(log: Path, prefix: str = "") -> dict[str, Any]:
    return {
        "command": sys.executable,
        "args": [str(FIXTURE_SERVER)],
        "env": {"AIRLOCK_DEMO_UPSTREAM_LOG": str(log)},
        "prefix": prefix,
    }


@dataclass
class RunningGateway:
    base_url: str
    token: str
    settings: Settings
    upstream_log: Path
    app: AirlockApp
    tokens: dict[str, str] = field(default_factory=dict)
    user_tokens: dict[str, str] = field(default_factory=dict)

    def api(self, user: str) -> httpx2.AsyncClient:
        """An HTTP client for the REST API, as `user`."""
        return httpx2.AsyncClient(
            base_url=self.base_url, headers={"Authorization": f"Bearer {self.user_tokens[user]}"}, timeout=30
        )

    @property
    def mcp_url(self) -> str:
        return self.base_url + "/mcp"

    @property
    def state(self) -> AppState:
        return self.app.state

    def upstream_calls(self, tool: str | None = None) -> list[dict[str, Any]]:
        """What the upstreams themselves say they executed."""
        if not self.upstream_log.exists():
            return []
        entries = [json.loads(line) for line in self.upstream_log.read_text().splitlines() if line.strip()]
        return [e for e in entries if e.get("event") == "call" and (tool is None or e["tool"] == tool)]

    def upstream_pids(self) -> list[int]:
        if not self.upstream_log.exists():
            return []
        entries = [json.loads(line) for line in self.upstream_log.read_text().splitlines() if line.strip()]
        return [e["pid"] for e in entries if e.get("event") == "started"]


@contextmanager
def run_gateway(
    tmp_path: Path,
    *,
    database_url: str,
    policy: str,
    upstreams: dict[str, Any] | None = None,
    grants: dict[str, list[str] | None] | None = None,
    users: dict[str, str] | None = None,
    reuse: RunningGateway | None = None,
    clock: Clock = SYSTEM_CLOCK,
    port: int | None = None,
    client_metadata: Any = None,
    **settings_overrides: Any,
) -> Iterator[RunningGateway]:
    """`clock`: the gateway's (service/clock.py); a test that moves time passes one it moves (tests/clock.py
    `MovableClock.from_now()`: grants and users are made on the real clock). `port`: one chosen beforehand, when a
    setting must name it (OAuth's issuer). `client_metadata`: what resolves OAuth client_ids that are URLs
    (create_app)."""
    log = tmp_path / "upstream.log"
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(policy)
    port = port or free_port()
    settings = load_settings(
        None,
        data_dir=str(tmp_path / "data"),
        database_url=database_url,
        policy=str(policy_file),
        upstreams=upstreams if upstreams is not None else {"imagegen": demo_upstream(log)},
        listen={"host": "127.0.0.1", "port": port},
        secret_key=SECRET,
        **settings_overrides,
    )
    tokens: dict[str, str] = dict(reuse.tokens) if reuse else {}
    user_tokens: dict[str, str] = dict(reuse.user_tokens) if reuse else {}
    if reuse is None:  # a restart (reuse) keeps the database with its grants and users
        runtime = Runtime.build(settings)
        with unit_of_work(runtime.engine) as session:
            create_user(session, runtime.hasher, username="owner", role=Role.VIEWER, actor="test")
            for username, role in (users or {}).items():
                created = create_user(session, runtime.hasher, username=username, role=Role(role), actor="test")
                user_tokens[username] = created.api_token
            for name, reach in (grants or {"agent": None}).items():
                grant = create_grant(session, runtime.hasher, name=name, actor="test", upstreams=reach, owner="owner")
                tokens[name] = grant.token
        runtime.close()
    app = create_app(settings, clock=clock, client_metadata=client_metadata)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))

    def serve() -> None:
        with contextlib.suppress(SystemExit):  # uvicorn exits when the app refuses to start
            server.run()

    thread = threading.Thread(target=serve, name="gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start (see the log above)")
        time.sleep(0.02)
    try:
        yield RunningGateway(
            f"http://127.0.0.1:{port}", next(iter(tokens.values())), settings, log, app, tokens, user_tokens
        )
    finally:
        server.should_exit = True
        thread.join(20)


@asynccontextmanager
async def mcp_client(url: str, token: str, *, mode: str = "legacy") -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30.0))
    async with http, Client(streamable_http_client(url, http_client=http), mode=mode, cache=None) as client:
        yield client


async def approve_via_api(api: httpx2.AsyncClient, request_id: int | str, **body: Any) -> httpx2.Response:
    """Approve as a REST client does: read the request, then approve with the arguments digest it showed."""
    shown = await api.get(f"/api/requests/{request_id}")
    digest = shown.json().get("arguments_digest") if shown.status_code == 200 else "0" * 64
    return await api.post(f"/api/requests/{request_id}/approve", json={"arguments_digest": digest, **body})
