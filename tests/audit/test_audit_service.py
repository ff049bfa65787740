from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text
from sqlmodel import Session

from service.audit import service
from service.audit.schemas import AuditRecord, ChainReport
from service.db.engine import unit_of_work


def fixed(at: datetime) -> Callable[[], datetime]:
    return lambda: at


def add_events(engine: Engine, count: int, *, start: datetime | None = None, **extra: object) -> None:
    base = start or datetime(2026, 11, 1, tzinfo=UTC)
    for i in range(count):
        with unit_of_work(engine) as session:
            service.record(
                session,
                AuditRecord(
                    kind="call",
                    action="call.allowed",
                    actor="agent:bot",
                    tool="t",
                    outcome="allow",
                    details={"i": i, **extra},
                ),
                clock=fixed(base + timedelta(minutes=i)),
            )


def verify(engine: Engine) -> ChainReport:
    with Session(engine) as session:
        return service.verify(session)


def test_a_clean_chain_verifies(engine: Engine) -> None:
    add_events(engine, 5)
    report = verify(engine)
    assert report.ok and report.checked == 5 and report.head_seq == 5


def test_an_edited_row_is_detected(engine: Engine) -> None:
    add_events(engine, 5)
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET outcome = 'deny' WHERE seq = 3"))
    report = verify(engine)
    assert not report.ok and report.first_bad_seq == 3 and "changed" in (report.problem or "")


def test_a_deleted_row_is_detected(engine: Engine) -> None:
    add_events(engine, 5)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = 2"))
    report = verify(engine)
    assert not report.ok and report.first_bad_seq == 2


def test_a_cut_off_tail_is_detected(engine: Engine) -> None:
    add_events(engine, 5)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq >= 4"))
    report = verify(engine)
    assert not report.ok and "missing" in (report.problem or "")


def test_a_deleted_first_row_is_detected(engine: Engine) -> None:
    add_events(engine, 3)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = 1"))
    assert not verify(engine).ok


def test_purge_keeps_the_rest_verifiable_and_is_itself_recorded(engine: Engine) -> None:
    add_events(engine, 10)  # one a minute from 00:00
    with unit_of_work(engine) as session:
        deleted = service.purge(session, datetime(2026, 11, 1, 0, 4, 30, tzinfo=UTC), actor="cli")
    assert deleted == 5
    report = verify(engine)
    assert report.ok and report.checked == 6  # five left plus the purge event
    with Session(engine) as session:
        rows = [json.loads(line) for line in service.export(session, since=None, until=None, fmt="jsonl")]
    assert rows[0]["seq"] == 6
    assert rows[-1]["action"] == "audit.purged"
    assert rows[-1]["details"]["cut_hash"] == rows[0]["prev_hash"]
    # Tampering after a purge is still caught.
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = 6"))
    assert not verify(engine).ok


def test_details_never_keep_secrets_or_blobs(engine: Engine) -> None:
    with unit_of_work(engine) as session:
        event = service.record(
            session,
            AuditRecord(
                kind="call",
                action="call.allowed",
                actor="agent:x",
                details={"api_key": "sk-live-123", "image": "A" * 5000},
            ),
        )
    assert event.details["api_key"] == "[REDACTED]"
    assert event.details["image"].startswith("[blob 5000 chars sha256:")
    assert verify(engine).ok


def test_export_filters_by_time_and_streams_csv(engine: Engine) -> None:
    add_events(engine, 6)
    with Session(engine) as session:
        chunks = list(
            service.export(
                session,
                since=datetime(2026, 11, 1, 0, 2, tzinfo=UTC),
                until=datetime(2026, 11, 1, 0, 4, tzinfo=UTC),
                fmt="csv",
            )
        )
    assert len(chunks) >= 2  # the header and each row come out as they are read
    rows = list(csv.DictReader(io.StringIO("".join(chunks))))
    assert [int(r["seq"]) for r in rows] == [3, 4]
    assert json.loads(rows[0]["details"]) == {"i": 2}


def test_concurrent_appenders_keep_one_chain(engine: Engine) -> None:
    import threading

    errors: list[BaseException] = []

    def append(n: int) -> None:
        try:
            for _ in range(n):
                with unit_of_work(engine) as session:
                    service.record(session, AuditRecord(kind="call", action="call.allowed", actor="agent:x"))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(15,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    report = verify(engine)
    assert report.ok and report.checked == 60


FORMULAS = ['=HYPERLINK("https://evil.example","x")', "+1+1", "-2+3", "@SUM(A1:A2)", "\t=1", "\r=1"]
"""Cells a spreadsheet would run as formulas (OWASP, CSV injection): each gets a leading apostrophe."""


def add_formula_events(engine: Engine) -> None:
    for formula in FORMULAS:
        with unit_of_work(engine) as session:
            service.record(
                session,
                AuditRecord(kind="call", action="call.denied", actor="agent:" + formula, tool=formula, reason=formula),
            )


def exported_formula_cells(csv_text: str) -> list[tuple[str, str, str]]:
    rows = [r for r in csv.DictReader(io.StringIO(csv_text)) if r["action"] == "call.denied"]
    return [(r["actor"], r["tool"], r["reason"]) for r in rows]


def neutralised(formula: str) -> str:
    return "'" + formula


def test_csv_export_neutralises_formula_cells(engine: Engine) -> None:
    add_formula_events(engine)
    with Session(engine) as session:
        text_out = "".join(service.export(session, since=None, until=None, fmt="csv"))
    assert exported_formula_cells(text_out) == [("agent:" + f, neutralised(f), neutralised(f)) for f in FORMULAS]
    with Session(engine) as session:  # JSON lines keep the exact values: no spreadsheet reads them
        lines = [json.loads(line) for line in service.export(session, since=None, until=None, fmt="jsonl")]
    assert [line["reason"] for line in lines] == FORMULAS
