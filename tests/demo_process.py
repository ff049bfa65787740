"""`airlock demo` in a child process, started and driven as a user would: its own data folder and port, its
credentials file, the REST API with the admin token, and Ctrl-C to stop it, which must end it cleanly.

Used by the wheel smoke test (tests/install/wheel_smoke.py, which copies this file next to itself outside the
checkout, so it imports only the standard library and httpx2) and by the real-client tests (tests/clients/).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

STARTUP_SECONDS = 60
STOP_SECONDS = 30
POLL_SECONDS = 0.1  # polling a process we do not control, not synchronising our own code


class DemoFailed(RuntimeError):
    """The demo did not start, did not do what was asked in time, or did not stop cleanly."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class RunningDemo:
    base_url: str
    data_dir: Path
    log: Path
    credentials: dict[str, Any]

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"

    @property
    def grant_token(self) -> str:
        token: str = self.credentials["grant_token"]
        return token

    @property
    def admin_api_token(self) -> str:
        token: str = self.credentials["admin_api_token"]
        return token

    def output(self) -> str:
        """What the demo printed so far: the banner, then its log."""
        return self.log.read_text()

    def admin_api(self) -> httpx2.Client:
        return httpx2.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {self.admin_api_token}"}, timeout=30
        )

    def requests(self, **params: str) -> list[dict[str, Any]]:
        with self.admin_api() as api:
            answer = api.get("/api/requests", params=params)
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["items"]
        return items

    def wait_for_pending(self, seconds: float = 30) -> dict[str, Any]:
        """The first pending request, once another process's held call has opened it."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pending = self.requests(status="pending")
            if pending:
                return pending[0]
            time.sleep(POLL_SECONDS)
        raise DemoFailed(f"no held call appeared in the queue within {seconds} s")

    def approve(self, request: dict[str, Any], comment: str = "approved by a test") -> dict[str, Any]:
        """Approve through REST with the arguments digest the queue showed, as every REST decision must."""
        body = {"arguments_digest": request["arguments_digest"], "comment": comment}
        with self.admin_api() as api:
            answer = api.post(f"/api/requests/{request['id']}/approve", json=body)
        assert answer.status_code == 200, answer.text
        approved: dict[str, Any] = answer.json()
        return approved

    def wait_for_status(self, request_id: int, status: str, seconds: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        seen = "not yet read"
        with self.admin_api() as api:
            while time.monotonic() < deadline:
                request: dict[str, Any] = api.get(f"/api/requests/{request_id}").json()
                if request["status"] == status:
                    return request
                seen = request["status"]
                time.sleep(POLL_SECONDS)
        raise DemoFailed(f"request {request_id} is {seen}, not {status}, after {seconds} s")


@contextmanager
def running_demo(folder: Path, program: Path | None = None) -> Iterator[RunningDemo]:
    """`airlock demo` on a free port with its data in `folder`; stopped with Ctrl-C on the way out, after which it
    must have exited 0 with no traceback and no error logged. `program` defaults to the `airlock` beside this
    Python, the one that Python's install brought."""
    program = program or Path(sys.executable).with_name("airlock")
    data = folder / "demo-data"
    log = folder / "demo.log"
    port = free_port()
    with log.open("w") as output:
        demo = subprocess.Popen(
            [str(program), "demo", "--data-dir", str(data), "--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            base_url = f"http://127.0.0.1:{port}"
            wait_ready(base_url, demo, log)
            credentials = json.loads((data / "demo-credentials.json").read_text())
            yield RunningDemo(base_url, data, log, credentials)
        finally:
            code = stop(demo)
    printed = log.read_text()
    if code != 0 or "Traceback" in printed or '"level": "error"' in printed:
        raise DemoFailed(f"airlock demo exited with {code}:\n{printed}")


def wait_ready(base_url: str, demo: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if demo.poll() is not None:
            raise DemoFailed(f"airlock demo exited with {demo.returncode} before it was ready:\n{log.read_text()}")
        try:
            if httpx2.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(POLL_SECONDS)
    raise DemoFailed(f"airlock demo was not ready after {STARTUP_SECONDS} s:\n{log.read_text()}")


def stop(demo: subprocess.Popen[str]) -> int:
    """Ctrl-C, as a user stops it; killed only when that did not work, which then fails the run."""
    demo.send_signal(signal.SIGINT)
    try:
        return demo.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        demo.kill()
        demo.wait()
        raise DemoFailed(f"airlock demo did not stop within {STOP_SECONDS} s of Ctrl-C") from None
