"""The read side of the audit log for people: filtered history pages (newest first, by keyset) and filtered exports.

The filters are the ones the web UI offers: a time range, tool, grant (by name), outcome, approver (by username),
channel, and free text over the tool and the reason (a case-insensitive fragment of either). Text of three characters
or more is found through a trigram index. Shorter text cannot use one and is matched by reading the events, so that
search reads SHORT_SEARCH_WINDOW events per page or export batch, newest first, and the next page goes on below them:
a page can come back with fewer rows than it could hold, or none, and still have an "older" page.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime

from sqlmodel import Session

from service.audit.models import AuditEvent
from service.audit.repository import HistoryRepository, UsageRepository
from service.audit.schemas import HistoryWhere, user_actor
from service.audit.service import as_row, format_rows
from service.errors import InvalidInput
from service.grants.repository import GrantRepository
from service.paging import parse_cursor

EXPORT_FORMATS = ("csv", "jsonl")
# Reading and matching an event costs 1-2 µs on the benchmark machine (SQLite's LIKE being the slower): a short search
# reads this many per request, which keeps a page well inside its 150 ms even when the text matches nothing.
SHORT_SEARCH_WINDOW = 25_000


@dataclass(frozen=True)
class HistoryFilter:
    since: datetime | None = None
    until: datetime | None = None
    tool: str | None = None
    grant: str | None = None
    outcome: str | None = None
    approver: str | None = None
    channel: str | None = None
    text: str | None = None


@dataclass
class HistoryPage:
    events: list[AuditEvent]
    next_cursor: str | None
    searched: tuple[int, int] | None = None
    """For a search too short for the index that stopped before the oldest event: the seqs it read, oldest first."""


@dataclass
class ExportBatch:
    events: list[AuditEvent]
    resume_after: int | None
    """The seq the next batch starts after; None when this was the last."""


def _where(session: Session, filters: HistoryFilter) -> HistoryWhere | None:
    """None when the filter cannot match anything (a grant that does not exist)."""
    grant_id = None
    if filters.grant:
        grant = GrantRepository(session).by_name(filters.grant)
        if grant is None:
            return None
        grant_id = grant.id
    return HistoryWhere(
        since=filters.since,
        until=filters.until,
        tool=filters.tool or None,
        grant_id=grant_id,
        outcome=filters.outcome or None,
        actor=user_actor(filters.approver) if filters.approver else None,
        channel=filters.channel or None,
        text=filters.text or None,
    )


def _short_search(where: HistoryWhere) -> bool:
    return where.text is not None and not HistoryRepository.text_is_indexed(where.text)


def history_page(session: Session, filters: HistoryFilter, *, cursor: str | None, limit: int = 50) -> HistoryPage:
    before = parse_cursor(cursor)
    where = _where(session, filters)
    if where is None:
        return HistoryPage([], None)
    repo = HistoryRepository(session)
    if not _short_search(where):
        rows = repo.newest_first(where, before_seq=before, limit=limit + 1)
        return HistoryPage(rows[:limit], str(rows[limit - 1].seq) if len(rows) > limit else None)
    span = repo.seq_span(where.since, where.until)
    if span is None:
        return HistoryPage([], None)
    top = span[1] if before is None else min(span[1], before - 1)
    bottom = max(span[0], top - SHORT_SEARCH_WINDOW + 1)
    rows = repo.newest_first(replace(where, min_seq=bottom, max_seq=top), before_seq=None, limit=limit + 1)
    if len(rows) > limit:
        return HistoryPage(rows[:limit], str(rows[limit - 1].seq))
    if bottom > span[0]:
        return HistoryPage(rows, str(bottom), searched=(bottom, top))
    return HistoryPage(rows, None)


def history_after(session: Session, filters: HistoryFilter, *, after_seq: int, limit: int = 2000) -> ExportBatch:
    """The next batch of an export, oldest first. Each batch can run in its own short transaction, so a long export
    never holds SQLite's write lock (every transaction there begins IMMEDIATE) while the agents' calls wait."""
    where = _where(session, filters)
    if where is None:
        return ExportBatch([], None)
    repo = HistoryRepository(session)
    if not _short_search(where):
        events = repo.oldest_first(where, after_seq=after_seq, limit=limit)
        return ExportBatch(events, events[-1].seq if len(events) == limit else None)
    span = repo.seq_span(where.since, where.until)
    if span is None:
        return ExportBatch([], None)
    start = max(span[0], after_seq + 1)
    end = min(span[1], start + SHORT_SEARCH_WINDOW - 1)
    events = repo.oldest_first(replace(where, min_seq=start, max_seq=end), after_seq=after_seq, limit=limit)
    if len(events) == limit:
        return ExportBatch(events, events[-1].seq)
    return ExportBatch(events, end if end < span[1] else None)


def export_chunks(events: Iterable[AuditEvent], fmt: str, *, header: bool) -> Iterator[str]:
    """Events as JSON lines or CSV rows, one chunk per event (CSV with its header line first when asked)."""
    if fmt not in EXPORT_FORMATS:
        raise InvalidInput(f"export as {' or '.join(EXPORT_FORMATS)}")
    yield from format_rows((as_row(e) for e in events), fmt, header=header)


@dataclass
class DayUsage:
    calls: int = 0
    allowed_cost_micros: int = 0


def usage_by_grant(session: Session, since: datetime) -> dict[int, dict[str, DayUsage]]:
    """Per grant and UTC day: the calls decided, and the cost of those allowed at once."""
    usage: dict[int, dict[str, DayUsage]] = {}
    for grant_id, day, calls, cost in UsageRepository(session).calls_per_grant_day(since):
        usage.setdefault(grant_id, {})[day] = DayUsage(calls, cost)
    return usage


def calls_by_outcome_per_hour(session: Session, since: datetime) -> dict[str, dict[str, int]]:
    """Per UTC hour ('YYYY-MM-DD HH:00'), the count of call decisions by outcome."""
    hours: dict[str, dict[str, int]] = {}
    for hour, outcome, count in UsageRepository(session).calls_per_outcome_hour(since):
        hours.setdefault(hour, {})[outcome] = count
    return hours


def last_calls(session: Session, grant_ids: Iterable[int]) -> dict[int, datetime | None]:
    repo = UsageRepository(session)
    return {grant_id: repo.last_call_at(grant_id) for grant_id in grant_ids}
