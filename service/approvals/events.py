"""Approval events to subscribers in this process: held calls waiting for their decision, Slack, the live queue.

Publish from the event loop, after the transaction that caused the events has committed. Across replicas the
same events will travel through PostgreSQL LISTEN/NOTIFY (the scale-out issue): a waiter only needs to hear that
*something* happened to its request, and then reads the request's state from the database, unless the event
carries the committed row (`ApprovalEvent.snapshot`), which spares that read on the way from a decision to the
agent's result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import anyio

from service.approvals.schemas import ApprovalEvent

log = logging.getLogger(__name__)

Subscriber = Callable[[ApprovalEvent], None]


class Waiter:
    """One waiting call's wake-up: set by the next event for its request, which it keeps."""

    __slots__ = ("_event", "heard")

    def __init__(self) -> None:
        self._event = anyio.Event()
        self.heard: ApprovalEvent | None = None

    def wake(self, event: ApprovalEvent) -> None:
        self.heard = event
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()


class EventBus:
    def __init__(self) -> None:
        self._waiters: dict[int, set[Waiter]] = {}
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def publish(self, events: Iterable[ApprovalEvent]) -> None:
        for event in events:
            for waiter in self._waiters.pop(event.request_id, set()):
                waiter.wake(event)
            for subscriber in self._subscribers:
                try:
                    subscriber(event)
                except Exception:  # one broken subscriber must not stop the others or the caller
                    log.exception("approval event subscriber failed")

    def wake_all(self) -> None:
        """Wake every waiting call, telling it nothing (it reads its request's state itself); subscribers hear
        nothing of this, as nothing happened to any request."""
        for request_id in list(self._waiters):
            for waiter in self._waiters.pop(request_id, set()):
                waiter.wake(ApprovalEvent("changed", request_id, ""))

    def waiting(self) -> list[int]:
        """The requests some call in this process is waiting on."""
        return list(self._waiters)

    def listen(self, request_id: int) -> Waiter:
        """Register before reading the request's state, so an event between the read and the wait is not lost."""
        waiter = Waiter()
        self._waiters.setdefault(request_id, set()).add(waiter)
        return waiter

    def forget(self, request_id: int, waiter: Waiter) -> None:
        waiters = self._waiters.get(request_id)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                self._waiters.pop(request_id, None)
