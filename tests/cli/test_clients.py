"""`airlock clients` and the demo banner: configurations that work when pasted, with no help from PATH."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from service.grants.client_configs import TOKEN_PLACEHOLDER
from tests.cli.conftest import Invoke
from tests.gateway.harness import run_gateway
from tests.gateway.test_edges import sqlite_url

URL = "http://127.0.0.1:8080/mcp"
TOKEN = "alk_pasted-token"
POLICY = 'version: "1"\ndefault: deny\ntools:\n  get_model_capabilities: {}\n'


def configs(run: Invoke, *args: str) -> dict[str, object]:
    result = run("clients", "--json", "--url", URL, *args)
    assert result.code == 0, result.err
    parsed: dict[str, object] = json.loads(result.out)
    return parsed


def test_every_client_gets_its_own_format_with_http_typed_and_the_stdio_command_absolute(run: Invoke) -> None:
    got = configs(run, "--token", TOKEN)
    assert set(got) == {"claude-desktop", "claude-code", "cursor", "vscode"}
    http = {"type": "http", "url": URL, "headers": {"Authorization": f"Bearer {TOKEN}"}}
    assert got["cursor"] == {"mcpServers": {"airlock": http}}
    assert got["vscode"] == {"servers": {"airlock": http}}
    assert shlex.split(str(got["claude-code"])) == [
        "claude", "mcp", "add", "--transport", "http", "airlock", URL, "--header", f"Authorization: Bearer {TOKEN}"
    ]  # fmt: skip
    stdio = got["claude-desktop"]["mcpServers"]["airlock"]  # type: ignore[index]
    command = Path(stdio["command"])
    assert command.is_absolute() and os.access(command, os.X_OK)
    assert stdio["args"] == ["connect", "--url", URL, "--token", TOKEN]


def test_without_a_token_a_marked_placeholder_stands_in(run: Invoke) -> None:
    text = run("clients", "--url", URL).out
    assert text.count(TOKEN_PLACEHOLDER) == 4  # one per client
    assert "alk_" not in text


def test_new_grant_makes_a_grant_whose_token_the_configs_carry(run: Invoke) -> None:
    got = configs(run, "--new-grant", "laptop")
    token = got["vscode"]["servers"]["airlock"]["headers"]["Authorization"].removeprefix("Bearer ")  # type: ignore[index]
    (grant,) = [g for g in json.loads(run("grants", "list", "--json").out) if g["name"] == "laptop"]
    assert token.startswith("alk_") and token.startswith(grant["token_prefix"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--token", TOKEN, "--new-grant", "x"], "not both"),
        (["--token", TOKEN, "--client", "emacs"], "unknown client 'emacs'"),
    ],
)
def test_contradictory_or_unknown_options_are_refused(run: Invoke, args: list[str], message: str) -> None:
    result = run("clients", *args)
    assert result.code == 2 and message in result.err and result.out == ""


@pytest.mark.anyio
async def test_the_pasted_stdio_config_launches_the_bridge_without_airlock_on_path(run: Invoke, tmp_path: Path) -> None:
    with run_gateway(tmp_path, database_url=sqlite_url(tmp_path), policy=POLICY) as gw:
        result = run("clients", "--json", "--client", "claude-desktop", "--url", gw.mcp_url, "--token", gw.token)
        entry = json.loads(result.out)["claude-desktop"]["mcpServers"]["airlock"]
        # As a desktop app launches it: the command and args as pasted, and a PATH without any virtualenv.
        params = StdioServerParameters(command=entry["command"], args=entry["args"], env={"PATH": "/usr/bin:/bin"})
        async with Client(params, mode="legacy", cache=None) as client:
            assert "get_model_capabilities" in {t.name for t in (await client.list_tools()).tools}
            assert not (await client.call_tool("get_model_capabilities", {})).is_error
        assert [c["tool"] for c in gw.upstream_calls()] == ["get_model_capabilities"]
