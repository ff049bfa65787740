"""What one replica hears from the others through PostgreSQL (service/db/notify.py), applied to this process:
a request changed elsewhere wakes the calls waiting on it here (within milliseconds, not at the next poll), and a
grant revoked, a policy applied or a standing approval changed elsewhere drops what this process has cached."""

from __future__ import annotations

import logging
from typing import Any

import anyio

from service.approvals.events import EventBus
from service.approvals.schemas import ApprovalEvent
from service.caches import ProcessCaches
from service.db.notify import CHANGES, EVENTS, listen_forever
from service.errors import AirlockError

log = logging.getLogger(__name__)


class ReplicaLink:
    def __init__(self, url: str, bus: EventBus, caches: ProcessCaches) -> None:
        self._url = url
        self._bus = bus
        self._caches = caches
        self._policy_changed = anyio.Event()

    async def run(self) -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._reload_policy_when_told)
            await listen_forever(self._url, self._handle, self._connected)

    def _handle(self, channel: str, message: dict[str, Any]) -> None:
        if channel == EVENTS:
            request_id, kind, status = message.get("r"), message.get("k"), message.get("s")
            if isinstance(request_id, int) and isinstance(kind, str) and isinstance(status, str):
                self._bus.publish([ApprovalEvent(kind, request_id, status, origin=str(message.get("o")))])
        elif channel == CHANGES and self._caches.drop_stale(message):
            self._policy_changed.set()

    def _connected(self) -> None:
        """After a (re)connection anything may have been missed: forget the caches, re-read the policy, and let
        every waiting call look at its request again."""
        self._caches.drop_all()
        self._policy_changed.set()
        self._bus.publish(
            ApprovalEvent("changed", request_id, "", origin="reconnect") for request_id in self._bus.waiting()
        )

    async def _reload_policy_when_told(self) -> None:
        while True:
            await self._policy_changed.wait()
            self._policy_changed = anyio.Event()
            try:
                await anyio.to_thread.run_sync(self._caches.policy.load)
            except AirlockError as exc:
                log.error("policy reload failed, the policy in force stays: %s", exc.message)
