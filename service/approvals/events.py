"""Approval events to subscribers in this process: held calls waiting for their decision, Slack, the live queue.

Publish from the event loop, after the transaction that caused the events has committed. Across replicas the
same events will travel through PostgreSQL LISTEN/NOTIFY (the scale-out issue): a waiter only needs to hear that
*something* happened to its request, and then reads the request's state from the database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import anyio

from service.approvals.schemas import ApprovalEvent

log = logging.getLogger(__name__)

Subscriber = Callable[[ApprovalEvent], None]


class EventBus:
    def __init__(self) -> None:
        self._waiters: dict[int, set[anyio.Event]] = {}
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def publish(self, events: Iterable[ApprovalEvent]) -> None:
        for event in events:
            for waiter in self._waiters.pop(event.request_id, set()):
                waiter.set()
            for subscriber in self._subscribers:
                try:
                    subscriber(event)
                except Exception:  # one broken subscriber must not stop the others or the caller
                    log.exception("approval event subscriber failed")

    def waiting(self) -> list[int]:
        """The requests some call in this process is waiting on."""
        return list(self._waiters)

    def listen(self, request_id: int) -> anyio.Event:
        """Register before reading the request's state, so an event between the read and the wait is not lost."""
        event = anyio.Event()
        self._waiters.setdefault(request_id, set()).add(event)
        return event

    def forget(self, request_id: int, event: anyio.Event) -> None:
        waiters = self._waiters.get(request_id)
        if waiters is not None:
            waiters.discard(event)
            if not waiters:
                self._waiters.pop(request_id, None)
