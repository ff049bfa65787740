"""Held calls as MCP tasks. This module has what both eras share (the runner of approved tasks, and finding a
grant's task) and the 2026-07-28 tasks extension (`io.modelcontextprotocol/tasks`); tasks_2025.py has the
2025-11-25 task-augmented `tools/call`.

The agent gets a task at once and polls `tasks/get`; an approval runs the call without anyone attached and
completes the task with its result; a rejection or an expiry completes it with the `[REJECTED]` or `[EXPIRED]`
result; `tasks/cancel` withdraws the request. The task *is* the request row, so it was persisted before the agent
heard of it and survives restarts, and any replica can answer `tasks/get`.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import mcp_types as types
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from sqlalchemy import Engine

from service.approvals import service as approvals
from service.approvals.cancellation import revoked
from service.approvals.events import EventBus
from service.approvals.models import RequestStatus, ToolCallRequest
from service.approvals.schemas import ApprovalEvent
from service.arguments import parse_request_id
from service.db.engine import reading
from service.errors import AirlockError
from service.gateway.holds import Caller, HeldTask, HoldCoordinator
from service.grants import service as grants
from service.grants.schemas import AuthenticatedGrant

log = logging.getLogger(__name__)

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
TASK_POLL_INTERVAL_MS = 5000
_WORKING = (RequestStatus.PENDING, RequestStatus.APPROVED, RequestStatus.EXECUTING)


def status_message(request: ToolCallRequest) -> str:
    if request.status is RequestStatus.PENDING:
        approvers = request.approval.get("approvers", {})
        who = ", ".join(approvers.get("users") or approvers.get("roles") or ["an approver"])
        return f"awaiting approval by {who} ({request.public_id})"
    if request.status in (RequestStatus.APPROVED, RequestStatus.EXECUTING):
        return f"approved by {request.decided_by}; running ({request.public_id})"
    return f"{request.status.value} ({request.public_id})"


def task_ttl_seconds(request: ToolCallRequest, retention_seconds: float) -> float:
    """docs/architecture.md#timers: the rule's timeout plus result retention."""
    return (request.deadline - request.created_at).total_seconds() + retention_seconds


def extension_task(request: ToolCallRequest, retention_seconds: float) -> dict[str, Any]:
    """The flattened Task of the 2026-07-28 extension, for a request."""
    status = (
        "working"
        if request.status in _WORKING
        else "cancelled"
        if request.status is RequestStatus.CANCELLED and not revoked(request)  # a revocation completes it, isError
        else "completed"
    )
    updated = request.decided_at or request.created_at
    return {
        "taskId": request.public_id,
        "status": status,
        "statusMessage": status_message(request),
        "createdAt": request.created_at.isoformat(),
        "lastUpdatedAt": updated.isoformat(),
        "ttlMs": int(task_ttl_seconds(request, retention_seconds) * 1000),
        "pollIntervalMs": TASK_POLL_INTERVAL_MS,
    }


