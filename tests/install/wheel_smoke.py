"""The wheel, as a user installs it: built from this checkout, installed in a fresh virtualenv in a temporary folder,
and run from there, where nothing of the checkout is on the path.

`python -m tests.install.wheel_smoke` (what `make smoke` and CI's smoke step run) builds and installs; the installed
copy then runs this same file with `--inside`, using only what the wheel brought:
- `airlock requests list` in an empty folder exits non-zero and creates nothing;
- `airlock db upgrade` creates a database from the migrations inside the wheel;
- `airlock demo` starts; one allowed call returns an image; one held call is approved through REST and returns its
  images; the Claude Desktop config the banner printed launches the stdio bridge; Ctrl-C stops it cleanly.
The install step may use the package registry, as `make install` does; the checks themselves run offline.
The copy runs as `tests.install.wheel_smoke` beside a copy of tests/demo_process.py, which starts and stops the demo.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.demo_process import RunningDemo, running_demo

CHECKOUT = Path(__file__).resolve().parents[2]  # when run from the checkout, not from the copy --inside runs
CHEAP = {"prompt": "a lighthouse", "provider": "openai", "model": "gpt-image-1", "quality": "draft"}
HELD = {**CHEAP, "quality": "high", "n": 2}


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
        copied = work / "tests" / "install"
        copied.mkdir(parents=True)
        for package in (work / "tests", copied):
            (package / "__init__.py").touch()
        shutil.copyfile(__file__, copied / "wheel_smoke.py")
        shutil.copyfile(CHECKOUT / "tests" / "demo_process.py", work / "tests" / "demo_process.py")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRLOCK_", "PYTHON", "VIRTUAL_ENV"))}
        subprocess.run(
            [python, "-m", "tests.install.wheel_smoke", "--inside", str(CHECKOUT)], cwd=work, env=env, check=True
        )
    say("passed")


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

    with running_demo(here) as demo:
        asyncio.run(calls(demo))
        asyncio.run(pasted_stdio_config(demo.output()))
    say("Ctrl-C stopped the demo cleanly")


async def calls(demo: RunningDemo) -> None:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    agent = httpx2.AsyncClient(headers={"Authorization": f"Bearer {demo.grant_token}"}, timeout=60)
    async with agent, Client(streamable_http_client(demo.mcp_url, http_client=agent)) as client:
        allowed = await client.call_tool("generate_image", CHEAP)
        assert not allowed.is_error and allowed.content[0].type == "image", allowed
        say("an allowed call returned an image")

        held = asyncio.create_task(client.call_tool("generate_image", HELD))
        request = await asyncio.to_thread(demo.wait_for_pending)
        await asyncio.to_thread(demo.approve, request, "smoke test")
        result = await held
        assert not result.is_error, result
        assert [c.type for c in result.content].count("image") == 2, result
        say(f"a held call ({request['public_id']}) was approved through REST and returned its 2 images")


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
