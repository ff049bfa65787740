"""Engines and the unit of work.

SQLite runs in WAL mode with synchronous=NORMAL: a commit survives the process being killed, and a commit
costs about 0.1 ms. PostgreSQL uses ordinary commits through psycopg 3.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from service.db.files import private_sqlite_file
from service.errors import Unavailable


def normalise_url(url: str) -> str:
    """psycopg 3 is the PostgreSQL driver; plain postgresql:// URLs mean it."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.removeprefix("postgres://")
    return url


def make_engine(url: str, *, wal_autocheckpoint_pages: int | None = None, **kwargs: Any) -> Engine:
    """`wal_autocheckpoint_pages` (SQLite): when a commit checkpoints the WAL by itself; None keeps SQLite's 1,000.
    A serving process checkpoints from a thread instead (service/db/checkpoint.py)."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            private_sqlite_file(Path(path))
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        event.listen(engine, "connect", partial(_sqlite_pragmas, wal_autocheckpoint_pages))
        event.listen(engine, "begin", _sqlite_begin_immediate)
        _SQLITE_WRITERS[engine] = threading.RLock()
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("connect_args", {"connect_timeout": 5})
    return create_engine(url, **kwargs)


def _sqlite_pragmas(autocheckpoint_pages: int | None, dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    if autocheckpoint_pages is not None:
        cursor.execute(f"PRAGMA wal_autocheckpoint={int(autocheckpoint_pages)}")
    cursor.close()
    # Transactions are begun by hand (below), so the driver must not begin its own.
    dbapi_connection.isolation_level = None


_READ_ONLY = "airlock_read_only"
_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()


def write_turn(engine: Engine) -> AbstractContextManager[Any]:
    """Writers of one SQLite database in this process take turns on a lock of ours before BEGIN IMMEDIATE. SQLite
    itself makes a blocked writer sleep and retry (1, 2, 5, 10 ... 100 ms), which under a burst of decisions costs
    far more than the transactions; a lock hands the turn over at once. Other processes still meet SQLite's
    busy timeout. PostgreSQL needs none of this."""
    lock = _SQLITE_WRITERS.get(engine)
    return lock if lock is not None else nullcontext()


def _sqlite_begin_immediate(connection: Any) -> None:
    """Take the write lock at BEGIN: a deferred transaction that reads and then writes fails with
    SQLITE_BUSY when another writer got in between, instead of waiting its turn. Read-only work (`reading`)
    begins deferred: in WAL mode it reads a snapshot and neither waits for writers nor holds them up."""
    if connection.get_execution_options().get(_READ_ONLY):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def unit_of_work(engine: Engine) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back when it raises. Services only flush."""
    try:
        with write_turn(engine), Session(engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
    except OperationalError as exc:
        raise Unavailable(f"database unavailable: {str(exc.orig).strip().splitlines()[0]}") from exc


@contextmanager
def reading(engine: Engine) -> Iterator[Session]:
    """A transaction that only reads: a consistent snapshot, never committed. On SQLite it does not queue behind
    writers the way `unit_of_work` must; anything written in it is rolled back."""
    try:
        # Closing ends the transaction (the pool rolls the connection back) and, unlike rollback(), leaves the
        # loaded objects readable.
        with Session(engine.execution_options(**{_READ_ONLY: True}), expire_on_commit=False) as session:
            yield session
    except OperationalError as exc:
        raise Unavailable(f"database unavailable: {str(exc.orig).strip().splitlines()[0]}") from exc
