"""Task clients for tests (mcp 2.3 ships the types, not the runtime): the 2026-07-28 tasks extension (declare it,
take the task the server answers with, and poll tasks/get until it completes), and a 2025-11-25 client that declares
the `tasks` capability."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Literal

import anyio
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
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


class _DeclaresCoreTasks(ClientSession):
    """The 2.3 client cannot declare the 2025-11-25 `tasks` capability (it dropped that runtime); VS Code and
    other 2025-11-25 task clients do, and the gateway offers tasks only to clients that declare it."""

    def _build_capabilities(self, version: str) -> types.ClientCapabilities:
        capabilities = super()._build_capabilities(version)
        return capabilities.model_copy(update={"tasks": types.ClientTasksCapability()})


class _CoreTasksClient(Client):
    async def _build_session(self, exit_stack: AsyncExitStack) -> ClientSession:
        session = await super()._build_session(exit_stack)
        session.__class__ = _DeclaresCoreTasks
        return session


@asynccontextmanager
async def core_tasks_client(url: str, token: str) -> AsyncIterator[Client]:
    """A real mcp client on the 2025 handshake that declares the 2025-11-25 `tasks` capability."""
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30.0))
    async with http, _CoreTasksClient(streamable_http_client(url, http_client=http), mode="legacy", cache=None) as c:
        yield c
