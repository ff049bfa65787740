"""Ready-to-paste MCP client configurations for a grant: one home for the demo banner, `airlock clients` and the web
UI's Grants page.

Streamable HTTP is `"type": "http"` everywhere. Claude Desktop launches only stdio servers from its config file, so
it gets the bridge (`airlock connect`) under the absolute path of the `airlock` that is running: a desktop app does
not see a virtualenv's bin folder on its PATH.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVER_NAME = "airlock"
TOKEN_PLACEHOLDER = "<GRANT-TOKEN: shown once by `airlock grants create NAME`>"  # noqa: S105 (a placeholder)


@dataclass(frozen=True)
class ClientConfig:
    key: str
    title: str
    where: str
    text: str
    """What to paste: a JSON document, or a shell command."""


def airlock_command() -> list[str]:
    """How to start the running `airlock` again from anywhere: its script's absolute path when there is one."""
    script = Path(sys.argv[0])
    if script.name == "airlock" and script.is_file():
        return [str(script.absolute())]
    beside = Path(sys.executable).parent / "airlock"  # the console script sits beside a venv's interpreter
    if beside.is_file():
        return [str(beside)]
    return [sys.executable, "-m", "service.cli.main"]


def _http_entry(mcp_url: str, token: str) -> dict[str, Any]:
    return {"type": "http", "url": mcp_url, "headers": {"Authorization": f"Bearer {token}"}}


def stdio_entry(mcp_url: str, token: str, command: list[str] | None = None) -> dict[str, Any]:
    program, *prefix = command or airlock_command()
    return {"command": program, "args": [*prefix, "connect", "--url", mcp_url, "--token", token]}


def client_configs(mcp_url: str, token: str | None, *, command: list[str] | None = None) -> list[ClientConfig]:
    """Every client we know how to configure. Without a token (grant tokens are shown once and stored hashed), a
    clearly marked placeholder stands in for it."""
    secret = token or TOKEN_PLACEHOLDER
    http = _http_entry(mcp_url, secret)
    claude_code = shlex.join(
        [
            "claude",
            "mcp",
            "add",
            "--transport",
            "http",
            SERVER_NAME,
            mcp_url,
            "--header",
            f"Authorization: Bearer {secret}",
        ]
    )
    return [
        ClientConfig(
            "claude-desktop",
            "Claude Desktop (stdio, through the bridge)",
            "claude_desktop_config.json",
            _json({"mcpServers": {SERVER_NAME: stdio_entry(mcp_url, secret, command)}}),
        ),
        ClientConfig("claude-code", "Claude Code", "a shell", claude_code),
        ClientConfig(
            "cursor", "Cursor", "~/.cursor/mcp.json or .cursor/mcp.json", _json({"mcpServers": {SERVER_NAME: http}})
        ),
        ClientConfig("vscode", "VS Code", ".vscode/mcp.json", _json({"servers": {SERVER_NAME: http}})),
    ]


def _json(value: Any) -> str:
    return json.dumps(value, indent=2)


def as_text(configs: list[ClientConfig]) -> str:
    return "\n\n".join(f"# {c.title}: paste into {c.where}\n{c.text}" for c in configs)
