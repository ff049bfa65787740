"""Group commit for the gateway's audit events.

A decision must be committed before it takes effect, and one commit per call would cost a round trip per call.
One writer thread takes whatever is queued, appends it to the chain in one transaction and commits once, then
wakes every caller whose event was in that batch, with one hand-over to each event loop per batch.

Outcome events (latency, result) need no wait, and they do not wake the writer either: they ride the next
decision's batch, or the writer picks them up within `TRAILING_SECONDS` when no decision comes. Waking the
thread for each of them cost a second transaction and a second thread hand-over per call.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import queue
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Engine

from service.audit.repository import DriverAppender
from service.audit.schemas import AuditRecord
from service.audit.service import chain_rows
from service.errors import Unavailable

log = logging.getLogger(__name__)

_MAX_BATCH = 512
TRAILING_SECONDS = 0.1
"""How long an outcome event may wait for a decision to ride with before the writer commits it alone."""


@dataclass(slots=True)
class _Item:
    entry: AuditRecord
    loop: asyncio.AbstractEventLoop | None
    future: asyncio.Future[int] | None


class AuditWriter:
    def __init__(self, engine: Engine) -> None:
        self._appender = DriverAppender(engine)
        # Every event, in the order it was handed over (deque appends and pops are atomic).
        self._items: collections.deque[_Item] = collections.deque()
        # One token per event somebody waits for: the writer sleeps on this, not on the events themselves.
        self._wake: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._started = False
        self._stopping = False
        self.batches = 0
        self.events = 0

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._stopping = False
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then end the thread."""
        if self._started:
            self._stopping = True
            self._wake.put(False)
            self._thread.join(timeout)
            self._started = False
            self._appender.close()

    async def commit(self, entry: AuditRecord) -> int:
        """Append and wait until the event is committed; returns its sequence number.

        Raises Unavailable when the database cannot take it: the caller must then not act on the decision.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._items.append(_Item(entry, loop, future))
        self._wake.put(True)
        return await future

    def append(self, entry: AuditRecord) -> None:
        """Append without waiting (outcomes and latencies, which may trail the call they describe)."""
        self._items.append(_Item(entry, None, None))

    def _run(self) -> None:
        while True:
            with contextlib.suppress(queue.Empty):
                self._wake.get(timeout=TRAILING_SECONDS)
            while True:  # tokens for events that the batches below take anyway
                try:
                    self._wake.get_nowait()
                except queue.Empty:
                    break
            while self._items:
                batch: list[_Item] = []
                while self._items and len(batch) < _MAX_BATCH:
                    batch.append(self._items.popleft())
                self._write(batch)
            if self._stopping:
                return

    def _write(self, batch: list[_Item]) -> None:
        failure = self._commit(batch)
        if failure is None:
            return
        if len(batch) > 1 and not self._appender.is_outage(failure):
            # One record that cannot be stored (text that is no UTF-8, a value the database refuses) must not cost
            # the other agents' records of its batch theirs: each goes again in a transaction of its own.
            for index, item in enumerate(batch):
                failure = self._commit([item])
                if failure is not None and self._appender.is_outage(failure):
                    self._refuse(batch[index:], failure)
                    return
                if failure is not None:
                    self._refuse([item], failure)
            return
        self._refuse(batch, failure)

    def _commit(self, batch: list[_Item]) -> Exception | None:
        """Append the batch in one transaction and wake its waiters; the failure, when it was not committed."""
        try:
            entries = [item.entry for item in batch]
            rows = self._appender.append(lambda seq, previous: chain_rows(entries, seq, previous))
            seqs: list[int | None] = [row["seq"] for row in rows]
        except Exception as exc:  # every failure reaches the batch's waiters, through _refuse
            return exc
        self.batches += 1
        self.events += len(batch)
        _settle(batch, seqs, None)
        return None

    def _refuse(self, batch: list[_Item], failure: Exception) -> None:
        """Tell every waiter of these records that they were not committed, in one log line (no traceback: the
        driver's first line says what it refused)."""
        reason = (str(failure).splitlines() or [""])[0][:300]
        if len(batch) == 1:
            entry = batch[0].entry
            log.error("audit event %s by %s not committed: %s", entry.action, entry.actor, reason)
        else:
            log.error("audit batch of %d events not committed: %s", len(batch), reason)
        error = failure if isinstance(failure, Unavailable) else Unavailable(f"could not record the decision: {reason}")
        _settle(batch, [None] * len(batch), error)


def _settle(batch: list[_Item], seqs: list[int | None], failure: Exception | None) -> None:
    """Resolve the batch's waiters: one call into each event loop that has any."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[int], int | None]]] = {}
    for item, seq in zip(batch, seqs, strict=True):
        if item.future is not None and item.loop is not None:
            by_loop.setdefault(item.loop, []).append((item.future, seq))
    for loop, waiters in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop closed while the batch was being written
            loop.call_soon_threadsafe(_resolve, waiters, failure)


def _resolve(waiters: Iterable[tuple[asyncio.Future[int], int | None]], failure: Exception | None) -> None:
    for future, seq in waiters:
        if future.done():
            continue
        if failure is not None:
            future.set_exception(failure)
        else:
            future.set_result(seq or 0)
