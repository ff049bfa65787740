"""The MCP protocol rules that both ways of serving `tools/call` share: the SDK's handlers (endpoints.py) and the
fast path (direct.py). Each is defined here once, so the two paths cannot drift apart: what a failed call answers,
how upstream progress is passed on, and which requests the fast path may take.

Pure functions: no I/O, no SDK state.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import mcp_types as types
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError

log = logging.getLogger(__name__)

REQUEST_CANCELLED = -32800
INTERNAL_ERROR_MESSAGE = "Internal error"

# An async (progress, total, message) callback, as the SDK's client takes it.
ProgressRelay = ProgressFnT


# -- JSON-RPC envelopes -----------------------------------------------------------------------------------------


def result_envelope(request_id: Any, result: Mapping[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def error_envelope(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def cancelled_envelope(request_id: Any) -> dict[str, Any]:
    """What a call cancelled by the agent ends with: the error the SDK sends for it."""
    return error_envelope(request_id, REQUEST_CANCELLED, "Request cancelled")


def failure_error(tool: str, exc: Exception) -> MCPError:
    """The JSON-RPC error a failed tools/call answers with on either path: an MCPError as it is; anything else
    is logged here and answered with a plain internal error, never its text (which may hold a statement or a
    secret) and never a traceback."""
    if isinstance(exc, MCPError):
        return exc
    log.error("tools/call %s failed", tool, exc_info=exc)
    return MCPError(types.INTERNAL_ERROR, INTERNAL_ERROR_MESSAGE)


# -- progress ---------------------------------------------------------------------------------------------------


def increasing_progress(report: ProgressRelay) -> ProgressRelay:
    """Upstream progress passed on to `report`, kept strictly increasing whatever the upstream sends (the
    protocol requires it of every progress notification)."""
    last = -1.0

    async def relay(progress: float, total: float | None, message: str | None) -> None:
        nonlocal last
        value = max(progress, last + 1e-6)
        last = value
        await report(value, total, message)

    return relay


def progress_token(meta: Mapping[str, Any] | None) -> int | str | None:
    """The progress token a request's `_meta` carries, when it is a valid one."""
    token = meta.get("progressToken") if meta else None
    if isinstance(token, bool) or not isinstance(token, int | str):
        return None
    return token


def progress_notification(
    token: int | str, progress: float, total: float | None, message: str | None
) -> dict[str, Any]:
    params: dict[str, Any] = {"progressToken": token, "progress": progress}
    if total is not None:
        params["total"] = total
    if message is not None:
        params["message"] = message
    return {"jsonrpc": "2.0", "method": "notifications/progress", "params": params}


# -- sniffing a request body ------------------------------------------------------------------------------------


def peek_message(body: bytes) -> Mapping[str, Any] | None:
    """The JSON-RPC message, if the body is one request object; malformed bodies are left to the SDK, which answers
    them with a parse error (a body nested too deep for Python's parser is one, too deep for the SDK's as well)."""
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return message if isinstance(message, dict) else None


def is_direct_candidate(message: Mapping[str, Any] | None) -> bool:
    """A single, well-formed tools/call request that asks for nothing but a call (no task augmentation)."""
    if message is None or message.get("jsonrpc") != "2.0" or message.get("method") != "tools/call":
        return False
    if not _is_request_id(message.get("id")):
        return False
    params = message.get("params")
    if not isinstance(params, dict) or not isinstance(params.get("name"), str) or "task" in params:
        return False
    arguments = params.get("arguments")
    meta = params.get("_meta")
    return (arguments is None or isinstance(arguments, dict)) and (meta is None or isinstance(meta, dict))


def cancelled_request_id(message: Mapping[str, Any] | None) -> int | str | None:
    """The request a notifications/cancelled names, when the message is a well-formed one."""
    if message is None or message.get("method") != "notifications/cancelled" or "id" in message:
        return None
    params = message.get("params")
    request_id = params.get("requestId") if isinstance(params, dict) else None
    return request_id if _is_request_id(request_id) else None


def _is_request_id(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | str)


def handshake_result(answer: bytes) -> dict[str, Any] | None:
    """The `result` of an initialize answer, sent as JSON or as one SSE event."""
    text = answer.decode("utf-8", "replace").strip()
    if not text.startswith("{"):
        data = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
        text = data[-1] if data else ""
    try:
        message = json.loads(text)
    except ValueError:
        return None
    result = message.get("result") if isinstance(message, dict) and "error" not in message else None
    return result if isinstance(result, dict) else None
