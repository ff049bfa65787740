"""Malformed arguments (found by the security review of issue 13): an isError result, never a traceback, and no
budget kept."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx2
import pytest
from sqlmodel import Session, col, select

from service.arguments import MAX_ARGUMENT_DEPTH
from service.audit.models import AuditEvent
from service.db.engine import make_engine
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


def deep_call(levels: int, *, sdk_path: bool) -> str:
    """A held tool's call whose arguments nest `levels` objects and arrays deep (the arguments object is level 1),
    as raw JSON text: Python's own encoder would refuse to write it. `sdk_path`: a task-augmented call, which the
    direct path leaves to the SDK."""
    task = '"task":{"ttl":60000},' if sdk_path else ""
    prompt = "[" * (levels - 1) + "]" * (levels - 1)
    return (
        '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{' + task + '"name":"generate_image","arguments":'
        '{"prompt":' + prompt + ',"provider":"openai","model":"gpt-image-1"}}}'
    )


@pytest.mark.parametrize("sdk_path", [False, True], ids=["direct", "sdk"])
@pytest.mark.parametrize("levels", [MAX_ARGUMENT_DEPTH + 1, 400, 5000])
async def test_arguments_nested_deeper_than_the_limit_are_refused_where_they_enter(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, levels: int, sdk_path: bool
) -> None:
    with run_gateway(tmp_path, database_url=sqlite_url(tmp_path), policy=fixture("airlock-demo.yaml")) as gw:
        async with httpx2.AsyncClient(timeout=10) as http:
            session = await open_session(http, gw, gw.token)
            answer = await http.post(gw.mcp_url, content=deep_call(levels, sdk_path=sdk_path), headers=session)
            text = answer.text
            message = sse_messages(text)[-1] if text.startswith("event") or "\ndata: " in text else answer.json()
            fine = await http.post(
                gw.mcp_url, content=deep_call(MAX_ARGUMENT_DEPTH, sdk_path=sdk_path), headers=session
            )
        assert gw.upstream_calls() == []
        assert image_spend(gw) == 0  # nothing was held
        assert "deeper than" not in fine.text  # the limit itself is allowed (the schema then refuses a list prompt)
    if "error" in message:  # too deep for a JSON parser to follow: a parse error, as for any malformed body
        assert answer.status_code == 400 and message["error"]["code"] == -32700, message
        assert levels > MAX_ARGUMENT_DEPTH + 1
    else:
        assert message["result"]["isError"] is True
        assert message["result"]["content"][0]["text"].startswith("[INVALID ARGUMENTS]")
        assert f"deeper than {MAX_ARGUMENT_DEPTH} levels" in message["result"]["content"][0]["text"]
        engine = make_engine(sqlite_url(tmp_path))
        with Session(engine) as db:
            refused = db.exec(
                select(AuditEvent).where(AuditEvent.action == "call.invalid_arguments").order_by(col(AuditEvent.seq))
            ).first()
        assert refused is not None and (refused.tool, refused.outcome) == ("generate_image", "deny")
        assert f"deeper than {MAX_ARGUMENT_DEPTH} levels" in (refused.reason or "")
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert "Traceback" not in caplog.text
