"""How long an agent waits on a held call: each known client's patience on one `tools/call`
(docs/architecture.md#how-long-clients-wait), and the gateway's own status tool, with which an agent that got a
pending answer waits again."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mcp_types as types

from service.config import HoldConfig

# How long known clients wait on one tools/call before giving up, minus a margin; matched on the client's own name,
# lower-cased. Config (hold.client_budgets) adds to and overrides it.
KNOWN_CLIENT_BUDGETS = {
    "openai-agents": 3.0,
    "claude-ai": 45.0,
    "claude-desktop": 45.0,
    "codex": 50.0,
    "claude-code": 110.0,
    "cursor": 270.0,
    "visual studio code": 270.0,
    "vscode": 270.0,
}

STATUS_TOOL = "airlock_approval_status"

STATUS_TOOL_DEFINITION = types.Tool(
    name=STATUS_TOOL,
    description=(
        "Wait for a held call's approval and get its result. Give the request_id (R-123) from a pending answer; "
        "wait_seconds bounds this wait. Returns the call's real result once approved, or why it was not made. "
        "Without a request_id it lists your latest requests and their states."
    ),
    input_schema={
        "type": "object",
        "properties": {
            "request_id": {
                "type": "string",
                "description": "The id from the pending answer, such as R-123; leave it out to list your requests.",
            },
            "wait_seconds": {"type": "number", "minimum": 0, "description": "How long to wait for the decision."},
        },
    },
)


def client_budget(config: HoldConfig, client_name: str | None) -> float:
    """Seconds a held call may block before the client gives up: configured names first, then the known clients,
    else hold.max_wait."""
    name = (client_name or "").lower()
    configured = {k.lower(): v.total_seconds() for k, v in config.client_budgets.items()}
    for table in (configured, KNOWN_CLIENT_BUDGETS):
        for key, seconds in table.items():
            if key and key in name:
                return seconds
    return config.max_wait.total_seconds()


def status_wait_seconds(arguments: Mapping[str, Any], budget: float) -> float:
    """The status tool's `wait_seconds`, held to the client's budget (the whole budget when it is not a number)."""
    wait = arguments.get("wait_seconds", budget)
    if not isinstance(wait, int | float) or isinstance(wait, bool):
        return budget
    return min(max(0.0, float(wait)), budget)
