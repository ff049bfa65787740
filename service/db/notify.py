"""Telling the other replicas: PostgreSQL NOTIFY, sent inside the transaction that made the change (so it goes out
exactly when, and only if, the change commits), and one LISTEN connection per process that hears them.

Two channels: `airlock_events` (a request changed: held calls on other replicas wake at once instead of at their
next poll) and `airlock_changes` (grants, policy versions, standing approvals or users changed: caches drop what
they hold). Every message names the process that sent it, so a replica ignores its own. SQLite has no NOTIFY and
needs none: it serves one process.

A change is also heard in the process that made it, once its transaction commits (`changes_heard`): that is how
the caches of this process (grant lookups, standing approvals, the policy in force) follow a change made by any
handler, without the handler knowing which caches there are.
"""

from __future__ import annotations

import json
import logging
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import psycopg
from sqlalchemy import Connection, Engine, text
from sqlalchemy import event as orm_event
from sqlmodel import Session

log = logging.getLogger(__name__)

EVENTS = "airlock_events"
CHANGES = "airlock_changes"
PROCESS_ID = uuid.uuid4().hex[:12]
"""This process, as the sender of its own notifications."""

Handler = Callable[[str, dict[str, Any]], None]
"""(channel, message) for a notification from another process."""

ChangeListener = Callable[[dict[str, Any]], None]
"""A CHANGES message, heard in this process once the transaction that announced it has committed."""

_listeners: weakref.WeakKeyDictionary[Engine, list[ChangeListener]] = weakref.WeakKeyDictionary()


def announce(session: Session | Connection, channel: str, message: dict[str, Any]) -> None:
    """Queue a notification in the caller's transaction: for the other replicas (PostgreSQL only), and, for a change
    made through a Session, for this process's listeners once it commits."""
    if channel == CHANGES and isinstance(session, Session):
        _tell_listeners_after_commit(session, message)
    dialect = session.dialect if isinstance(session, Connection) else session.get_bind().dialect
    if dialect.name != "postgresql":
        return
    payload = json.dumps({**message, "o": PROCESS_ID}, separators=(",", ":"))
    session.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload})


@contextmanager
def changes_heard(engine: Engine, listener: ChangeListener) -> Iterator[None]:
    """While inside, `listener` hears every change announced in this process on `engine`'s database, after commit
    (in the thread that committed)."""
    listeners = _listeners.setdefault(engine, [])
    listeners.append(listener)
    try:
        yield
    finally:
        listeners.remove(listener)


def _tell_listeners_after_commit(session: Session, message: dict[str, Any]) -> None:
    bind = session.get_bind()
    listeners = _listeners.get(bind.engine)
    if not listeners:
        return
    heard = list(listeners)

    def tell(_session: Session) -> None:
        for listener in heard:
            try:
                listener(message)
            except Exception:  # committed all the same: one failed listener must not fail the request
                log.exception("a listener of %s failed", message)

    orm_event.listen(session, "after_commit", tell, once=True)


def listen_url(database_url: str) -> str | None:
    """The libpq address of a PostgreSQL database URL, or None for other databases."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql://" + database_url.removeprefix(prefix)
    return None


async def listen_forever(url: str, handle: Handler, on_connected: Callable[[], None]) -> None:
    """Hear both channels until cancelled, reconnecting with backoff. `on_connected` runs after every
    (re)connection: whatever was said while nobody listened is lost, so callers refresh everything then."""
    backoff = 0.5
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=5) as connection:
                await connection.execute(f"LISTEN {EVENTS}")
                await connection.execute(f"LISTEN {CHANGES}")
                backoff = 0.5
                on_connected()
                async for notification in connection.notifies():
                    _dispatch(notification.channel, notification.payload, handle)
        except psycopg.Error as exc:
            log.warning("replica notifications lost (%s); reconnecting in %.1f s", str(exc).strip(), backoff)
        await anyio.sleep(backoff)
        backoff = min(backoff * 2, 10.0)


def _dispatch(channel: str, payload: str, handle: Handler) -> None:
    try:
        message = json.loads(payload)
    except ValueError:
        log.warning("ignored a malformed notification on %s", channel)
        return
    if not isinstance(message, dict) or message.get("o") == PROCESS_ID:
        return  # our own: already handled in this process
    try:
        handle(channel, message)
    except Exception:  # one bad handler must not stop the listener
        log.exception("handling a notification on %s failed", channel)
