"""Appending to, verifying, exporting and purging the hash-chained audit log.

Each event's hash covers its content and the previous event's hash. Sequence numbers are contiguous and
the head row holds the newest hash, so an edited row, a deleted row and a cut-off tail are all detected.
A purge deletes a prefix and records the hash at the cut as the new anchor, so what is left still verifies.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlmodel import Session

from service.arguments import arguments_digest, canonical_json, redact
from service.audit import repository
from service.audit.models import AuditEvent
from service.audit.repository import AuditRepository
from service.audit.schemas import AuditRecord, ChainReport
from service.db.types import utcnow

EXPORT_FIELDS = (
    "seq",
    "occurred_at",
    "kind",
    "action",
    "actor",
    "grant_id",
    "grant_name",
    "upstream",
    "tool",
    "outcome",
    "rule",
    "reason",
    "cost_micros",
    "argument_keys",
    "arguments_digest",
    "request_id",
    "details",
    "prev_hash",
    "hash",
)


def event_hash(event: AuditEvent | Mapping[str, Any]) -> str:
    values = event if isinstance(event, Mapping) else {name: getattr(event, name) for name in EXPORT_FIELDS}
    content = {name: values[name] for name in EXPORT_FIELDS if name != "hash"}
    content["occurred_at"] = values["occurred_at"].isoformat(timespec="microseconds")
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def describe_arguments(arguments: Mapping[str, Any]) -> tuple[list[str], str]:
    """What the audit keeps of a call's arguments: the keys and a digest, never the values."""
    return sorted(str(k) for k in arguments), arguments_digest(arguments)


def record(session: Session, entry: AuditRecord, *, clock: Callable[[], datetime] = utcnow) -> AuditEvent:
    """Append one event to the chain inside the caller's transaction."""
    return AuditEvent(**record_many(session, [entry], clock=clock)[0])


def record_many(
    session: Session | Connection, entries: Sequence[AuditRecord], *, clock: Callable[[], datetime] = utcnow
) -> list[dict[str, Any]]:
    """Append events in order with one read of the chain head, one insert and one head update."""
    seq, previous = repository.lock_head_link(session)
    rows = chain_rows(entries, seq, previous, clock)
    repository.insert_events(session, rows)
    repository.move_head(session, rows[-1]["seq"], rows[-1]["hash"])
    return rows


def chain_rows(
    entries: Sequence[AuditRecord], seq: int, previous: str, clock: Callable[[], datetime] = utcnow
) -> list[dict[str, Any]]:
    """The rows that extend the chain from (seq, previous), each hashed over its content and its predecessor."""
    rows = []
    for entry in entries:
        seq += 1
        row: dict[str, Any] = {
            "seq": seq,
            "occurred_at": clock(),
            "kind": entry.kind,
            "action": entry.action,
            "actor": entry.actor,
            "grant_id": entry.grant_id,
            "grant_name": entry.grant_name,
            "upstream": entry.upstream,
            "tool": entry.tool,
            "outcome": entry.outcome,
            "rule": entry.rule,
            "reason": entry.reason,
            "cost_micros": entry.cost_micros,
            "argument_keys": entry.argument_keys,
            "arguments_digest": entry.arguments_digest,
            "request_id": entry.request_id,
            # Details are shown in the web UI and exports: secrets and blobs never get in. redact() returns fresh
            # containers with string keys; the hash below refuses anything that is not JSON.
            "details": redact(entry.details, max_string=2000),
            "prev_hash": previous,
        }
        row["hash"] = previous = event_hash(row)
        rows.append(row)
    return rows


def audit_head_seq(session: Session) -> int:
    """The newest event's sequence number, from the chain's head row (one primary-key read)."""
    return AuditRepository(session).head().seq


def verify(session: Session) -> ChainReport:
    repo = AuditRepository(session)
    head = repo.head()
    expected_seq = head.anchor_seq + 1
    previous = head.anchor_hash
    checked = 0
    for event in repo.iter_chain():
        if event.seq != expected_seq:
            missing = "the first kept event" if checked == 0 else f"event {expected_seq}"
            return ChainReport(False, checked, head.seq, f"{missing} is missing (found {event.seq})", expected_seq)
        if event.prev_hash != previous:
            return ChainReport(
                False, checked, head.seq, f"event {event.seq} does not link to the one before", event.seq
            )
        if event_hash(event) != event.hash:
            return ChainReport(
                False, checked, head.seq, f"event {event.seq} was changed after it was written", event.seq
            )
        previous = event.hash
        expected_seq += 1
        checked += 1
    if expected_seq - 1 != head.seq or previous != head.hash:
        return ChainReport(False, checked, head.seq, f"events after {expected_seq - 1} are missing", expected_seq)
    return ChainReport(True, checked, head.seq)


def purge(session: Session, before: datetime, actor: str) -> int:
    """Delete events older than `before`; the hash at the cut becomes the anchor, and the purge is itself recorded."""
    repo = AuditRepository(session)
    head = repo.lock_head()
    cut = repo.last_seq_before(before)
    if cut is None or cut <= head.anchor_seq:
        return 0
    cut_event = repo.get_by_seq(cut)
    assert cut_event is not None
    deleted = repo.delete_through(cut)
    head.anchor_seq = cut
    head.anchor_hash = cut_event.hash
    session.add(head)
    session.flush()
    record(
        session,
        AuditRecord(
            kind="admin",
            action="audit.purged",
            actor=actor,
            details={
                "before": before.isoformat(),
                "deleted": deleted,
                "cut_seq": cut,
                "cut_hash": cut_event.hash,
            },
        ),
    )
    return deleted


def as_row(event: AuditEvent) -> dict[str, Any]:
    row = {name: getattr(event, name) for name in EXPORT_FIELDS}
    row["occurred_at"] = event.occurred_at.isoformat(timespec="microseconds")
    return row


def export(session: Session, *, since: datetime | None, until: datetime | None, fmt: str) -> Iterator[str]:
    """Stream the events as JSON lines or CSV, one chunk per event, without loading them all."""
    rows = (as_row(e) for e in AuditRepository(session).iter_range(since, until))
    yield from format_rows(rows, fmt)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet read a cell as a formula (OWASP, "CSV Injection")."""


def spreadsheet_safe(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula gets a leading apostrophe, as OWASP recommends: agents
    and approvers write tool names, reasons and details, and an export is opened by someone else."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def format_rows(rows: Iterable[dict[str, Any]], fmt: str, *, header: bool = True) -> Iterator[str]:
    """Rows (from as_row) as JSON lines or CSV, one chunk per row; CSV starts with its header unless told not to.
    Every export (the web UI's and `airlock audit export`) is written here, so every CSV cell is spreadsheet-safe."""
    if fmt == "jsonl":
        for row in rows:
            yield json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n"
        return
    buffer = io.StringIO()
    # RFC 4180 line ends: a field holding a lone CR is then quoted too, so it cannot split a row.
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS, lineterminator="\r\n")
    if header:
        writer.writeheader()
    for row in rows:
        row["argument_keys"] = json.dumps(row["argument_keys"]) if row["argument_keys"] is not None else ""
        row["details"] = json.dumps(row["details"], ensure_ascii=False)
        writer.writerow({name: spreadsheet_safe(value) for name, value in row.items()})
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.getvalue():
        yield buffer.getvalue()
