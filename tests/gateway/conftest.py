"""Every test here that starts a gateway runs twice: over the fast path (gateway/direct.py serves tools/call on an
established session) and over the SDK path alone (`fast_path: false`). Both must answer alike: a test that passes
one way and fails the other has found a bug (test_direct.py's tests included: the SDK must refuse and answer what
the fast path does)."""

from __future__ import annotations

import pytest

MCP_PATHS = ("fast", "sdk")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "run_gateway" not in vars(metafunc.module):  # a unit test: one run is enough
        return
    metafunc.fixturenames.append("mcp_path")
    metafunc.parametrize("mcp_path", MCP_PATHS, indirect=True)


@pytest.fixture
def mcp_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The settings of every gateway the test starts (run_gateway reads the environment) select this path."""
    path: str = request.param
    monkeypatch.setenv("AIRLOCK_FAST_PATH", "true" if path == "fast" else "false")
    return path
