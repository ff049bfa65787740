"""SQLite WAL checkpoints in a serving process: from a thread of its own, never inside a commit."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import text

from service.config import load_settings
from service.db.checkpoint import SAFETY_NET_PAGES
from service.db.engine import unit_of_work
from service.runtime import Runtime

WRITTEN_BYTES = 20 * 10 * 4000
"""What the test writes: far below a commit's own checkpoint threshold (1,000 pages, about 4 MB, or the safety net)."""


def autocheckpoint(runtime: Runtime) -> int:
    with runtime.engine.connect() as connection:
        return int(connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())


def checkpoint_threads(started_before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t not in started_before and t.name == "sqlite-checkpoint"]


def test_a_serving_process_checkpoints_from_its_own_thread(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    runtime = Runtime.build(load_settings(None, data_dir=str(tmp_path)), serving=True)
    try:
        database = Path(str(runtime.engine.url.database))
        assert autocheckpoint(runtime) == SAFETY_NET_PAGES  # commits no longer checkpoint at 1,000 pages
        (thread,) = checkpoint_threads(before)
        with unit_of_work(runtime.engine) as session:
            session.execute(text("CREATE TABLE scratch (payload TEXT)"))
        size_before = database.stat().st_size
        for _ in range(20):
            with unit_of_work(runtime.engine) as session:
                session.execute(text("INSERT INTO scratch VALUES (:p)"), [{"p": "x" * 4000}] * 10)
        # The rows reach the database file only through a checkpoint; no commit here made one.
        deadline = time.monotonic() + 5
        while database.stat().st_size < size_before + WRITTEN_BYTES and time.monotonic() < deadline:
            time.sleep(0.05)
        assert database.stat().st_size >= size_before + WRITTEN_BYTES
    finally:
        runtime.close()
    assert not thread.is_alive()  # stopped with the runtime


def test_other_processes_keep_sqlites_own_checkpoints(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    runtime = Runtime.build(load_settings(None, data_dir=str(tmp_path)))
    try:
        assert autocheckpoint(runtime) == 1000
        assert checkpoint_threads(before) == []
    finally:
        runtime.close()
