"""The core sees Slack only through the ApprovalChannel interface: without Slack configured, slack-sdk and aiohttp
are never even imported."""

from __future__ import annotations

import subprocess
import sys


def test_the_core_does_not_import_slack_sdk() -> None:
    probe = (
        "import sys, service.app, service.cli.main; "
        "print(sorted(m for m in ('slack_sdk', 'aiohttp') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
