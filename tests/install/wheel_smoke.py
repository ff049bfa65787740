"""The wheel, as a user installs it: built from this checkout, installed in a fresh virtualenv in a temporary folder,
and run from there, where nothing of the checkout is on the path.

`python -m tests.install.wheel_smoke` (what `make smoke` and CI's smoke step run) builds and installs; the installed
copy then runs this same file with `--inside`, using only what the wheel brought:
- `airlock requests list` in an empty folder exits non-zero and creates nothing;
- `airlock db upgrade` creates a database from the migrations inside the wheel;
- `airlock demo` starts; one allowed call returns an image; one held call is approved through REST and returns its
  images; the Claude Desktop config the banner printed launches the stdio bridge; Ctrl-C stops it cleanly.
The install step may use the package registry, as `make install` does; the checks themselves run offline.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CHECKOUT = Path(__file__).resolve().parents[2]  # when run from the checkout, not from the copy --inside runs
CHEAP = {"prompt": "a lighthouse", "provider": "openai", "model": "gpt-image-1", "quality": "draft"}
HELD = {**CHEAP, "quality": "high", "n": 2}
STARTUP_SECONDS = 60


def say(message: str) -> None:
    print(f"smoke: {message}", flush=True)


def build_and_run() -> None:
    with tempfile.TemporaryDirectory(prefix="airlock-smoke-") as tmp:
        root = Path(tmp)
        dist = root / "dist"
        say("building the wheel")
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dist), str(CHECKOUT)],
            check=True,
        )
        (wheel,) = dist.glob("airlock-*.whl")
        say(f"installing {wheel.name} in a fresh virtualenv")
        subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
        python = root / "venv" / "bin" / "python"
        subprocess.run([python, "-m", "pip", "install", "--quiet", str(wheel)], check=True)
        work = root / "elsewhere"
        work.mkdir()
        script = work / "smoke.py"
        shutil.copyfile(__file__, script)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRLOCK_", "PYTHON", "VIRTUAL_ENV"))}
        subprocess.run([python, str(script), "--inside", str(CHECKOUT)], cwd=work, env=env, check=True)
    say("passed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def airlock(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    program = Path(sys.executable).with_name("airlock")
    return subprocess.run([str(program), *args], capture_output=True, text=True, check=check, timeout=120)


def inside(checkout: Path) -> None:
    here = Path.cwd()
    assert not (here / "airlock.yaml").exists()
    import service

    assert checkout not in Path(service.__file__).resolve().parents, "the smoke test must run the installed wheel"

    listed = airlock("requests", "list", check=False)
    assert listed.returncode != 0, listed
    assert "no Airlock database at" in listed.stderr and "--data-dir" in listed.stderr, listed.stderr
    assert not (here / "airlock-data").exists(), "a command that only reads created a database"
    say("`airlock requests list` in an empty folder: refused, nothing created")

    upgraded = airlock("db", "upgrade", "--data-dir", str(here / "upgraded"))
    assert (here / "upgraded" / "airlock.db").is_file(), upgraded
    say("`airlock db upgrade` made a database from the wheel's migrations")

    data = here / "demo-data"
    port = free_port()
    log = (here / "demo.log").open("w")
    demo = subprocess.Popen(
        [str(Path(sys.executable).with_name("airlock")), "demo", "--data-dir", str(data), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, demo)
        credentials = json.loads((data / "demo-credentials.json").read_text())
        asyncio.run(calls(base, credentials))
        asyncio.run(pasted_stdio_config((here / "demo.log").read_text()))
    finally:
        demo.send_signal(signal.SIGINT)
        code = demo.wait(timeout=30)
        log.close()
    output = (here / "demo.log").read_text()
    assert code == 0, f"airlock demo exited with {code}:\n{output}"
    assert "Traceback" not in output and '"level": "error"' not in output, output
    say("Ctrl-C stopped the demo cleanly")


def wait_ready(base: str, demo: subprocess.Popen[str]) -> None:
    import httpx2

    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if demo.poll() is not None:
            raise SystemExit(f"airlock demo exited with {demo.returncode} before it was ready")
        try:
            if httpx2.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.2)  # polling a process we do not control, not synchronising our own code
    raise SystemExit(f"airlock demo was not ready after {STARTUP_SECONDS} s")


async def calls(base: str, credentials: dict[str, Any]) -> None:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    agent = httpx2.AsyncClient(headers={"Authorization": f"Bearer {credentials['grant_token']}"}, timeout=60)
    admin = httpx2.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {credentials['admin_api_token']}"}, timeout=30
    )
    async with agent, admin, Client(streamable_http_client(f"{base}/mcp", http_client=agent)) as client:
        allowed = await client.call_tool("generate_image", CHEAP)
        assert not allowed.is_error and allowed.content[0].type == "image", allowed
        say("an allowed call returned an image")

        held = asyncio.create_task(client.call_tool("generate_image", HELD))
        request = await pending_request(admin)
        body: dict[str, Any] = {"comment": "smoke test"}
        digest = request.get("arguments_digest")
        if digest:
            body["arguments_digest"] = digest
        approved = await admin.post(f"/api/requests/{request['id']}/approve", json=body)
        assert approved.status_code == 200, approved.text
        result = await held
        assert not result.is_error, result
        assert [c.type for c in result.content].count("image") == 2, result
        say(f"a held call ({request['public_id']}) was approved through REST and returned its 2 images")


async def pending_request(admin: Any) -> dict[str, Any]:
    for _ in range(300):
        page = (await admin.get("/api/requests", params={"status": "pending"})).json()
        if page["items"]:
            request: dict[str, Any] = page["items"][0]
            return request
        await asyncio.sleep(0.1)  # waiting for another process's agent call to be held
    raise SystemExit("the held call never appeared in the queue")


async def pasted_stdio_config(banner: str) -> None:
    """The banner's Claude Desktop config, launched as Claude Desktop would: its command, its args, no PATH help."""
    from mcp import Client, StdioServerParameters

    start = banner.index("{", banner.index("# Claude Desktop"))
    entry = json.JSONDecoder().raw_decode(banner[start:])[0]["mcpServers"]["airlock"]
    params = StdioServerParameters(command=entry["command"], args=entry["args"], env={"PATH": "/usr/bin:/bin"})
    async with Client(params) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
    assert "generate_image" in names, names
    say("the banner's Claude Desktop config launched the bridge and listed the tools")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--inside"]:
        inside(Path(sys.argv[2]))
    else:
        build_and_run()
