"""The protocol rules both ways of serving tools/call share (service/gateway/protocol.py), as pure functions; the
end-to-end tests run them through a real gateway over both paths."""

from __future__ import annotations

import itertools
import json
import logging
from typing import Any

import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from service.gateway import protocol

pytestmark = pytest.mark.anyio

CALL = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "t", "arguments": {"a": 1}}}


@pytest.mark.parametrize(
    "message",
    [
        CALL,
        {**CALL, "id": "seven"},
        {**CALL, "params": {"name": "t"}},
        {**CALL, "params": {"name": "t", "arguments": None, "_meta": {"progressToken": 1}}},
    ],
)
def test_a_plain_tools_call_may_take_the_fast_path(message: dict[str, Any]) -> None:
    assert protocol.is_direct_candidate(message)


@pytest.mark.parametrize(
    "message",
    [
        None,
        {**CALL, "jsonrpc": "1.0"},
        {**CALL, "method": "tools/list"},
        {**CALL, "id": True},  # a bool is no request id, though Python counts it an int
        {**CALL, "id": None},
        {**CALL, "id": 1.5},
        {key: value for key, value in CALL.items() if key != "id"},  # a notification
        {**CALL, "params": []},
        {**CALL, "params": {"arguments": {}}},
        {**CALL, "params": {"name": 3}},
        {**CALL, "params": {"name": "t", "task": {"ttl": 1000}}},  # task-augmented: the SDK's
        {**CALL, "params": {"name": "t", "arguments": [1]}},
        {**CALL, "params": {"name": "t", "_meta": "x"}},
    ],
)
def test_anything_unusual_is_left_to_the_sdk(message: dict[str, Any] | None) -> None:
    assert not protocol.is_direct_candidate(message)


def test_only_one_json_object_is_peeked_at() -> None:
    assert protocol.peek_message(json.dumps(CALL).encode()) == CALL
    assert protocol.peek_message(b"[1, 2]") is None  # a batch goes to the SDK
    assert protocol.peek_message(b"{not json") is None
    assert protocol.peek_message(b"\xff\xfe") is None
    assert protocol.peek_message(b"[" * 100_000 + b"]" * 100_000) is None  # too deep for Python's parser


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 4}}, 4),
        ({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "x"}}, "x"),
        ({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": False}}, None),
        ({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {}}, None),
        ({"jsonrpc": "2.0", "id": 1, "method": "notifications/cancelled", "params": {"requestId": 4}}, None),
        ({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"requestId": 4}}, None),
        (None, None),
    ],
)
def test_a_cancellation_names_its_request(message: dict[str, Any] | None, expected: int | str | None) -> None:
    assert protocol.cancelled_request_id(message) == expected


def test_envelopes_are_json_rpc() -> None:
    assert protocol.result_envelope(3, {"content": []}) == {"jsonrpc": "2.0", "id": 3, "result": {"content": []}}
    assert protocol.error_envelope("a", -32602, "bad") == {
        "jsonrpc": "2.0",
        "id": "a",
        "error": {"code": -32602, "message": "bad"},
    }
    assert protocol.cancelled_envelope(9)["error"] == {
        "code": protocol.REQUEST_CANCELLED,
        "message": "Request cancelled",
    }


def test_a_failed_call_tells_the_agent_nothing_of_its_cause(caplog: pytest.LogCaptureFixture) -> None:
    refused = MCPError(types.INVALID_PARAMS, "Invalid request parameters")
    assert protocol.failure_error("t", refused) is refused
    with caplog.at_level(logging.ERROR):
        error = protocol.failure_error("t", RuntimeError("password=hunter2 in the statement"))
    assert (error.error.code, error.error.message) == (types.INTERNAL_ERROR, "Internal error")
    assert "hunter2" not in error.error.message
    assert any("tools/call t failed" in record.getMessage() for record in caplog.records)  # the cause is logged


async def test_progress_is_passed_on_strictly_increasing() -> None:
    sent: list[tuple[float, float | None, str | None]] = []

    async def report(progress: float, total: float | None, message: str | None) -> None:
        sent.append((progress, total, message))

    relay = protocol.increasing_progress(report)
    for progress in (1.0, 1.0, 0.5, 3.0):
        await relay(progress, 10.0, "working")
    values = [value for value, _, _ in sent]
    assert values[0] == 1.0 and values[-1] == 3.0
    assert all(later > earlier for earlier, later in itertools.pairwise(values))
    assert {(total, message) for _, total, message in sent} == {(10.0, "working")}


def test_progress_tokens_and_notifications() -> None:
    assert protocol.progress_token({"progressToken": "p"}) == "p"
    assert protocol.progress_token({"progressToken": 0}) == 0
    assert protocol.progress_token({"progressToken": True}) is None
    assert protocol.progress_token({"progressToken": 1.5}) is None
    assert protocol.progress_token(None) is None
    assert protocol.progress_notification("p", 2.0, None, None) == {
        "jsonrpc": "2.0",
        "method": "notifications/progress",
        "params": {"progressToken": "p", "progress": 2.0},
    }
    assert protocol.progress_notification(1, 2.0, 4.0, "half")["params"] == {
        "progressToken": 1,
        "progress": 2.0,
        "total": 4.0,
        "message": "half",
    }


def test_the_handshake_result_is_read_from_json_or_sse() -> None:
    result = {"protocolVersion": "2025-11-25"}
    answer = json.dumps({"jsonrpc": "2.0", "id": 1, "result": result})
    assert protocol.handshake_result(answer.encode()) == result
    assert protocol.handshake_result(f"event: message\ndata: {answer}\n\n".encode()) == result
    refused = json.dumps({"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": "no"}})
    assert protocol.handshake_result(refused.encode()) is None
    assert protocol.handshake_result(b"garbage") is None
