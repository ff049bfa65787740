"""What the agent reads: ordinary tool results whose text starts with a tag
(docs/architecture.md#answers-to-the-agent)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import mcp_types as types

from service.approvals.cancellation import GRANT_REVOKED, revoked
from service.approvals.models import ToolCallRequest
from service.arguments import redact
from service.policy import Decision


def error_result(text: str, **structured: Any) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content=structured or None,
        is_error=True,
    )


def denied(decision: Decision) -> types.CallToolResult:
    if decision.invalid_arguments:
        return error_result(
            f"[INVALID ARGUMENTS] {'; '.join(map(str, decision.invalid_arguments))}. The call was not made; fix the"
            " arguments and call again.",
            outcome="invalid_arguments",
        )
    return error_result(
        f"[POLICY DENIED] {decision.reason or 'Denied by policy.'} (rule {decision.rule})",
        outcome="denied",
        rule=decision.rule,
    )


MALFORMED_ARGUMENTS = (
    "the arguments hold a number that is not finite (NaN, Infinity, 1e400) or text with a lone surrogate, which no"
    " person can be shown and no upstream can run"
)


def malformed_arguments(reason: str) -> types.CallToolResult:
    """Arguments refused before the policy (MALFORMED_ARGUMENTS, or arguments.TOO_DEEP)."""
    return error_result(f"[INVALID ARGUMENTS] {reason}. The call was not made.", outcome="invalid_arguments")


def rate_limited(decision: Decision, now: datetime | None = None) -> types.CallToolResult:
    seconds = int(decision.retry_after or 1)
    at = (now or datetime.now(UTC)) + timedelta(seconds=seconds)
    return error_result(
        f"[RATE LIMITED] {decision.reason or 'Rate limit reached.'} Retry after {seconds} s "
        f"({at.isoformat(timespec='seconds').replace('+00:00', 'Z')}).",
        outcome="rate_limited",
        rule=decision.rule,
        retry_after_seconds=seconds,
    )


def pending(request: ToolCallRequest) -> types.CallToolResult:
    """Not an error: the call is in a queue. The agent is told how to pick the result up."""
    text = (
        f"Not executed yet: approval pending ({request.public_id}). Call `airlock_approval_status` with request_id "
        f"{request.public_id} to wait for the decision and get the result; calling this tool again with the same "
        "arguments waits on the same request."
    )
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content={
            "status": "pending",
            "request_id": request.public_id,
            "deadline": request.deadline.isoformat(),
        },
        is_error=False,
    )


REPLAY_OF = "airlock/replay_of"


def replayed(request: ToolCallRequest) -> types.CallToolResult:
    """The stored result of a held call that already ran, handed again to the same call (hold.replay_window): its
    first block says so, and `_meta` names the request."""
    assert request.result is not None
    stored = types.CallToolResult.model_validate(request.result)
    ran = request.delivered_at.isoformat(timespec="seconds") if request.delivered_at else "earlier"
    note = types.TextContent(
        type="text",
        text=f"[REPLAY of {request.public_id}] This call was approved and ran once; this is its stored result "
        f"(first delivered {ran}). It was not run again and nothing was charged.",
    )
    meta = {**(stored.meta or {}), REPLAY_OF: request.public_id}
    return stored.model_copy(update={"content": [note, *stored.content], "meta": meta})


def recent_requests(requests: list[ToolCallRequest]) -> types.CallToolResult:
    """airlock_approval_status without a request id: this agent's latest requests and their states."""
    rows = [
        {
            "request_id": r.public_id,
            "tool": r.tool,
            "status": r.status.value,
            "created_at": r.created_at.isoformat(timespec="seconds"),
            "delivered": r.delivered_at is not None,
        }
        for r in requests
    ]
    lines = [f"{row['request_id']} {row['tool']}: {row['status']} (asked {row['created_at']})" for row in rows]
    text = (
        "Your latest requests, newest first; call airlock_approval_status with a request_id to wait for one and "
        "get its result:\n" + "\n".join(lines)
        if lines
        else "You have no requests that waited for approval."
    )
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], structured_content={"requests": rows}, is_error=False
    )


def rejected(request: ToolCallRequest) -> types.CallToolResult:
    return error_result(
        f"[REJECTED] by {request.decided_by}: {request.decision_reason or 'no reason given'}. The call was not made"
        f" ({request.public_id}).",
        outcome="rejected",
        request_id=request.public_id,
    )


def expired(request: ToolCallRequest) -> types.CallToolResult:
    return error_result(
        f"[EXPIRED] approval timed out, not executed ({request.public_id}).",
        outcome="expired",
        request_id=request.public_id,
    )


def cancelled(request: ToolCallRequest) -> types.CallToolResult:
    return error_result(
        f"[CANCELLED] {request.decision_reason if revoked(request) else 'the request was withdrawn'}, not executed"
        f" ({request.public_id}).",
        outcome="cancelled",
        request_id=request.public_id,
    )


def grant_revoked() -> types.CallToolResult:
    return error_result(f"[CANCELLED] {GRANT_REVOKED}, not executed.", outcome="cancelled")


def unknown_tool(name: str) -> types.CallToolResult:
    return error_result(f'[UNKNOWN TOOL] No tool named "{name}" is available to this agent.', outcome="unknown_tool")


def upstream_failed(message: str) -> types.CallToolResult:
    return error_result(f"[UPSTREAM ERROR] {message}. The call may not have run.", outcome="upstream_error")


def not_recorded() -> types.CallToolResult:
    return error_result(
        "[UNAVAILABLE] Airlock could not record its decision, so the call was not made. Try again shortly.",
        outcome="unavailable",
    )


def summarise(result: Mapping[str, Any]) -> dict[str, Any]:
    """What the audit keeps of a result (in wire form): kinds, sizes and digests; short texts redacted; never blobs."""
    parts: list[dict[str, Any]] = []
    for block in result.get("content") or ():
        kind = block.get("type", "other") if isinstance(block, Mapping) else "other"
        if kind == "text":
            text = str(block.get("text", ""))
            parts.append({"type": "text", "chars": len(text), "text": redact(text, max_string=200)})
        elif kind in ("image", "audio"):
            raw = str(block.get("data", "")).encode("ascii", "ignore")
            parts.append(
                {
                    "type": kind,
                    "mime_type": block.get("mimeType"),
                    "base64_chars": len(raw),
                    "sha256": hashlib.sha256(raw).hexdigest()[:16],
                }
            )
        else:
            parts.append({"type": kind})
    return {
        "is_error": bool(result.get("isError")),
        "content": parts,
        "structured": result.get("structuredContent") is not None,
    }
