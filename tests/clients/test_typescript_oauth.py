"""A second, independent OAuth client: the TypeScript SDK's (@modelcontextprotocol/client, installed by `make install`
with the Inspector) discovers Airlock's authorization server, registers itself, is allowed by a person on the real
sign-in and consent forms, and calls a tool as that person's grant."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import anyio
import httpx2
import pytest

from tests.clients.conftest import CHECKOUT
from tests.conftest import skip_or_fail
from tests.oauth.helpers import REDIRECT_URI, Person, oauth_gateway

pytestmark = pytest.mark.anyio
NODE_CLIENTS = CHECKOUT / "tests" / "clients" / "node"
TS_CLIENT = NODE_CLIENTS / "oauth_client.mjs"


@pytest.fixture
def node() -> str:
    found = shutil.which("node")
    if found is None:
        skip_or_fail("the TypeScript SDK's client needs Node.js (`node`), which is not on PATH")
    if not (NODE_CLIENTS / "node_modules" / "@modelcontextprotocol" / "client").is_dir():
        skip_or_fail("@modelcontextprotocol/client is not installed: `make install` installs it (npm ci)")
    assert found is not None
    return found


def event(line: str) -> dict[str, str]:
    parsed: dict[str, str] = json.loads(line)
    assert parsed["event"] != "error", parsed
    return parsed


async def test_the_typescript_sdk_client_signs_in_and_calls_a_tool(node: str, tmp_path: Path) -> None:
    with oauth_gateway(tmp_path) as gw:
        process = subprocess.Popen(
            [node, str(TS_CLIENT), gw.mcp_url, REDIRECT_URI],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=NODE_CLIENTS,
        )
        try:
            assert process.stdout is not None and process.stdin is not None
            authorize = event(await anyio.to_thread.run_sync(process.stdout.readline))
            assert authorize["event"] == "authorize"
            async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as web:
                query = await Person(web, "ana").approve(authorize["url"])
            assert query["iss"] == gw.base_url
            process.stdin.write(urlencode(query) + "\n")  # what its redirect URI received
            process.stdin.flush()
            out, err = await anyio.to_thread.run_sync(lambda: process.communicate(timeout=60))
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == 0, (out, err)
        result = event(out.strip().splitlines()[-1])
        assert result == {"event": "result", "isError": False, "token": "alko_"}
        assert [c["tool"] for c in gw.upstream_calls()] == ["get_model_capabilities"]
        assert urlsplit(authorize["url"]).path == "/authorize"
