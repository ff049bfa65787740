"""The per-grant cap on pending requests as the policy engine sees it (docs/policies.md#order-of-evaluation: past it, a
would-be hold is denied). The engine asks only for a call it would hold, so the database is read only then; the gateway
decides such calls in a worker thread."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import Engine

from service.approvals import service as approvals
from service.db.engine import reading
from service.errors import Unavailable
from service.policy import ToolCall

log = logging.getLogger(__name__)


class PendingCapCheck:
    def __init__(self, db: Engine, cap: int, replay_window: timedelta | None) -> None:
        self._db = db
        self.cap = cap
        self._replay_window = replay_window

    def reached(self, call: ToolCall) -> bool:
        """Whether this call would open one more request for a grant that has `cap` pending. The same call again
        attaches to its open request, or is answered with its stored result: neither opens a request."""
        grant_id = int(call.grant.id)
        try:
            with reading(self._db) as session:
                if approvals.pending_count(session, grant_id) < self.cap:
                    return False
                if approvals.find_open(session, grant_id, call.tool, call.arguments) is not None:
                    return False
                window = self._replay_window
                return not window or (
                    approvals.find_replayable(session, grant_id, call.tool, call.arguments, window=window) is None
                )
        except Unavailable as exc:  # fail closed: a call that cannot be counted is not queued
            log.warning("pending cap of grant %s could not be read: %s", grant_id, exc.message)
            return True
