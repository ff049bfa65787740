"""Held calls as MCP tasks, for clients that declared the 2026-07-28 tasks extension
(`io.modelcontextprotocol/tasks`): the agent gets a task at once and polls `tasks/get`; an approval runs the
call without anyone attached and completes the task with its result; a rejection or an expiry completes it with
the `[REJECTED]` or `[EXPIRED]` result; `tasks/cancel` withdraws the request. The task *is* the request row, so it
was persisted before the agent heard of it and survives restarts, and any replica can answer `tasks/get`.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import mcp_types as types
from sqlalchemy import Engine

from service.approvals.events import EventBus
from service.approvals.models import RequestStatus, ToolCallRequest
from service.approvals.repository import ApprovalRepository
from service.approvals.schemas import ApprovalEvent
from service.db.engine import unit_of_work
from service.errors import AirlockError
from service.gateway.holds import Caller, HoldCoordinator
from service.grants.cache import AuthenticatedGrant
from service.grants.models import Grant
from service.policy import GrantInfo

log = logging.getLogger(__name__)

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
POLL_INTERVAL_MS = 5000
_WORKING = (RequestStatus.PENDING, RequestStatus.APPROVED, RequestStatus.EXECUTING)


def task_view(request: ToolCallRequest, retention_seconds: float) -> dict[str, Any]:
    """The flattened Task of the extension, for a request."""
    status = (
        "working"
        if request.status in _WORKING
        else "cancelled"
        if request.status is RequestStatus.CANCELLED
        else "completed"
    )
    if request.status is RequestStatus.PENDING:
        approvers = request.approval.get("approvers", {})
        who = ", ".join(approvers.get("users") or approvers.get("roles") or ["an approver"])
        message = f"awaiting approval by {who} ({request.public_id})"
    elif request.status in (RequestStatus.APPROVED, RequestStatus.EXECUTING):
        message = f"approved by {request.decided_by}; running ({request.public_id})"
    else:
        message = f"{request.status.value} ({request.public_id})"
    updated = request.decided_at or request.created_at
    ttl = (request.deadline - request.created_at).total_seconds() + retention_seconds
    return {
        "taskId": request.public_id,
        "status": status,
        "statusMessage": message,
        "createdAt": request.created_at.isoformat(),
        "lastUpdatedAt": updated.isoformat(),
        "ttlMs": int(ttl * 1000),
        "pollIntervalMs": POLL_INTERVAL_MS,
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
        with unit_of_work(self._db) as session:
            return ApprovalRepository(session).approved_tasks()

    def _grant(self, grant_id: int) -> AuthenticatedGrant | None:
        from service.grants.repository import GrantRepository  # local: only the runner needs it

        with unit_of_work(self._db) as session:
            row = session.get(Grant, grant_id)
            if row is None or row.id is None:
                return None
            found = GrantRepository(session).by_name_with_owner(row.name)
            owner = found[1] if found else None
            info = GrantInfo(id=str(row.id), name=row.name, owner=owner, labels=row.labels)
            return AuthenticatedGrant(row.id, info, tuple(row.upstreams) if row.upstreams is not None else None)

    # -- tasks/get and tasks/cancel --------------------------------------------------------------------------

    async def get(self, grant: AuthenticatedGrant, task_id: str) -> dict[str, Any]:
        request = await anyio.to_thread.run_sync(self._owned, grant, task_id)
        view = task_view(request, self._retention)
        if view["status"] == "completed":
            result = await self._holds.settled_result(request)
            if result is not None:
                view["result"] = result.model_dump(mode="json", by_alias=True, exclude_none=True)
        return view

    async def cancel(self, grant: AuthenticatedGrant, task_id: str) -> dict[str, Any]:
        request = await anyio.to_thread.run_sync(self._owned, grant, task_id)
        assert request.id is not None
        await self._holds.withdraw(request.id, "tasks/cancel")
        return {}

    def _owned(self, grant: AuthenticatedGrant, task_id: str) -> ToolCallRequest:
        raw = task_id.strip().upper().removeprefix("R-")
        request = None
        if raw.isdigit():
            with unit_of_work(self._db) as session:
                request = ApprovalRepository(session).get(int(raw))
        # Tasks are bound to the grant that made them: another grant's id answers as unknown.
        if request is None or request.grant_id != grant.id:
            from mcp.shared.exceptions import MCPError

            raise MCPError(types.INVALID_PARAMS, f"Unknown task: {task_id}")
        return request


def wants_task(meta: dict[str, Any] | None, capabilities: types.ClientCapabilities | None) -> bool:
    """Whether this request declared the tasks extension (2026-07-28: per request, in _meta)."""
    declared = (meta or {}).get("io.modelcontextprotocol/clientCapabilities")
    if isinstance(declared, dict):
        extensions = declared.get("extensions")
        if isinstance(extensions, dict) and TASKS_EXTENSION in extensions:
            return True
    extensions = getattr(capabilities, "extensions", None) if capabilities is not None else None
    return isinstance(extensions, dict) and TASKS_EXTENSION in extensions
