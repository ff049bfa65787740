"""All SQL of the audit log."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Table,
    case,
    delete,
    exc,
    false,
    func,
    insert,
    or_,
    sql,
    text,
    update,
)
from sqlmodel import Session, col, select

from service.audit.models import AuditChainHead, AuditEvent
from service.audit.schemas import HistoryWhere
from service.db.dates import utc_day, utc_hour
from service.db.engine import write_turn

_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
HEAD_TABLE: Table = AuditChainHead.__table__  # type: ignore[attr-defined]
EVENTS_TABLE: Table = AuditEvent.__table__  # type: ignore[attr-defined]


# Appending works on a Session (admin actions, inside their unit of work) or on a plain Connection (the
# gateway's audit writer, which needs none of the ORM's bookkeeping on its hot path).
Executor = Session | Connection


def lock_head_link(executor: Executor) -> tuple[int, str]:
    """The newest link (sequence, hash), locked until the transaction ends."""
    row = executor.execute(
        select(HEAD_TABLE.c.seq, HEAD_TABLE.c.hash).where(HEAD_TABLE.c.id == 1).with_for_update()
    ).one()
    return int(row[0]), str(row[1])


def insert_events(executor: Executor, rows: list[dict[str, Any]]) -> None:
    executor.execute(insert(EVENTS_TABLE), rows)


def move_head(executor: Executor, seq: int, hash_: str) -> None:
    executor.execute(update(HEAD_TABLE).where(HEAD_TABLE.c.id == 1).values(seq=seq, hash=hash_))


class AuditRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def lock_head(self) -> AuditChainHead:
        """The chain head, locked until the transaction ends (FOR UPDATE on PostgreSQL; SQLite
        transactions here begin IMMEDIATE and so already hold the only write lock)."""
        head = self.session.exec(select(AuditChainHead).where(AuditChainHead.id == 1).with_for_update()).first()
        if head is None:
            head = AuditChainHead(id=1)
            self.session.add(head)
            self.session.flush()
        return head

    def head(self) -> AuditChainHead:
        return self.session.get(AuditChainHead, 1) or AuditChainHead(id=1)

    def add(self, event: AuditEvent, head: AuditChainHead) -> None:
        self.session.add(event)
        self.session.add(head)
        self.session.flush()

    def iter_chain(self, batch: int = 2000) -> Iterator[AuditEvent]:
        """Every event in chain order, read in batches by keyset so memory stays flat."""
        last = -1
        while True:
            rows = self.session.exec(
                select(AuditEvent).where(AuditEvent.seq > last).order_by(col(AuditEvent.seq)).limit(batch)
            ).all()
            if not rows:
                return
            yield from rows
            last = rows[-1].seq
            self.session.expunge_all()

    def iter_range(self, since: datetime | None, until: datetime | None, batch: int = 2000) -> Iterator[AuditEvent]:
        last = -1
        while True:
            query = select(AuditEvent).where(AuditEvent.seq > last)
            if since is not None:
                query = query.where(AuditEvent.occurred_at >= since)
            if until is not None:
                query = query.where(AuditEvent.occurred_at < until)
            rows = self.session.exec(query.order_by(col(AuditEvent.seq)).limit(batch)).all()
            if not rows:
                return
            yield from rows
            last = rows[-1].seq
            self.session.expunge_all()

    def last_seq_before(self, before: datetime) -> int | None:
        value = self.session.exec(select(func.max(AuditEvent.seq)).where(AuditEvent.occurred_at < before)).one()
        return int(value) if value is not None else None

    def get_by_seq(self, seq: int) -> AuditEvent | None:
        return self.session.exec(select(AuditEvent).where(AuditEvent.seq == seq)).first()

    def delete_through(self, seq: int) -> int:
        result = self.session.exec(delete(AuditEvent).where(col(AuditEvent.seq) <= seq))
        return int(result.rowcount or 0)

    def count(self) -> int:
        return int(self.session.exec(select(func.count()).select_from(AuditEvent)).one())


_SQLITE_ROWS_PER_INSERT = 50


class DriverAppender:
    """Appends batches of chain rows straight through the database driver.

    The gateway's audit writer runs this for every tool call. Each SQLAlchemy execute cost 0.2-0.4 ms of CPU
    on the benchmark machine while the statements themselves take 60 µs, so the writer keeps one DBAPI
    connection and three fixed statements per engine. The rows are the ones `chain_rows` built; the column
    encodings below are what SQLAlchemy itself stores (UTC text on SQLite, timestamptz and json on PostgreSQL),
    so everything else reads these rows through the ORM unchanged.
    """

    _COLUMNS = (
        "seq", "occurred_at", "kind", "action", "actor", "grant_id", "grant_name", "upstream", "tool", "outcome",
        "rule", "reason", "cost_micros", "argument_keys", "arguments_digest", "request_id", "details",
        "prev_hash", "hash",
    )  # fmt: skip
    _JSON = frozenset({"argument_keys", "details"})

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        mark = "?" if self._sqlite else "%s"
        values = ", ".join(f"{mark}::json" if (c in self._JSON and not self._sqlite) else mark for c in self._COLUMNS)
        self._insert = f"INSERT INTO audit_events ({', '.join(self._COLUMNS)}) VALUES ({values})"  # noqa: S608 - fixed text
        # SQLite's search index (FTS5, filled by a trigger) writes what it holds to disk at every statement of a
        # transaction, so a batch goes in as one statement of many rows: in batches of 20 the index then costs 8 µs
        # of CPU an event instead of 44. Up to 50 rows a statement keeps under the 999 parameters of older builds.
        self._insert_rows = {
            n: f"INSERT INTO audit_events ({', '.join(self._COLUMNS)}) VALUES {', '.join([f'({values})'] * n)}"  # noqa: S608
            for n in range(1, _SQLITE_ROWS_PER_INSERT + 1)
        }
        lock = "" if self._sqlite else " FOR UPDATE"
        self._head = f"SELECT seq, hash FROM audit_chain_head WHERE id = 1{lock}"  # noqa: S608 - fixed text
        self._move = f"UPDATE audit_chain_head SET seq = {mark}, hash = {mark} WHERE id = 1"  # noqa: S608 - fixed text
        self._connection: Any = None

    def append(self, build: Callable[[int, str], list[dict[str, Any]]]) -> list[dict[str, Any]]:
        """Lock the head, let `build` make the rows from it, insert them and move the head; one commit."""
        connection = self._connection or self._connect()
        try:
            with write_turn(self._engine):
                cursor = connection.cursor()
                if self._sqlite:
                    cursor.execute("BEGIN IMMEDIATE")
                cursor.execute(self._head)
                seq, previous = cursor.fetchone()
                rows = build(int(seq), str(previous))
                if self._sqlite:
                    for start in range(0, len(rows), _SQLITE_ROWS_PER_INSERT):
                        chunk = rows[start : start + _SQLITE_ROWS_PER_INSERT]
                        cursor.execute(self._insert_rows[len(chunk)], [v for row in chunk for v in self._encode(row)])
                else:
                    cursor.executemany(self._insert, [self._encode(row) for row in rows])
                cursor.execute(self._move, (rows[-1]["seq"], rows[-1]["hash"]))
                connection.commit()
                cursor.close()
        except Exception:
            self.close()  # a broken connection is replaced on the next batch
            raise
        return rows

    def is_outage(self, error: Exception) -> bool:
        """Whether an append failed because the database cannot be written at all (unreachable, locked, gone), as
        opposed to refusing what one row holds: retrying the rows one by one would then only fail again."""
        dbapi = self._engine.dialect.loaded_dbapi
        return isinstance(
            error, (exc.OperationalError, exc.InterfaceError, dbapi.OperationalError, dbapi.InterfaceError)
        )

    def _encode(self, row: dict[str, Any]) -> tuple[Any, ...]:
        values = []
        for column in self._COLUMNS:
            value = row[column]
            if column in self._JSON:
                value = None if value is None else _COMPACT.encode(value)
            elif column == "occurred_at" and self._sqlite:
                value = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
            values.append(value)
        return tuple(values)

    def _connect(self) -> Any:
        self._connection = self._engine.raw_connection()
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.rollback()
            with contextlib.suppress(Exception):
                self._connection.invalidate()
            self._connection = None


# The free-text search finds a fragment of the tool or the reason through a trigram index: FTS5's trigram tokenizer on
# SQLite (the table `audit_search`, keyed by seq and kept in step by triggers: migration 0007), pg_trgm's GIN indexes on
# PostgreSQL. A trigram index can only find text of three characters or more; anything shorter is matched by reading
# the rows, which the caller bounds (queries.SHORT_SEARCH_WINDOW).
SEARCH_MIN_CHARS = 3
SEARCH_TABLE = sql.table("audit_search", sql.column("rowid", BigInteger), sql.column("audit_search"))


def _phrase(text: str) -> str:
    """The text as one FTS5 phrase: with the trigram tokenizer that is a case-insensitive substring match, and inside
    the quotes nothing but a doubled quote means anything to FTS5."""
    return '"' + text.replace('"', '""') + '"'


class HistoryRepository:
    """The audit history as the web UI pages through it: filtered, by keyset on seq (never OFFSET)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._dialect = session.get_bind().dialect.name

    @staticmethod
    def text_is_indexed(text: str) -> bool:
        return len(text) >= SEARCH_MIN_CHARS

    def seq_span(self, since: datetime | None, until: datetime | None) -> tuple[int, int] | None:
        """The lowest and highest seq of the events in the time range, or None when it holds none."""
        # Two statements: each of min() and max() alone is one step down an index, together they are a scan.
        low = self.session.exec(select(func.min(AuditEvent.seq))).one()
        high = self.session.exec(select(func.max(AuditEvent.seq))).one()
        if low is None or high is None:
            return None
        if since is not None:
            first = self._first_seq_at_or_after(since)
            if first is None:
                return None
            low = max(low, first)
        if until is not None:
            after = self._first_seq_at_or_after(until)
            if after is not None:
                high = min(high, after - 1)
        return (low, high) if low <= high else None

    def _first_seq_at_or_after(self, moment: datetime) -> int | None:
        return self.session.exec(
            select(AuditEvent.seq)
            .where(col(AuditEvent.occurred_at) >= moment)
            .order_by(col(AuditEvent.occurred_at))
            .limit(1)
        ).first()

    def _query(self, where: HistoryWhere) -> tuple[Any, Any]:
        """The filtered query, and the seq column to bound and order it by."""
        if where.text and self._dialect == "sqlite" and self.text_is_indexed(where.text):
            # The search table leads: it hands out matching seqs newest (or oldest) first, within the seq bounds, and
            # each is joined to its event; so a page stops after its rows, however many events match.
            joined = SEARCH_TABLE.join(EVENTS_TABLE, EVENTS_TABLE.c.seq == SEARCH_TABLE.c.rowid)
            query = select(AuditEvent).select_from(joined)
            query = query.where(SEARCH_TABLE.c.audit_search.op("MATCH")(_phrase(where.text)))
            return self._filtered(query, where, SEARCH_TABLE.c.rowid, text_done=True), SEARCH_TABLE.c.rowid
        if where.text and self._dialect == "postgresql":
            # The best plan depends on the text: a walk down seq that stops at the page's rows for a common text, the
            # trigram indexes for a rare one. The planner tells them apart by the column statistics, but only in a plan
            # made for this very text: psycopg prepares a statement run often, and PostgreSQL may then settle on one
            # generic plan for every text.
            self.session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        return self._filtered(select(AuditEvent), where, col(AuditEvent.seq), text_done=False), col(AuditEvent.seq)

    def _filtered(self, query: Any, where: HistoryWhere, seq: Any, *, text_done: bool) -> Any:
        # Events are appended in time order under the chain's lock, so a time range is also a range of seq. Bounding
        # seq as well lets the (filter, seq) indexes walk only that range instead of the log from its newest end.
        if where.since is not None:
            query = query.where(col(AuditEvent.occurred_at) >= where.since)
            first = self._first_seq_at_or_after(where.since)
            query = query.where(seq >= first) if first is not None else query.where(false())
        if where.until is not None:
            query = query.where(col(AuditEvent.occurred_at) < where.until)
            after = self._first_seq_at_or_after(where.until)
            if after is not None:
                query = query.where(seq < after)
        if where.min_seq is not None:
            query = query.where(seq >= where.min_seq)
        if where.max_seq is not None:
            query = query.where(seq <= where.max_seq)
        if where.tool:
            query = query.where(AuditEvent.tool == where.tool)
        if where.grant_id is not None:
            query = query.where(AuditEvent.grant_id == where.grant_id)
        if where.outcome:
            query = query.where(AuditEvent.outcome == where.outcome)
        if where.actor:
            query = query.where(AuditEvent.actor == where.actor)
        if where.channel:
            query = query.where(col(AuditEvent.details)["channel"].as_string() == where.channel)
        if where.text and not text_done:
            pattern = "%" + where.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            query = query.where(
                or_(
                    col(AuditEvent.tool).ilike(pattern, escape="\\"),
                    col(AuditEvent.reason).ilike(pattern, escape="\\"),
                )
            )
        return query

    def newest_first(self, where: HistoryWhere, *, before_seq: int | None, limit: int) -> list[AuditEvent]:
        query, seq = self._query(where)
        if before_seq is not None:
            query = query.where(seq < before_seq)
        return list(self.session.exec(query.order_by(seq.desc()).limit(limit)).all())

    def oldest_first(self, where: HistoryWhere, *, after_seq: int, limit: int) -> list[AuditEvent]:
        query, seq = self._query(where)
        query = query.where(seq > after_seq)
        return list(self.session.exec(query.order_by(seq).limit(limit)).all())


