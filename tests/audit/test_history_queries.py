"""The audit history as the web UI reads it: filters and keyset pages on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from service.audit.queries import HistoryFilter, export_chunks, history_after, history_page
from service.audit.schemas import AuditRecord
from service.audit.service import record
from service.grants.service import create_grant
from service.security import TokenHasher


def seed(session: Session, hasher: TokenHasher) -> None:
    create_grant(session, hasher, name="bot", actor="test")
    for i in range(7):
        record(
            session,
            AuditRecord(
                kind="call", action="call.allowed", actor="agent:bot", grant_id=1, tool="echo", outcome="allow"
            ),
        )
        if i % 3 == 0:
            record(
                session,
                AuditRecord(
                    kind="call",
                    action="call.denied",
                    actor="agent:bot",
                    grant_id=1,
                    tool="rm",
                    outcome="deny",
                    reason="No deleting 100% of files",
                ),
            )
    record(
        session,
        AuditRecord(
            kind="request",
            action="request.approved",
            actor="user:ana",
            tool="echo",
            outcome="approved",
            details={"channel": "web"},
        ),
    )
    record(
        session,
        AuditRecord(
            kind="request",
            action="request.rejected",
            actor="user:ana",
            tool="echo",
            outcome="rejected",
            reason="no",
            details={"channel": "slack"},
        ),
    )
    session.flush()


def test_pages_go_newest_first_by_keyset_without_gaps_or_repeats(session: Session, hasher: TokenHasher) -> None:
    seed(session, hasher)
    seen: list[int] = []
    cursor = None
    while True:
        page = history_page(session, HistoryFilter(), cursor=cursor, limit=4)
        seen += [e.seq for e in page.events]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == sorted(seen, reverse=True)
    assert len(seen) == len(set(seen)) == 1 + 7 + 3 + 2  # the grant's creation, calls, denials, decisions


def test_each_filter_narrows_the_history(session: Session, hasher: TokenHasher) -> None:
    seed(session, hasher)

    def actions(**filters: str) -> list[str]:
        return [e.action for e in history_page(session, HistoryFilter(**filters), cursor=None).events]  # type: ignore[arg-type]

    assert set(actions(outcome="deny")) == {"call.denied"} and len(actions(outcome="deny")) == 3
    assert len(actions(tool="echo")) == 9
    assert len(actions(grant="bot")) == 10
    assert actions(grant="nobody") == []
    assert actions(approver="ana") == ["request.rejected", "request.approved"]
    assert actions(channel="slack") == ["request.rejected"]
    assert len(actions(text="100%")) == 3  # the % is matched as itself, not as a wildcard
    assert actions(text="RM") == ["call.denied"] * 3  # case-insensitive, over the tool too


def test_an_export_follows_the_filter_in_batches(session: Session, hasher: TokenHasher) -> None:
    seed(session, hasher)
    filters = HistoryFilter(tool="echo")
    first_batch = history_after(session, filters, after_seq=0, limit=5)
    first = first_batch.events
    assert len(first) == 5 and first_batch.resume_after == first[-1].seq
    rest_batch = history_after(session, filters, after_seq=first[-1].seq, limit=100)
    rest = rest_batch.events
    assert len(rest) == 4 and rest_batch.resume_after is None
    text = "".join(export_chunks(first, "csv", header=True)) + "".join(export_chunks(rest, "csv", header=False))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["tool"] for r in rows] == ["echo"] * 9
    lines = "".join(export_chunks(rest, "jsonl", header=False)).splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [e.seq for e in rest]


def test_a_time_range_keeps_exactly_the_events_inside_it(session: Session, hasher: TokenHasher) -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    moments = iter(t0 + timedelta(hours=i) for i in range(10))
    for i in range(10):
        record(
            session,
            AuditRecord(kind="call", action="call.allowed", actor="a", tool=f"t{i}"),
            clock=lambda: next(moments),
        )
    session.flush()

    def tools(since: datetime | None, until: datetime | None) -> list[str | None]:
        page = history_page(session, HistoryFilter(since=since, until=until), cursor=None)
        return [e.tool for e in page.events]

    assert tools(t0 + timedelta(hours=3), t0 + timedelta(hours=6)) == ["t5", "t4", "t3"]
    assert tools(t0 + timedelta(hours=8), None) == ["t9", "t8"]
    assert tools(None, t0 + timedelta(hours=1)) == ["t0"]
    assert tools(t0 + timedelta(days=1), None) == []  # after the newest event
    assert [
        e.tool for e in history_after(session, HistoryFilter(since=t0 + timedelta(hours=7)), after_seq=0).events
    ] == [
        "t7",
        "t8",
        "t9",
    ]
