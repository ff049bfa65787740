"""SQLite WAL checkpoints in a serving process: from a thread of its own, never inside a commit."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import text

from service.config import load_settings
from service.db.checkpoint import SAFETY_NET_PAGES
from service.db.engine import unit_of_work
from service.runtime import Runtime


def autocheckpoint(runtime: Runtime) -> int:
    with runtime.engine.connect() as connection:
        return int(connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())


def test_a_serving_process_checkpoints_from_its_own_thread(tmp_path: Path) -> None:
    runtime = Runtime.build(load_settings(None, data_dir=str(tmp_path)), serving=True)
    try:
        assert autocheckpoint(runtime) == SAFETY_NET_PAGES  # commits no longer checkpoint at 1,000 pages
        with unit_of_work(runtime.engine) as session:
            session.execute(text("CREATE TABLE scratch (payload TEXT)"))
        for _ in range(20):
            with unit_of_work(runtime.engine) as session:
                session.execute(text("INSERT INTO scratch VALUES (:p)"), [{"p": "x" * 4000}] * 10)
        checkpointer = runtime._checkpointer
        assert checkpointer is not None
        deadline = time.monotonic() + 5
        while not (checkpointer.last and checkpointer.last[1] > 0) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert checkpointer.last is not None
        busy, pages, done = checkpointer.last
        assert busy == 0 and pages > 0 and done == pages  # all of the WAL went back into the database
    finally:
        runtime.close()
    assert not checkpointer._thread.is_alive()  # stopped with the runtime


def test_other_processes_keep_sqlites_own_checkpoints(tmp_path: Path) -> None:
    runtime = Runtime.build(load_settings(None, data_dir=str(tmp_path)))
    try:
        assert autocheckpoint(runtime) == 1000
        assert runtime._checkpointer is None
    finally:
        runtime.close()
