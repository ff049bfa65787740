"""Revoking a grant cancels its calls that have not run: pending and approved-but-unclaimed requests, in the revoking
transaction, racing the claim so that exactly one of them wins; budgets come back only after the commit."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, text
from sqlmodel import col, select

from service.approvals import service
from service.approvals.models import RequestStatus
from service.approvals.schemas import Verdict
from service.audit.models import AuditEvent
from service.audit.service import verify
from service.counters import MemoryCounters
from service.db.engine import unit_of_work
from service.errors import Conflict
from service.grants.service import hold_live, revoke_grant
from service.policy import counter_key, grant_owner
from service.security import TokenHasher
from tests.approvals.helpers import ANA, decide, held
from tests.policy.helpers import T0

SPEND_KEY = counter_key("image_spend", grant_owner("1"), 86400, T0)
ONE_CALL_MICROS = 668_000  # 4 images at 0.167 USD, as the demo policy prices them


def spent(counters: MemoryCounters) -> int:
    return counters.peek([SPEND_KEY], T0)[0]


def revoke(engine: Engine, counters: MemoryCounters | None = None, actor: str = "user:root") -> list[str]:
    with unit_of_work(engine) as session:
        cancellation = revoke_grant(session, "bot", actor=actor)
    cancellation.settle(counters)
    return [e.kind for e in cancellation.events]


def test_revoking_cancels_pending_and_approved_calls_and_gives_their_budget_back(
    engine: Engine, hasher: TokenHasher
) -> None:
    counters = MemoryCounters()
    pending, _ = held(engine, hasher, counters=counters, prompt="pending")
    approved, _ = held(engine, hasher, counters=counters, prompt="approved")
    running, _ = held(engine, hasher, counters=counters, prompt="running")
    decide(engine, approved, ANA)
    decide(engine, running, ANA)
    with unit_of_work(engine) as session:
        assert service.claim(session, running)
    assert spent(counters) == 3 * ONE_CALL_MICROS

    assert revoke(engine, counters) == ["cancelled", "cancelled"]

    with unit_of_work(engine) as session:
        states = {r: service.get(session, r) for r in (pending, approved, running)}
        assert [states[r].status for r in (pending, approved, running)] == [
            RequestStatus.CANCELLED,
            RequestStatus.CANCELLED,
            RequestStatus.EXECUTING,  # claimed while the grant was live: it runs, and keeps its budget
        ]
        assert states[approved].decided_by == "ana"  # who approved it stays on the record
        cancels = session.exec(select(AuditEvent).where(AuditEvent.action == "request.cancelled")).all()
        assert sorted((e.request_id, e.actor, e.reason, e.details["was"]) for e in cancels) == [
            (pending, "user:root", "grant revoked", "pending"),
            (approved, "user:root", "grant revoked", "approved"),
        ]
        assert verify(session).ok
    assert spent(counters) == ONE_CALL_MICROS
    assert revoke(engine, counters) == []  # revoking again cancels nothing more, and gives nothing back twice
    assert spent(counters) == ONE_CALL_MICROS


def test_a_decision_or_claim_after_the_revocation_is_refused_with_its_reason(
    engine: Engine, hasher: TokenHasher
) -> None:
    pending, _ = held(engine, hasher, prompt="pending")
    approved, _ = held(engine, hasher, prompt="approved")
    decide(engine, approved, ANA)
    revoke(engine)
    with pytest.raises(Conflict, match=rf"^R-{pending} was cancelled: grant revoked$"):
        decide(engine, pending, ANA)
    with unit_of_work(engine) as session:
        assert service.claim(session, approved) is False
        assert service.get(session, approved).status is RequestStatus.CANCELLED


def test_no_request_opens_for_a_grant_once_it_is_revoked(engine: Engine, hasher: TokenHasher) -> None:
    held(engine, hasher)
    with unit_of_work(engine) as session:
        assert hold_live(session, 1) is True
    revoke(engine)
    with unit_of_work(engine) as session:
        assert hold_live(session, 1) is False
        assert hold_live(session, 999) is False


def test_claims_racing_a_revocation_each_lose_or_win_whole(engine: Engine, hasher: TokenHasher) -> None:
    """Twenty approved calls claimed from twenty threads while a twenty-first revokes the grant: every call ends
    either claimed (and not cancelled) or cancelled (and never claimed), and only the cancelled give budget back."""
    counters = MemoryCounters()
    requests = [held(engine, hasher, counters=counters, prompt=f"call {i}")[0] for i in range(20)]
    for request_id in requests:
        decide(engine, request_id, ANA)
    start = threading.Barrier(len(requests) + 1)
    claimed: dict[int, bool] = {}
    lock = threading.Lock()

    def claimer(request_id: int) -> None:
        start.wait()
        with unit_of_work(engine) as session:
            won = service.claim(session, request_id)
        with lock:
            claimed[request_id] = won

    def revoker() -> None:
        start.wait()
        revoke(engine, counters)

    threads = [threading.Thread(target=claimer, args=(r,)) for r in requests]
    threads.append(threading.Thread(target=revoker))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with unit_of_work(engine) as session:
        final = {r: service.get(session, r).status for r in requests}
        cancel_rows = session.exec(
            select(AuditEvent.request_id).where(col(AuditEvent.action) == "request.cancelled")
        ).all()
        assert verify(session).ok
    for request_id in requests:
        expected = RequestStatus.EXECUTING if claimed[request_id] else RequestStatus.CANCELLED
        assert final[request_id] is expected, request_id
    cancelled = {r for r in requests if not claimed[r]}
    assert set(cancel_rows) == cancelled and len(cancel_rows) == len(cancelled)
    assert spent(counters) == (len(requests) - len(cancelled)) * ONE_CALL_MICROS


def test_an_approval_racing_the_revocation_is_cancelled_too(engine: Engine, hasher: TokenHasher) -> None:
    """An approver's transaction that moves `pending -> approved` while the revocation runs: whichever order the
    database puts them in, the call ends cancelled, never approved for a revoked grant."""
    request_id, _ = held(engine, hasher)
    revoked = threading.Event()

    def revoker() -> None:
        revoke(engine)
        revoked.set()

    thread = threading.Thread(target=revoker)
    with unit_of_work(engine) as session:
        service.apply_verdict(session, request_id, ANA, Verdict.APPROVE)
        thread.start()  # on PostgreSQL it starts, then waits for this transaction's locks
        if engine.dialect.name == "postgresql":
            wait_until_a_backend_waits_for_a_lock(engine)
        assert not revoked.is_set()
    thread.join()
    with unit_of_work(engine) as session:
        assert service.get(session, request_id).status is RequestStatus.CANCELLED
        assert service.claim(session, request_id) is False


def wait_until_a_backend_waits_for_a_lock(engine: Engine) -> None:
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    for _ in range(2000):
        with engine.connect() as conn:
            if conn.execute(query).scalar_one():
                return
        threading.Event().wait(0.005)
    raise AssertionError("the revocation never waited for the approving transaction")
