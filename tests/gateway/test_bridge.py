"""`airlock connect` (service/gateway/bridge.py), driven by a real SDK client over stdio."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters

from tests.gateway.harness import run_gateway
from tests.gateway.test_holds import DEAR, USERS, sqlite_url
from tests.policy.helpers import fixture

pytestmark = pytest.mark.anyio


async def test_the_bridge_forwards_the_real_clients_name_so_its_hold_budget_applies(tmp_path: Path) -> None:
    with run_gateway(
        tmp_path,
        database_url=sqlite_url(tmp_path),
        policy=fixture("airlock-demo.yaml"),
        users=USERS,
        hold={"client_budgets": {"budget-probe": "1s"}},  # everyone else waits the default 50 s
    ) as gw:
        bridge = StdioServerParameters(
            command=sys.executable,
            args=["-c", "from service.cli.main import main; main()", "connect", "--url", gw.mcp_url],
            env={"AIRLOCK_TOKEN": gw.token},
        )
        info = types.Implementation(name="budget-probe", version="1.0")
        async with Client(bridge, mode="legacy", client_info=info) as client:
            with anyio.fail_after(20):  # far below the default budget: only the forwarded name gives 1 s
                answer = await client.call_tool("generate_image", DEAR)
        assert not answer.is_error
        assert answer.content[0].text.startswith("Not executed yet: approval pending (R-")  # type: ignore[union-attr]
        assert gw.upstream_calls("generate_image") == []
