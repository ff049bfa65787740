"""All SQL of the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, delete, func, insert, update
from sqlmodel import Session, col, select

from service.audit.models import AuditChainHead, AuditEvent

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
