"""The Slack app manifests in the repo ask for the scopes the code's Web API calls need, and point at our routes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

import service.slack

FOLDER = Path(service.slack.__file__).parent
NEEDED = {"chat:write", "files:write", "usergroups:read", "users:read"}


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((FOLDER / name).read_text())
    return data


def test_the_http_manifest_points_interactivity_at_the_signed_endpoint() -> None:
    manifest = load("manifest.yaml")
    assert set(manifest["oauth_config"]["scopes"]["bot"]) >= NEEDED
    assert manifest["settings"]["interactivity"]["request_url"].endswith("/slack/interactions")
    assert manifest["settings"]["socket_mode_enabled"] is False


def test_the_socket_mode_manifest_needs_no_public_url() -> None:
    manifest = load("manifest-socket-mode.yaml")
    assert set(manifest["oauth_config"]["scopes"]["bot"]) >= NEEDED
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert manifest["settings"]["interactivity"] == {"is_enabled": True}
