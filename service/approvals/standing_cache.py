"""Standing approvals as the policy engine sees them: a synchronous lookup over a per-grant snapshot that the
gateway refreshes (at most every `ttl_seconds`) before it decides a call."""

from __future__ import annotations

import time

import anyio
from sqlalchemy import Engine

from service.approvals import standing as standing_service
from service.approvals.models import StandingApproval
from service.arguments import arguments_digest
from service.db.engine import reading
from service.policy import ToolCall


class StandingCache:
    def __init__(self, db: Engine, ttl_seconds: float = 2.0) -> None:
        self._db = db
        self._ttl = ttl_seconds
        self._by_grant: dict[str, tuple[float, list[StandingApproval]]] = {}

    async def prefetch(self, grant_id: int) -> None:
        key = str(grant_id)
        cached = self._by_grant.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return
        items = await anyio.to_thread.run_sync(self._load, grant_id)
        self._by_grant[key] = (time.monotonic() + self._ttl, items)

    def invalidate(self, grant_id: int | None = None) -> None:
        if grant_id is None:
            self._by_grant.clear()
        else:
            self._by_grant.pop(str(grant_id), None)

    def find(self, call: ToolCall) -> str | None:
        """The engine's hook: the id of a standing approval covering this call (same grant and tool, and the same
        arguments when it was scoped to them), or None."""
        cached = self._by_grant.get(call.grant.id)
        if not cached:
            return None
        items = [s for s in cached[1] if s.tool == call.tool]
        if not items:
            return None
        match = standing_service.matching_standing(items, call.tool, arguments_digest(call.arguments))
        return f"SA-{match.id}" if match is not None else None

    def _load(self, grant_id: int) -> list[StandingApproval]:
        with reading(self._db) as session:
            return standing_service.list_standing(session, grant_id=grant_id)
