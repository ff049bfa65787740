"""Real MCP clients, installed by `make install` (nothing downloads at test time), each against its own
`airlock demo` in a child process. A test whose client is not installed skips and says how to install it, unless
AIRLOCK_REQUIRE_SERVICES=1 (as in CI), where it fails instead."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail
from tests.demo_process import RunningDemo, running_demo

CHECKOUT = Path(__file__).resolve().parents[2]
INSPECTOR = Path(__file__).with_name("node") / "node_modules" / ".bin" / "mcp-inspector"
AGENTS_VENV = CHECKOUT / ".venv-agents"
AGENTS_CLIENT = Path(__file__).with_name("agents_sdk_client.py")


@pytest.fixture
def inspector() -> Path:
    if shutil.which("node") is None:
        skip_or_fail("the MCP Inspector CLI needs Node.js (`node`), which is not on PATH")
    if not INSPECTOR.is_file():
        skip_or_fail(f"the MCP Inspector CLI is not installed at {INSPECTOR}: `make install` installs it (npm ci)")
    return INSPECTOR


@pytest.fixture
def agents_python() -> Path:
    if not (AGENTS_VENV / ".installed-stamp").is_file():
        skip_or_fail(
            f"the OpenAI Agents SDK's venv is not installed at {AGENTS_VENV}: `make install` makes it from "
            "tests/clients/agents-requirements.txt"
        )
    return AGENTS_VENV / "bin" / "python"


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[RunningDemo]:
    with running_demo(tmp_path) as running:
        yield running