class TaskRunner:
    """Runs approved task-mode requests: woken by approval events, and on a timer for decisions taken in other
    processes or before a restart."""

    def __init__(self, db: Engine, bus: EventBus, holds: HoldCoordinator, retention_seconds: float) -> None:
        self._db = db
        self._holds = holds
        self._retention = retention_seconds
        self._wake = anyio.Event()
        bus.subscribe(self._on_event)

    def _on_event(self, event: ApprovalEvent) -> None:
        if event.kind == "decided" and event.status == RequestStatus.APPROVED.value:
            self._wake.set()

    async def run_forever(self, interval_seconds: float = 2.0) -> None:
        while True:
            with anyio.move_on_after(interval_seconds):
                await self._wake.wait()
            self._wake = anyio.Event()
            try:
                for request in await anyio.to_thread.run_sync(self._approved):
                    await self._run(request)
            except AirlockError as exc:
                log.warning("task runner: %s", exc.message)

    async def _run(self, request: ToolCallRequest) -> None:
        grant = await anyio.to_thread.run_sync(self._grant, request.grant_id)
        if grant is None:
            return
        caller = Caller(grant, None, None, None)
        result = await self._holds.run_approved(caller, request, delivered=False)
        if result is None:
            log.debug("%s was claimed elsewhere", request.public_id)

    def _approved(self) -> list[ToolCallRequest]:
        with reading(self._db) as session:
            return approvals.approved_tasks(session)

    def _grant(self, grant_id: int) -> AuthenticatedGrant | None:
        with reading(self._db) as session:
            return grants.authenticated_by_id(session, grant_id)

    # -- the 2026-07-28 extension: the task answer, tasks/get and tasks/cancel --------------------------------

    def created(self, held: HeldTask) -> dict[str, Any]:
        return {"resultType": "task", **extension_task(held.request, self._retention)}

    async def get(self, grant: AuthenticatedGrant, task_id: str) -> dict[str, Any]:
        request = await self.owned(grant, task_id)
        view = extension_task(request, self._retention)
        if view["status"] == "completed":
            result = await self._holds.settled_result(request)
            if result is not None:
                view["result"] = result.model_dump(mode="json", by_alias=True, exclude_none=True)
        return view

    async def cancel(self, grant: AuthenticatedGrant, task_id: str) -> dict[str, Any]:
        request = await self.owned(grant, task_id)
        assert request.id is not None
        await self._holds.withdraw(request.id, "tasks/cancel")
        return {}

    async def owned(self, grant: AuthenticatedGrant, task_id: str) -> ToolCallRequest:
        """The grant's request behind a task id (R-12); anything else is an unknown task (-32602)."""
        return await anyio.to_thread.run_sync(self._owned, grant, task_id)

    async def reload(self, request: ToolCallRequest) -> ToolCallRequest:
        assert request.id is not None
        return await anyio.to_thread.run_sync(self._load, request.id)

    async def tasks_of(self, grant: AuthenticatedGrant, before_id: int | None, limit: int) -> list[ToolCallRequest]:
        def run() -> list[ToolCallRequest]:
            with reading(self._db) as session:
                return approvals.tasks_of(session, grant.id, before_id=before_id, limit=limit)

        return await anyio.to_thread.run_sync(run)

    def _load(self, request_id: int) -> ToolCallRequest:
        with reading(self._db) as session:
            return approvals.get(session, request_id)

    def _owned(self, grant: AuthenticatedGrant, task_id: str) -> ToolCallRequest:
        request_id = parse_request_id(task_id)
        request = None
        if request_id is not None:
            with reading(self._db) as session:
                request = approvals.find(session, request_id)
        # Tasks are bound to the grant that made them: another grant's id answers as unknown, and so does a
        # request held another way (nothing would complete it as a task).
        if request is None or request.grant_id != grant.id or request.hold_mode != "task":
            raise MCPError(types.INVALID_PARAMS, f"Unknown task: {task_id}")
        return request


def wants_task(version: str | None, meta: dict[str, Any] | None, capabilities: types.ClientCapabilities | None) -> bool:
    """Whether this request may be answered with a 2026-07-28 task: only on that revision, and only when the
    request declared the extension (per request, in _meta). The extension declared on a handshake-era session
    means nothing there (its client could not read `resultType: "task"`); that era's own tasks are the
    task-augmented calls of tasks_2025.py."""
    if version not in MODERN_PROTOCOL_VERSIONS:
        return False
    declared = (meta or {}).get("io.modelcontextprotocol/clientCapabilities")
    if isinstance(declared, dict):
        extensions = declared.get("extensions")
        if isinstance(extensions, dict) and TASKS_EXTENSION in extensions:
            return True
    extensions = getattr(capabilities, "extensions", None) if capabilities is not None else None
    return isinstance(extensions, dict) and TASKS_EXTENSION in extensions
