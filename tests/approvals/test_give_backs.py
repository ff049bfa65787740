"""Budgets come back on every way a request leaves without running (withdraw, requester-gone cancel, expiry,
rejection, revocation), and only once the transition has committed: a give-back inside a transaction that then
rolls back would leave a call that may still run without its reservation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from service.approvals import deadlines, service
from service.approvals.models import RequestStatus
from service.approvals.schemas import Verdict
from service.counters import MemoryCounters
from service.db.engine import reading, unit_of_work
from service.db.types import utcnow
from service.grants.service import revoke_grant
from service.policy import counter_key, grant_owner
from service.policy.counters import ReservedItem
from service.security import TokenHasher
from tests.approvals.helpers import ANA, held
from tests.policy.helpers import T0

SPEND_KEY = counter_key("image_spend", grant_owner("1"), 86400, T0)
ONE_CALL_MICROS = 668_000  # 4 images at 0.167 USD, as the demo policy prices them


class WitnessedCounters(MemoryCounters):
    """Counters that note, at each give-back, the request's status as another connection sees it (committed)."""

    def __init__(self, db: Engine) -> None:
        super().__init__()
        self.db = db
        self.request_id = 0
        self.seen: list[RequestStatus] = []

    def release(self, items: Sequence[ReservedItem]) -> None:
        with reading(self.db) as session:
            self.seen.append(service.get(session, self.request_id).status)
        super().release(items)


def withdraw(session: Session, request_id: int, counters: WitnessedCounters) -> None:
    service.withdraw(session, request_id, reason="tasks/cancel", counters=counters)


def requester_gone(session: Session, request_id: int, counters: WitnessedCounters) -> None:
    service.requester_gone(session, request_id, cancel=True, counters=counters)


def expire(session: Session, request_id: int, counters: WitnessedCounters) -> None:
    deadlines.expire_due(session, counters, now=utcnow() + timedelta(hours=1))


def reject(session: Session, request_id: int, counters: WitnessedCounters) -> None:
    service.apply_verdict(session, request_id, ANA, Verdict.REJECT, reason="too dear", counters=counters)


def revoke(session: Session, request_id: int, counters: WitnessedCounters) -> None:
    # A revocation gives back in `settle`, which its callers run after the commit.
    session.info.setdefault("revoked", []).append(revoke_grant(session, "bot", actor="user:root"))


WAYS: dict[str, tuple[Callable[[Session, int, WitnessedCounters], None], RequestStatus]] = {
    "withdraw": (withdraw, RequestStatus.CANCELLED),
    "requester_gone_cancel": (requester_gone, RequestStatus.CANCELLED),
    "expiry": (expire, RequestStatus.EXPIRED),
    "rejection": (reject, RequestStatus.REJECTED),
    "revocation": (revoke, RequestStatus.CANCELLED),
}


@pytest.mark.parametrize("way", sorted(WAYS))
def test_the_budget_comes_back_once_after_the_transition_commits(engine: Engine, hasher: TokenHasher, way: str) -> None:
    leave, final = WAYS[way]
    counters = WitnessedCounters(engine)
    counters.request_id, _ = held(engine, hasher, counters=counters)
    assert counters.peek([SPEND_KEY], T0)[0] == ONE_CALL_MICROS

    with unit_of_work(engine) as session:
        leave(session, counters.request_id, counters)
    for cancellation in session.info.get("revoked", []):
        cancellation.settle(counters)

    assert counters.peek([SPEND_KEY], T0)[0] == 0
    assert counters.seen == [final]  # given back once, and only when the new state was already committed


@pytest.mark.parametrize("way", sorted(set(WAYS) - {"revocation"}))
def test_a_transition_that_rolls_back_gives_nothing_back(engine: Engine, hasher: TokenHasher, way: str) -> None:
    leave, _final = WAYS[way]
    counters = WitnessedCounters(engine)
    counters.request_id, _ = held(engine, hasher, counters=counters)

    class Abort(Exception):
        """The transaction fails after the transition, before its commit."""

    def leave_then_fail() -> None:
        with unit_of_work(engine) as session:
            leave(session, counters.request_id, counters)
            raise Abort

    with pytest.raises(Abort):
        leave_then_fail()

    with reading(engine) as session:
        assert service.get(session, counters.request_id).status is RequestStatus.PENDING
    assert counters.peek([SPEND_KEY], T0)[0] == ONE_CALL_MICROS  # still reserved: the call may still be approved
    assert counters.seen == []
