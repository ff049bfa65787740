"""SQLite WAL checkpoints off the request path.

By default, the connection whose commit takes the WAL past 1,000 pages copies the WAL back into the database and
syncs it, inside that commit: one call in a few hundred waited for it, and that wait was most of the gateway's p99
added latency (+2.5 ms with it, +1.1 ms without, in one run of `make bench`). A serving process raises that
threshold far out of reach (it stays as a safety net, should this thread fall behind) and checkpoints from a thread
of its own twice a second. PASSIVE: neither readers nor writers wait for it, and it waits for none of them.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

SAFETY_NET_PAGES = 20_000
"""The per-connection autocheckpoint threshold while this thread runs (about 80 MB of WAL)."""
CHECKPOINT_SECONDS = 0.5


class WalCheckpointer:
    def __init__(self, database_path: str, interval_seconds: float = CHECKPOINT_SECONDS) -> None:
        self._path = database_path
        self._interval = interval_seconds
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self.last: tuple[int, int, int] | None = None
        """(busy, pages in the WAL, pages checkpointed) of the last checkpoint, as SQLite reports them."""

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            connection = sqlite3.connect(self._path)
        except sqlite3.Error:  # commits fall back to the safety net; say so, as nothing else would
            log.exception("WAL checkpoints stopped: cannot open %s", self._path)
            return
        try:
            while not self._stopping.wait(self._interval):
                try:
                    busy, pages, done = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:  # the next round tries again; the safety net still holds
                    log.warning("WAL checkpoint failed: %s", exc)
                    continue
                self.last = (int(busy), int(pages), int(done))
        except Exception:  # a thread's error reaches no log by itself
            log.exception("WAL checkpoints stopped; commits checkpoint past %d pages instead", SAFETY_NET_PAGES)
        finally:
            connection.close()
