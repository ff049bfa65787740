"""Held calls as tasks for 2025-11-25 clients (the task-augmented `tools/call` of that revision): a call carrying
`params.task` is answered at once with a `CreateTaskResult`; `tasks/get`, `tasks/result` (which blocks until the
task is final), `tasks/list` and `tasks/cancel` serve the task.

mcp 2.3 has no tasks runtime, and its result check turns a `CreateTaskResult` returned by the tools/call handler
into an internal error, so a server middleware answers task-augmented calls before the handler is reached
(docs/architecture.md#tasks). A held call's task is its request row (R-12), as for the 2026 extension.
A call the policy answers at once (allowed, denied, rate-limited) still gets a task, because the revision requires
one for every task-augmented request: it is final when created, and kept in this process for a while (2025-era
sessions live in one process anyway; docs/replicas.md#sticky-sessions asks for sticky routing of them).
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import mcp_types as types
from mcp.shared.exceptions import MCPError

from service.approvals.cancellation import revoked
from service.approvals.models import RequestStatus, ToolCallRequest
from service.arguments import parse_request_id
from service.gateway.holds import HeldTask, HoldCoordinator
from service.gateway.tasks import (
    TASK_POLL_INTERVAL_MS,
    TASKS_EXTENSION,
    TaskRunner,
    status_message,
    task_ttl_seconds,
)
from service.grants.schemas import AuthenticatedGrant

RELATED_TASK = "io.modelcontextprotocol/related-task"
FINISHED_TASK_SECONDS = 600.0
FINISHED_TASK_LIMIT = 10_000
FINISHED_TASK_BYTES = 64 * 1024 * 1024
"""Results of at-once tasks may be images of several MB: the oldest go first beyond this much."""
TASKS_PAGE = 50
_WORKING = (RequestStatus.PENDING, RequestStatus.APPROVED, RequestStatus.EXECUTING)


def task_capability() -> types.ServerTasksCapability:
    """What the server declares in its 2025-era handshake: tasks for tools/call, listed and cancellable."""
    return types.ServerTasksCapability(
        list=types.TasksListCapability(),
        cancel=types.TasksCancelCapability(),
        requests=types.ServerTasksRequestsCapability(
            tools=types.TasksToolsCapability(call=types.TasksCallCapability())
        ),
    )


TASKS_REVISION = "2025-11-25"


def offers_core_tasks(version: str | None) -> bool:
    """Task fields (`capabilities.tasks`, `execution.taskSupport`) exist in this revision only: older ones never
    see them, and 2026-07-28 has the tasks extension instead."""
    return version == TASKS_REVISION


def is_task_augmented(method: str, version: str, params: Any, capabilities: types.ClientCapabilities | None) -> bool:
    """A tools/call with `params.task` from a client that declared the revision's `tasks` capability, on a session
    that negotiated the revision. Anything else is a plain call: a client that did not say it speaks tasks gets the
    answer it can read (a `task` field it sent anyway is ignored, as the revision lets a receiver do)."""
    return (
        method == "tools/call"
        and offers_core_tasks(version)
        and capabilities is not None
        and capabilities.tasks is not None
        and isinstance(params, dict)
        and isinstance(params.get("task"), dict)
    )


def shape_handshake(answer: dict[str, Any]) -> dict[str, Any]:
    """The initialize answer for the revision it settled on (the SDK builds its capabilities before it knows
    which): `tasks` only on 2025-11-25, and never the 2026-07-28 tasks extension on a handshake-era session.
    Other extensions (MCP Apps) stay, as their own specs negotiate them."""
    capabilities = answer.get("capabilities")
    if not isinstance(capabilities, dict):
        return answer
    capabilities = dict(capabilities)
    if offers_core_tasks(answer.get("protocolVersion")):
        capabilities["tasks"] = task_capability().model_dump(mode="json", by_alias=True, exclude_none=True)
    else:
        capabilities.pop("tasks", None)
    extensions = capabilities.get("extensions")
    if isinstance(extensions, dict) and TASKS_EXTENSION in extensions:
        rest = {k: v for k, v in extensions.items() if k != TASKS_EXTENSION}
        if rest:
            capabilities["extensions"] = rest
        else:
            del capabilities["extensions"]
    return {**answer, "capabilities": capabilities}


def task_metadata_problem(params: dict[str, Any]) -> str | None:
    """What is wrong with `params.task` (TaskMetadata: an optional integer ttl in ms), or None."""
    ttl = params["task"].get("ttl")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0):
        return "task.ttl must be a whole number of milliseconds"
    return None


def core_task(request: ToolCallRequest, retention_seconds: float) -> dict[str, Any]:
    """The 2025-11-25 Task for a request. `failed` covers an isError result there: rejected, expired, a call the
    current policy denied at release, an upstream error."""
    status = request.status
    if status in _WORKING:
        state = "working"
    elif status is RequestStatus.CANCELLED and not revoked(request):  # a revocation fails the task instead
        state = "cancelled"
    elif status is RequestStatus.SUCCEEDED and not (request.result or {}).get("isError", False):
        state = "completed"
    else:
        state = "failed"
    updated = request.decided_at or request.created_at
    return {
        "taskId": request.public_id,
        "status": state,
        "statusMessage": status_message(request),
        "createdAt": request.created_at.isoformat(),
        "lastUpdatedAt": updated.isoformat(),
        "ttl": int(task_ttl_seconds(request, retention_seconds) * 1000),
        "pollInterval": TASK_POLL_INTERVAL_MS,
    }


@dataclass(frozen=True)
class FinishedTask:
    """A task-augmented call the policy answered at once: final from the start."""

    task_id: str
    grant_id: int
    created_at: datetime
    result: types.CallToolResult
    expires: float
    size: int

    def view(self) -> dict[str, Any]:
        created = self.created_at.isoformat()
        return {
            "taskId": self.task_id,
            "status": "failed" if self.result.is_error else "completed",
            "createdAt": created,
            "lastUpdatedAt": created,
            "ttl": int(FINISHED_TASK_SECONDS * 1000),
            "pollInterval": TASK_POLL_INTERVAL_MS,
        }


class FinishedTasks:
    """Results of at-once tasks, bound to their grant, kept FINISHED_TASK_SECONDS and at most FINISHED_TASK_LIMIT
    of them (the oldest go first), so a client that never collects cannot grow the process."""

    def __init__(self, max_bytes: int = FINISHED_TASK_BYTES) -> None:
        self._tasks: OrderedDict[str, FinishedTask] = OrderedDict()
        self._bytes = 0
        self._max_bytes = max_bytes

    def add(self, grant_id: int, result: types.CallToolResult) -> FinishedTask:
        self._prune()
        task = FinishedTask(
            task_id=f"T-{secrets.token_urlsafe(12)}",
            grant_id=grant_id,
            created_at=datetime.now(UTC),
            result=result,
            expires=time.monotonic() + FINISHED_TASK_SECONDS,
            size=_size_of(result),
        )
        self._tasks[task.task_id] = task
        self._bytes += task.size
        while self._tasks and (len(self._tasks) > FINISHED_TASK_LIMIT or self._bytes > self._max_bytes):
            self._drop_oldest()
        return task

    def get(self, grant_id: int, task_id: str) -> FinishedTask | None:
        self._prune()
        task = self._tasks.get(task_id)
        return task if task is not None and task.grant_id == grant_id else None

    def of_grant(self, grant_id: int) -> list[FinishedTask]:
        self._prune()
        return [t for t in reversed(self._tasks.values()) if t.grant_id == grant_id]

    def _prune(self) -> None:
        now = time.monotonic()
        while self._tasks and next(iter(self._tasks.values())).expires <= now:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        _, task = self._tasks.popitem(last=False)
        self._bytes -= task.size


def _size_of(result: types.CallToolResult) -> int:
    """Roughly what a result holds: the text and base64 data of its blocks."""
    size = 256
    for block in result.content:
        for field in ("text", "data", "blob"):
            value = getattr(block, field, None)
            if isinstance(value, str):
                size += len(value)
    return size


class CoreTasks:
    """The 2025-11-25 task methods. Task ids are bound to the grant: another grant's id answers as unknown."""

    def __init__(self, runner: TaskRunner, holds: HoldCoordinator, retention_seconds: float) -> None:
        self._runner = runner
        self._holds = holds
        self._retention = retention_seconds
        self._finished = FinishedTasks()

    def created(self, grant: AuthenticatedGrant, outcome: types.CallToolResult | HeldTask) -> dict[str, Any]:
        """The CreateTaskResult for a task-augmented call, held or answered at once."""
        if isinstance(outcome, HeldTask):
            task = core_task(outcome.request, self._retention)
            message = (
                f"A person must approve this call first ({outcome.request.public_id}); the task completes with "
                "its result once they decide."
            )
        else:
            task = self._finished.add(grant.id, outcome).view()
            message = "The call finished at once."
        return {"task": task, "_meta": {"io.modelcontextprotocol/model-immediate-response": message}}

    async def get(self, grant: AuthenticatedGrant, task_id: str) -> dict[str, Any]:
        finished = self._finished.get(grant.id, task_id)
        if finished is not None:
            return finished.view()
        return core_task(await self._runner.owned(grant, task_id), self._retention)

    async def result(self, grant: AuthenticatedGrant, task_id: str) -> dict[str, Any]:
        """What the original call would have returned, once the task is final (this blocks until then)."""
        finished = self._finished.get(grant.id, task_id)
        if finished is not None:
            result = finished.result
        else:
            request = await self._runner.owned(grant, task_id)
            assert request.id is not None
            result = await self._holds.wait_settled(request.id)
        payload = result.model_dump(mode="json", by_alias=True, exclude_none=True)
        payload["_meta"] = {**payload.get("_meta", {}), RELATED_TASK: {"taskId": task_id}}
        return payload

    async def list(self, grant: AuthenticatedGrant, cursor: str | None) -> dict[str, Any]:
        """Newest first: this process's at-once tasks on the first page, then held ones, keyset by request id."""
        before: int | None = None
        tasks: list[dict[str, Any]] = []
        if cursor is None:
            tasks = [t.view() for t in self._finished.of_grant(grant.id)][:TASKS_PAGE]
        else:
            before = parse_request_id(cursor)
            if before is None or cursor.strip().upper().startswith("R-"):
                raise MCPError(types.INVALID_PARAMS, "Invalid cursor")
        requests = await self._runner.tasks_of(grant, before, TASKS_PAGE)
        tasks += [core_task(r, self._retention) for r in requests]
        answer: dict[str, Any] = {"tasks": tasks}
        if len(requests) == TASKS_PAGE and requests[-1].id is not None:
            answer["nextCursor"] = str(requests[-1].id)
        return answer

    async def cancel(self, grant: AuthenticatedGrant, task_id: str) -> dict[str, Any]:
        finished = self._finished.get(grant.id, task_id)
        if finished is not None:
            raise MCPError(types.INVALID_PARAMS, f"Task {task_id} is already {finished.view()['status']}")
        request = await self._runner.owned(grant, task_id)
        assert request.id is not None
        if request.status is not RequestStatus.PENDING:
            state = core_task(request, self._retention)["status"]
            # An approved call is about to run (or running): it is no longer the agent's to withdraw.
            detail = "approved and cannot be withdrawn" if state == "working" else state
            raise MCPError(types.INVALID_PARAMS, f"Task {task_id} is already {detail}")
        await self._holds.withdraw(request.id, "tasks/cancel")
        request = await self._runner.reload(request)
        if request.status is not RequestStatus.CANCELLED:  # decided in the meantime
            raise MCPError(types.INVALID_PARAMS, f"Task {task_id} is already {request.status.value}")
        return core_task(request, self._retention)
