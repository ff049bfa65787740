"""The history's free-text search on SQLite and PostgreSQL: a case-insensitive fragment of the tool or the reason,
found through the trigram index (three characters or more) or by reading a bounded stretch of the log (shorter)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from service.audit import queries, service
from service.audit.queries import HistoryFilter, history_after, history_page
from service.audit.repository import DriverAppender
from service.audit.schemas import AuditRecord
from service.db.engine import unit_of_work

T0 = datetime(2026, 11, 1, tzinfo=UTC)

# (tool, reason) of the events seeded below, one event each, oldest first.
EVENTS: list[tuple[str | None, str | None]] = [
    ("generate_image", None),
    ("edit_image", "Saving images to server folders is not allowed."),
    ("exit_now", None),
    ("rm", "No deleting 100% of files"),
    ("rm", "No deleting 1000 files"),
    ("read_file", "Path C:\\temp\\x is outside the sandbox"),
    ("send_email", 'It\'s "quoted" on purpose'),
    ("send_email", "Überweisung für Café ☕ abgelehnt"),
    ("search", "Monthly budget exceeded (R-12)"),
    ("search", "Monthly budget exceeded (R-123)"),
    (None, None),  # an admin event: no tool, no reason
    ("GENERATE_IMAGE", "upper-case tool"),
]


def seed(session: Session) -> None:
    for i, (tool, reason) in enumerate(EVENTS):
        service.record(
            session,
            AuditRecord(kind="call", action="call.denied", actor="agent:bot", tool=tool, reason=reason),
            clock=lambda i=i: T0 + timedelta(minutes=i),  # type: ignore[misc]
        )
    session.flush()


def found(session: Session, fragment: str, **filters: object) -> list[int]:
    """The seqs the history shows for a search, every page followed, newest first."""
    seqs: list[int] = []
    cursor = None
    while True:
        page = history_page(session, HistoryFilter(text=fragment, **filters), cursor=cursor, limit=2)  # type: ignore[arg-type]
        seqs += [e.seq for e in page.events]
        if page.next_cursor is None:
            return seqs
        cursor = page.next_cursor


def exported(session: Session, fragment: str) -> list[int]:
    seqs: list[int] = []
    after: int | None = 0
    while after is not None:
        batch = history_after(session, HistoryFilter(text=fragment), after_seq=after, limit=2)
        seqs += [e.seq for e in batch.events]
        after = batch.resume_after
    return seqs


def seqs_of(*indexes: int) -> list[int]:
    """Seqs of EVENTS entries (seq = index + 1), newest first as the history shows them."""
    return sorted((i + 1 for i in indexes), reverse=True)


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("gener", seqs_of(0, 11)),  # in the tool, either case
        ("GENER", seqs_of(0, 11)),
        ("nErAtE_iM", seqs_of(0, 11)),
        ("budget", seqs_of(8, 9)),  # in the reason
        ("R-12", seqs_of(8, 9)),
        ("R-123", seqs_of(9)),
        ("(r-123)", seqs_of(9)),
        ("image", seqs_of(0, 1, 11)),  # in a tool and in a reason
        ("images to server", seqs_of(1)),  # across words, spaces included
        ("100%", seqs_of(3)),  # % is itself, not a wildcard: "1000" must not match
        ("0% of", seqs_of(3)),
        ("t_n", seqs_of(2)),  # _ is itself: "exit_now" only, not the "tin" of "deleting"
        ("e_i", seqs_of(0, 11)),  # nor the "eti" of "deleting"
        ("c:\\temp\\", seqs_of(5)),  # backslashes
        ("\\x is", seqs_of(5)),
        ('"quoted"', seqs_of(6)),  # double quotes (FTS5's own quoting)
        ("it's", seqs_of(6)),  # a single quote
        ('s "q', seqs_of(6)),
        ("für café", seqs_of(7)),  # unicode
        ("☕ ab", seqs_of(7)),
        ("no such text anywhere", []),
        ("imagex", []),
        ("budget exceeded (R-1234)", []),
    ],
)
def test_a_fragment_of_the_tool_or_the_reason_is_found(session: Session, fragment: str, expected: list[int]) -> None:
    seed(session)
    assert found(session, fragment) == expected
    assert exported(session, fragment) == sorted(expected)


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("RM", seqs_of(3, 4)),
        ("%", seqs_of(3)),
        ("_", seqs_of(0, 1, 2, 5, 6, 7, 11)),
        ("\\", seqs_of(5)),
        ('"', seqs_of(6)),
        ("'", seqs_of(6)),
        ("☕", seqs_of(7)),
        ("zq", []),
    ],
)
def test_a_fragment_shorter_than_three_characters_is_found_too(
    session: Session, fragment: str, expected: list[int]
) -> None:
    seed(session)
    assert found(session, fragment) == expected
    assert exported(session, fragment) == sorted(expected)


def test_a_short_search_reads_a_stretch_of_the_log_per_page_and_goes_on_below_it(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queries, "SHORT_SEARCH_WINDOW", 4)
    seed(session)
    first = history_page(session, HistoryFilter(text="rm"), cursor=None, limit=10)
    assert first.events == [] and first.searched == (9, 12) and first.next_cursor == "9"  # nothing in the newest four
    second = history_page(session, HistoryFilter(text="rm"), cursor=first.next_cursor, limit=10)
    assert [e.seq for e in second.events] == [5] and second.searched == (5, 8) and second.next_cursor == "5"
    third = history_page(session, HistoryFilter(text="rm"), cursor=second.next_cursor, limit=10)
    assert [e.seq for e in third.events] == [4]
    assert third.searched is None and third.next_cursor is None  # it read down to the oldest event
    assert found(session, "rm") == exported(session, "rm")[::-1] == [5, 4]
    # A time range narrows the stretch: no page reads past it.
    until = history_page(session, HistoryFilter(text="zq", until=T0 + timedelta(minutes=2)), cursor=None, limit=10)
    assert until.searched is None and until.next_cursor is None and until.events == []


def test_the_search_combines_with_the_other_filters_and_the_cursor(session: Session) -> None:
    seed(session)
    assert found(session, "image", tool="edit_image") == seqs_of(1)
    assert found(session, "image", since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=11)) == seqs_of(1)
    page = history_page(session, HistoryFilter(text="e"), cursor=None, limit=3)
    rest = history_page(session, HistoryFilter(text="e"), cursor=page.next_cursor, limit=100)
    assert [e.seq for e in page.events + rest.events] == found(session, "e")
    assert len(set(found(session, "e"))) == len(found(session, "e")) > 3


def test_a_purge_takes_its_events_out_of_the_search(engine: Engine) -> None:
    with unit_of_work(engine) as session:
        seed(session)
    with unit_of_work(engine) as session:
        assert found(session, "budget") == seqs_of(8, 9)
        deleted = service.purge(session, T0 + timedelta(minutes=9), actor="cli")  # events 1-9 go
    assert deleted == 9
    with unit_of_work(engine) as session:
        assert found(session, "budget") == seqs_of(9)
        assert found(session, "gener") == seqs_of(11)
        assert found(session, "folders") == []
        assert found(session, "rm") == []
        assert service.verify(session).ok
    if engine.dialect.name == "sqlite":  # the index itself lets go of them too (the join alone would hide them)
        with engine.connect() as connection:
            left = connection.execute(text("SELECT rowid FROM audit_search WHERE audit_search MATCH 'budget'"))
            assert list(left.scalars()) == [10]


def test_an_event_edited_by_hand_is_found_by_its_new_text(engine: Engine) -> None:
    """Airlock never edits an event, but a person with the database might: the search must show what the row says
    (and the chain's verification then says it was changed)."""
    with unit_of_work(engine) as session:
        seed(session)
    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_events SET reason = 'Rewritten by hand', tool = 'ed' WHERE seq = 9"))
    with unit_of_work(engine) as session:
        assert found(session, "budget") == seqs_of(9)
        assert found(session, "by hand") == [9]
        assert found(session, "search") == seqs_of(9)
        assert not service.verify(session).ok


def test_events_from_the_gateways_writer_are_searchable(engine: Engine) -> None:
    def denied(reason: str) -> AuditRecord:
        return AuditRecord(kind="call", action="call.denied", actor="agent:bot", tool="x", reason=reason)

    appender = DriverAppender(engine)
    try:
        appender.append(lambda seq, previous: service.chain_rows([denied("Quota Reached")], seq, previous))
        # A batch larger than one statement takes (SQLite gets 50 rows a statement).
        batch = [denied(f"Batch {i} of 120") for i in range(120)]
        appender.append(lambda seq, previous: service.chain_rows(batch, seq, previous))
    finally:
        appender.close()
    with unit_of_work(engine) as session:
        assert found(session, "quota reach") == [1]
        assert found(session, "batch 7") == [*range(81, 71, -1), 9]  # Batch 70-79 are seqs 72-81, Batch 7 is 9
        assert found(session, "of 120") == list(range(121, 1, -1))
        assert service.verify(session).ok


def test_the_search_reads_the_trigram_index(engine: Engine) -> None:
    """Without this the other tests would pass as well with a scan of the whole log."""
    with unit_of_work(engine) as session:
        seed(session)
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("SET LOCAL enable_seqscan = off"))  # the table is tiny: make a scan the last resort
            connection.execute(text("SET LOCAL enable_indexscan = off"))
            query = text("EXPLAIN SELECT seq FROM audit_events WHERE tool ILIKE :p OR reason ILIKE :p")
            plan = "\n".join(connection.execute(query, {"p": "%budget%"}).scalars())
        assert "ix_audit_events_tool_trgm" in plan and "ix_audit_events_reason_trgm" in plan
        # The plan is made for each text: a generic plan, which PostgreSQL may settle on for a statement prepared
        # and run often, would walk the whole log for a text that matches nothing.
        with unit_of_work(engine) as session:
            assert found(session, "budget") == seqs_of(8, 9)
            assert session.execute(text("SHOW plan_cache_mode")).scalar() == "force_custom_plan"
        return
    # SQLite: with the index emptied by hand, a search that reads it finds nothing, where a scan would still find.
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO audit_search (audit_search) VALUES ('delete-all')"))
    try:
        with unit_of_work(engine) as session:
            assert found(session, "budget") == []
            assert found(session, "RM") == seqs_of(3, 4)  # shorter than a trigram: read from the events
    finally:  # refilled, so that the triggers' deletes in the next test's clean-up find what they delete
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO audit_search (rowid, tool, reason) SELECT seq, tool, reason FROM audit_events")
            )
    with unit_of_work(engine) as session:
        assert found(session, "budget") == seqs_of(8, 9)
        # FTS5 folds the case of every letter, where SQLite's own LIKE folds only ASCII's.
        assert found(session, "FÜR CAFÉ") == seqs_of(7)
