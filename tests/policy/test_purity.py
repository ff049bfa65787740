"""policy/ does no I/O of its own: counter stores, the database and the network are injected from outside it.

Two checks, as the Slack boundary is checked (tests/slack/test_boundaries.py): what the package's own modules
import, and what importing it loads in a fresh interpreter. The second cannot look for `socket` itself, because the
CEL package loads asyncio (and with it socket) on import; the first catches a direct import of it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

POLICY = Path(__file__).resolve().parents[2] / "service" / "policy"
IO_MODULES = {
    "aiohttp",
    "anyio",
    "asyncio",
    "http",
    "httpx",
    "redis",
    "requests",
    "select",
    "selectors",
    "slack_sdk",
    "socket",
    "sqlalchemy",
    "sqlmodel",
    "ssl",
    "subprocess",
    "threading",
    "urllib",
}
# The only application modules policy/ may lean on: both are pure.
ALLOWED_SERVICE_MODULES = {"service.errors", "service.durations"}


def imported_modules(source: Path) -> set[str]:
    tree = ast.parse(source.read_text("utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_policy_modules_import_nothing_that_does_io() -> None:
    offences = []
    for source in sorted(POLICY.rglob("*.py")):
        for name in imported_modules(source):
            top = name.split(".")[0]
            outside = name.startswith("service.") and not name.startswith("service.policy")
            if top in IO_MODULES or (outside and name not in ALLOWED_SERVICE_MODULES):
                offences.append(f"{source.relative_to(POLICY.parent)} imports {name}")
    assert offences == []


def test_importing_the_policy_engine_loads_no_store_database_or_http_client() -> None:
    probe = (
        "import sys, service.policy; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('redis', 'sqlalchemy', 'sqlmodel', 'httpx', 'aiohttp', 'anyio', 'slack_sdk') "
        "or (m.startswith('service.') and not m.startswith('service.policy') "
        "and m not in ('service.errors', 'service.durations'))))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
