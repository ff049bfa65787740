"""Malformed arguments (found by the security review of issue 13): an isError result, never a traceback, and no
budget kept."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from tests.gateway.harness import run_gateway
from tests.gateway.test_direct import open_session, sse_messages
from tests.gateway.test_holds import image_spend, sqlite_url
from tests.policy.helpers import fixture

pytestmark = pytest.mark.anyio

HELD = '{"prompt":"a cat","provider":"openai","model":"gpt-image-1","n":4,"quality":null,"seed":%s}'


@pytest.mark.parametrize("number", ["NaN", "Infinity", "1e400"])
async def test_a_non_finite_number_gets_an_error_result_and_keeps_no_budget(tmp_path: Path, number: str) -> None:
    with run_gateway(tmp_path, database_url=sqlite_url(tmp_path), policy=fixture("airlock-demo.yaml")) as gw:
        async with httpx2.AsyncClient(timeout=10) as http:
            session = await open_session(http, gw, gw.token)
            body = (
                '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"generate_image","arguments":'
                + HELD % number
                + "}}"
            )
            answer = await http.post(gw.mcp_url, content=body, headers=session)
            text = answer.text
            message = sse_messages(text)[-1] if text.startswith("event") or "\ndata: " in text else answer.json()
        assert image_spend(gw) == 0  # nothing was held, so nothing stays reserved
        assert "error" not in message, message  # bad input: an isError result or a 4xx, never "Internal error"
        assert message["result"]["isError"] is True
        assert image_spend(gw) == 0  # nothing was held, so nothing stays reserved
        assert gw.upstream_calls() == []
