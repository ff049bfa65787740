"""The gateway's group-commit audit writer (service/audit/writer.py): one record that cannot be stored fails alone,
and every other record of its batch still commits."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from service.audit import service
from service.audit.models import AuditEvent
from service.audit.schemas import AuditRecord
from service.audit.writer import AuditWriter
from service.db.engine import make_engine
from service.errors import Unavailable

pytestmark = pytest.mark.anyio


def call(tool: str) -> AuditRecord:
    return AuditRecord(kind="call", action="call.allowed", actor="agent:bot", tool=tool, outcome="allow")


async def test_a_record_that_cannot_be_stored_fails_alone_and_its_batch_commits(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="service.audit.writer")
    writer = AuditWriter(engine)
    unstorable = AuditRecord(  # a lone surrogate is no UTF-8: neither the hash nor the database can take it
        kind="call", action="call.unknown_tool", actor="agent:other", tool="\ud800", outcome="unknown_tool"
    )
    waits = [asyncio.ensure_future(writer.commit(r)) for r in (call("first"), unstorable, call("second"))]
    writer.append(call("trailing"))
    # Started after each commit has queued its record (tasks run in the order they were scheduled): one batch.
    asyncio.get_running_loop().call_soon(writer.start)
    first, refused, second = await asyncio.gather(*waits, return_exceptions=True)
    writer.stop()

    assert isinstance(refused, Unavailable)
    assert isinstance(first, int) and isinstance(second, int) and first < second
    with Session(engine) as session:
        stored = session.exec(select(AuditEvent.tool).order_by(col(AuditEvent.seq))).all()
        report = service.verify(session)
    assert sorted(str(tool) for tool in stored) == ["first", "second", "trailing"]
    assert report.ok and report.checked == 3
    failures = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(failures) == 1, [r.getMessage() for r in failures]  # logged once, without a traceback
    assert "call.unknown_tool" in failures[0].getMessage() and failures[0].exc_info is None


async def test_when_the_database_cannot_be_reached_every_waiter_hears_it_in_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable = make_engine(f"sqlite:///{tmp_path}/no/such/folder/airlock.db")
    writer = AuditWriter(unreachable)
    waits = [asyncio.ensure_future(writer.commit(call(f"t{i}"))) for i in range(5)]
    asyncio.get_running_loop().call_soon(writer.start)
    answers = await asyncio.gather(*waits, return_exceptions=True)
    writer.stop()
    unreachable.dispose()
    assert all(isinstance(a, Unavailable) for a in answers)
    failures = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(failures) == 1 and "5 events" in failures[0].getMessage()  # not one line per record
