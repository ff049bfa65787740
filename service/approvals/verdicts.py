"""The decision point as the running channels use it (REST, web UI, Slack): `service.apply_verdict` in a transaction of
its own, off the event loop, with the policy in force (which evaluates an edit again); then, once it has committed,
the events published, so waiting calls wake and read the new state. (An "approve and remember" announces its standing
approval in that transaction, and the caches hear of it when it commits: service/db/notify.py.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from sqlalchemy import Engine
from sqlmodel import Session

from service.approvals import service
from service.approvals.edits import ArgumentValidator
from service.approvals.events import EventBus
from service.approvals.models import ToolCallRequest
from service.approvals.schemas import ApprovalEvent, Approver, Remember, Verdict
from service.clock import SYSTEM_CLOCK, Clock
from service.db.engine import unit_of_work
from service.policy import CounterStore, PolicyEngine

T = TypeVar("T")


class Verdicts:
    def __init__(
        self,
        db: Engine,
        bus: EventBus,
        *,
        validate_arguments: ArgumentValidator,
        counters: CounterStore | None,
        policy: Callable[[], PolicyEngine],
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._clock = clock  # a verdict after the deadline is refused: on the clock the deadlines were set by
        self._db = db
        self._bus = bus
        self.validate_arguments = validate_arguments
        self._counters = counters
        self._policy = policy

    async def submit(
        self,
        request_id: int,
        approver: Approver,
        verdict: Verdict,
        view: Callable[[Session, ToolCallRequest], T],
        *,
        reason: str | None = None,
        patch: dict[str, Any] | None = None,
        remember: Remember | None = None,
        seen_digest: str | None = None,
    ) -> T:
        """Apply a person's verdict, and return `view` of the decided request, read in the same transaction."""

        def run() -> tuple[T, list[ApprovalEvent]]:
            with unit_of_work(self._db) as session:
                request, events = service.apply_verdict(
                    session,
                    request_id,
                    approver,
                    verdict,
                    reason=reason,
                    patch=patch,
                    remember=remember,
                    validate_arguments=self.validate_arguments,
                    counters=self._counters,
                    policy=self._policy(),
                    seen_digest=seen_digest,
                    now=self._clock.now(),
                )
                return view(session, request), events

        shown, events = await anyio.to_thread.run_sync(run)
        self._bus.publish(events)  # after the commit: waiting calls wake and read the new state
        return shown
