"""A minimal client side of the 2026-07-28 tasks extension for tests (mcp 2.3 ships the types, not the runtime):
declare the extension, take the task the server answers with, and poll tasks/get until it completes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import anyio
import mcp_types as types
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from pydantic import TypeAdapter

RAW: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])


class TaskCreated(types.Result):
    result_type: Literal["task"] = "task"
    task_id: str
    status: str
    status_message: str | None = None
    poll_interval_ms: int | None = None


class TasksExtension(ClientExtension):
    identifier = "io.modelcontextprotocol/tasks"

    def __init__(self, poll_seconds: float = 0.1) -> None:
        self.created: list[TaskCreated] = []
        self.polls: list[dict[str, Any]] = []
        self._poll_seconds = poll_seconds

    def claims(self) -> Sequence[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=TaskCreated, resolve=self._resolve)]

    async def _resolve(self, created: TaskCreated, ctx: ClaimContext) -> types.CallToolResult:
        self.created.append(created)
        while True:
            request = types.GetTaskRequest(params=types.GetTaskRequestParams(task_id=created.task_id))
            view = await ctx.session.send_request(request, RAW)  # type: ignore[type-var]  # tasks/get is outside the core tables
            self.polls.append(view)
            if view["status"] == "completed":
                return types.CallToolResult.model_validate(view["result"])
            if view["status"] in ("failed", "cancelled"):
                return types.CallToolResult(
                    content=[types.TextContent(type="text", text=view["status"])], is_error=True
                )
            await anyio.sleep(self._poll_seconds)
