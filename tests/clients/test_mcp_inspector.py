"""The MCP Inspector CLI (npm @modelcontextprotocol/inspector 2.12, `--cli`) in its default mode: a 2025 session
whose handshake declares the 2026 tasks extension (issue 13). Its held call must wait for the person, not be
answered with a task it cannot read, and once approved through REST it must print the images."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

from tests.demo_process import RunningDemo

HELD = {"prompt": "a lighthouse, inspected", "provider": "openai", "model": "gpt-image-1", "quality": "high", "n": 2}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_a_held_call_approved_through_rest_reaches_the_inspector_cli(
    inspector: Path, demo: RunningDemo, tmp_path: Path
) -> None:
    command = [
        str(inspector), "--cli", demo.mcp_url,
        "--header", f"Authorization: Bearer {demo.grant_token}",
        "--method", "tools/call", "--tool-name", "generate_image", "--tool-args-json", json.dumps(HELD),
        "--format", "json",
    ]  # fmt: skip
    # Its own HOME: the Inspector keeps a catalog and OAuth state under ~/.mcp-inspector.
    env = {**os.environ, "HOME": str(tmp_path)}
    call = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        request = demo.wait_for_pending()
        assert request["arguments"] == HELD
        assert call.poll() is None, "the Inspector stopped waiting before anyone decided"
        demo.approve(request)
        out, err = call.communicate(timeout=60)
    finally:
        if call.poll() is None:
            call.kill()
            call.wait()

    assert call.returncode == 0, err
    result = json.loads(out)["result"]
    assert not result.get("isError"), result
    images = [block for block in result["content"] if block["type"] == "image"]
    assert len(images) == 2, result["content"]
    assert all(base64.b64decode(image["data"]).startswith(PNG_SIGNATURE) for image in images)

    (only,) = demo.requests()
    assert only["public_id"] == request["public_id"]
    assert only["status"] == "succeeded"
    detail = demo.wait_for_status(request["id"], "succeeded")
    created = next(event for event in detail["events"] if event["action"] == "request.created")
    assert created["details"]["hold_mode"] == "blocking"  # not a task: the Inspector's era has none it reads
