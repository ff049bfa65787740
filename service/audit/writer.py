"""Group commit for the gateway's audit events.

A decision must be committed before it takes effect, and one commit per call would cost a round trip per call.
One writer thread takes whatever is queued, appends it to the chain in one transaction and commits once, then
wakes every caller whose event was in that batch. Outcome events (latency, result) need no wait: they ride the
next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from dataclasses import dataclass

from sqlalchemy import Engine

from service.audit.repository import DriverAppender
from service.audit.schemas import AuditRecord
from service.audit.service import chain_rows
from service.errors import Unavailable

log = logging.getLogger(__name__)

_MAX_BATCH = 512


@dataclass
class _Item:
    entry: AuditRecord
    loop: asyncio.AbstractEventLoop | None
    future: asyncio.Future[int] | None


class AuditWriter:
    def __init__(self, engine: Engine) -> None:
        self._appender = DriverAppender(engine)
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._started = False
        self.batches = 0
        self.events = 0

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self._started:
            self._queue.put(None)
            self._thread.join(timeout)
            self._started = False
            self._appender.close()

    async def commit(self, entry: AuditRecord) -> int:
        """Append and wait until the event is committed; returns its sequence number.

        Raises Unavailable when the database cannot take it: the caller must then not act on the decision.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._queue.put(_Item(entry, loop, future))
        return await future

    def append(self, entry: AuditRecord) -> None:
        """Append without waiting (outcomes and latencies, which may trail the call they describe)."""
        self._queue.put(_Item(entry, None, None))

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < _MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._write(batch)

    def _write(self, batch: list[_Item]) -> None:
        try:
            entries = [item.entry for item in batch]
            rows = self._appender.append(lambda seq, previous: chain_rows(entries, seq, previous))
            seqs = [row["seq"] for row in rows]
        except Exception as exc:  # the database is down or refused the batch: every waiter must hear it
            log.error("audit batch of %d events not committed: %s", len(batch), exc)
            failure = exc if isinstance(exc, Unavailable) else Unavailable(f"could not record the decision: {exc}")
            for item in batch:
                _resolve(item, None, failure)
            return
        self.batches += 1
        self.events += len(batch)
        for item, seq in zip(batch, seqs, strict=True):
            _resolve(item, seq, None)


def _resolve(item: _Item, seq: int | None, failure: Exception | None) -> None:
    if item.future is None or item.loop is None:
        return

    def settle() -> None:
        assert item.future is not None
        if item.future.done():
            return
        if failure is not None:
            item.future.set_exception(failure)
        else:
            item.future.set_result(seq or 0)

    with contextlib.suppress(RuntimeError):  # the loop closed while the batch was being written
        item.loop.call_soon_threadsafe(settle)