CALL_DECISIONS = ("call.allowed", "call.denied", "call.rate_limited", "call.held")


class UsageRepository:
    """Counts over the audit log for the grants page and the dashboard."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def calls_per_grant_day(self, since: datetime) -> list[tuple[int, str, int, int]]:
        """(grant id, UTC day, calls decided, cost of the calls allowed at once in micro-USD)."""
        day = utc_day(self.session, AuditEvent.occurred_at)
        allowed_cost = func.sum(
            case((col(AuditEvent.action) == "call.allowed", func.coalesce(AuditEvent.cost_micros, 0)), else_=0)
        )
        rows = self.session.exec(
            select(AuditEvent.grant_id, day, func.count(), allowed_cost)
            .where(col(AuditEvent.occurred_at) >= since, col(AuditEvent.action).in_(CALL_DECISIONS))
            .group_by(col(AuditEvent.grant_id), day)
        ).all()
        return [(int(g), str(d), int(n), int(c or 0)) for g, d, n, c in rows if g is not None]

    def calls_per_outcome_hour(self, since: datetime) -> list[tuple[str, str, int]]:
        hour = utc_hour(self.session, AuditEvent.occurred_at)
        rows = self.session.exec(
            select(hour, AuditEvent.outcome, func.count())
            .where(col(AuditEvent.occurred_at) >= since, col(AuditEvent.action).in_(CALL_DECISIONS))
            .group_by(hour, col(AuditEvent.outcome))
        ).all()
        return [(str(h), str(o), int(n)) for h, o, n in rows]

    def last_call_at(self, grant_id: int) -> datetime | None:
        """The newest call of a grant: the (grant_id, seq) index answers it without a scan."""
        return self.session.exec(
            select(AuditEvent.occurred_at)
            .where(AuditEvent.grant_id == grant_id, AuditEvent.kind == "call")
            .order_by(col(AuditEvent.seq).desc())
            .limit(1)
        ).first()
