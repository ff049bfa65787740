"""The single decision point: who may decide, quorum, self-approval, legal transitions, exactly-once release."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from service.approvals import deadlines, service
from service.approvals import standing as standing_service
from service.approvals.models import RequestStatus
from service.approvals.repository import ApprovalRepository
from service.approvals.schemas import Approver, Remember, Verdict
from service.audit.models import AuditEvent
from service.audit.service import verify
from service.db.engine import unit_of_work
from service.db.types import utcnow
from service.errors import Conflict, Forbidden, InvalidInput, Unavailable
from service.policy import counter_key, grant_owner
from service.security import TokenHasher
from service.users.models import Role
from tests.approvals.helpers import ADMIN, ANA, BO, OWNER, VIEWER, decide, held, hold
from tests.policy.helpers import IMAGE, T0, engine_for, fixture


def test_approve_then_claim_exactly_once(engine: Engine, hasher: TokenHasher) -> None:
    request_id, _ = held(engine, hasher)
    approved = decide(engine, request_id, ANA, reason="fine")
    assert approved.status is RequestStatus.APPROVED
    assert approved.decided_by == "ana"
    with unit_of_work(engine) as session:
        assert service.claim(session, request_id) is True
    with unit_of_work(engine) as session:
        assert service.claim(session, request_id) is False


def test_a_late_second_decision_says_who_decided_when(engine: Engine, hasher: TokenHasher) -> None:
    request_id, _ = held(engine, hasher)
    decide(engine, request_id, ANA)
    with pytest.raises(Conflict, match=r"already approved by ana at \d{4}-"):
        decide(engine, request_id, BO, Verdict.REJECT, reason="too late")


def test_who_may_decide(engine: Engine, hasher: TokenHasher) -> None:
    request_id, _ = held(engine, hasher)
    with pytest.raises(Forbidden, match="viewers"):
        decide(engine, request_id, VIEWER)
    with pytest.raises(Forbidden, match="self-approval"):
        decide(engine, request_id, OWNER)
    outsider_policy = fixture("airlock-demo.yaml").replace(
        "approvers: {roles: [approver]}", "approvers: {users: [zoe]}", 1
    )
    other_id, _ = held(engine, hasher, outsider_policy)
    with pytest.raises(Forbidden, match="not an approver for this rule"):
        decide(engine, other_id, ANA)
    assert decide(engine, other_id, ADMIN).status is RequestStatus.APPROVED  # an admin may always decide
    with unit_of_work(engine) as session:
        assert service.get(session, request_id).status is RequestStatus.PENDING  # refusals changed nothing


def test_slack_users_named_by_the_rule_may_decide(engine: Engine, hasher: TokenHasher) -> None:
    policy = fixture("airlock-demo.yaml").replace(
        "approvers: {roles: [approver]}", "approvers: {roles: [], slack_users: [U0BO]}", 1
    )
    request_id, _ = held(engine, hasher, policy)
    with pytest.raises(Forbidden):
        decide(engine, request_id, ANA)
    assert decide(engine, request_id, BO).status is RequestStatus.APPROVED


def test_quorum_needs_distinct_approvers(engine: Engine, hasher: TokenHasher) -> None:
    policy = fixture("airlock-demo.yaml").replace(
        "approvers: {roles: [approver]}", "approvers: {roles: [approver]}\n      quorum: 2", 1
    )
    request_id, _ = held(engine, hasher, policy)
    assert decide(engine, request_id, ANA).status is RequestStatus.PENDING
    with pytest.raises(Conflict, match="already approved"):
        decide(engine, request_id, ANA)
    assert decide(engine, request_id, BO).status is RequestStatus.APPROVED


def test_reject_needs_a_reason_and_gives_the_budget_back(engine: Engine, hasher: TokenHasher) -> None:
    request_id, counters = held(engine, hasher)
    spend_and_rate = [
        counter_key("image_spend", grant_owner("1"), 86400, T0),
        counter_key("generate_image_rate", grant_owner("1"), 60, T0),
    ]
    assert counters.peek(spend_and_rate, T0) == [668_000, 1]  # 4 x 0.167 USD in µ$, and one call
    with pytest.raises(InvalidInput, match="reason"):
        decide(engine, request_id, ANA, Verdict.REJECT)
    rejected = decide(engine, request_id, ANA, Verdict.REJECT, reason="too expensive", counters=counters)
    assert (rejected.status, rejected.decision_reason) == (RequestStatus.REJECTED, "too expensive")
    assert counters.peek(spend_and_rate, T0) == [0, 1]  # the budget came back; the call count stays


def test_edited_arguments_are_validated_and_kept_beside_the_original(engine: Engine, hasher: TokenHasher) -> None:
    rules = engine_for(fixture("airlock-demo.yaml"))
    request_id = hold(engine, hasher, rules)

    def validate(tool: str, arguments: Any) -> list[str]:
        return [] if arguments.get("n", 1) <= 4 else ["n must be at most 4"]

    with pytest.raises(InvalidInput, match="n must be at most 4"):
        decide(engine, request_id, ANA, patch={**IMAGE, "n": 9}, validate_arguments=validate, policy=rules)
    with pytest.raises(Unavailable, match="cannot be checked against the policy"):  # no policy: no edit
        decide(engine, request_id, ANA, patch={**IMAGE, "n": 1}, validate_arguments=validate)
    approved = decide(engine, request_id, ANA, patch={**IMAGE, "n": 1}, validate_arguments=validate, policy=rules)
    assert approved.edited_arguments == {**IMAGE, "n": 1}
    assert approved.arguments["n"] == 4


def test_expiry_by_the_sweeper_gives_the_budget_back(engine: Engine, hasher: TokenHasher) -> None:
    request_id, counters = held(engine, hasher)
    later = utcnow() + timedelta(minutes=16)
    with pytest.raises(Conflict, match="expired"):
        decide(engine, request_id, ANA, now=later)
    with unit_of_work(engine) as session:
        events = deadlines.expire_due(session, counters, now=later)
    assert [(e.kind, e.request_id) for e in events] == [("expired", request_id)]
    with unit_of_work(engine) as session:
        assert service.get(session, request_id).status is RequestStatus.EXPIRED
        assert deadlines.expire_due(session, counters, now=later) == []


def test_reminders_at_half_and_ninety_percent(engine: Engine, hasher: TokenHasher) -> None:
    held(engine, hasher)
    start = utcnow()
    with unit_of_work(engine) as session:
        assert deadlines.due_reminders(session, start + timedelta(minutes=1)) == []
        assert [e.detail["percent"] for e in deadlines.due_reminders(session, start + timedelta(minutes=8))] == [50]
        assert deadlines.due_reminders(session, start + timedelta(minutes=9)) == []
        assert [e.detail["percent"] for e in deadlines.due_reminders(session, start + timedelta(minutes=14))] == [90]
        assert deadlines.due_reminders(session, start + timedelta(minutes=14, seconds=50)) == []
        reminded = session.exec(select(AuditEvent).where(AuditEvent.action == "request.reminder")).all()
        assert [e.details["percent"] for e in reminded] == [50, 90]  # the request's timeline shows them


def test_the_sweeper_finds_due_work_from_the_index_alone(engine: Engine, hasher: TokenHasher) -> None:
    request_id, _ = held(engine, hasher)
    with unit_of_work(engine) as session:
        request = service.get(session, request_id)
        assert request.next_reminder_at == request.created_at + (request.deadline - request.created_at) / 2
        repository = ApprovalRepository(session)
        assert not repository.anything_due(request.created_at + timedelta(minutes=7))
        assert repository.anything_due(request.created_at + timedelta(minutes=8))  # the 50% reminder (15 min rule)
        deadlines.due_reminders(session, request.created_at + timedelta(minutes=8))
        assert not repository.anything_due(request.created_at + timedelta(minutes=13))
        assert repository.anything_due(request.created_at + timedelta(minutes=14))  # the 90% one
        deadlines.due_reminders(session, request.created_at + timedelta(minutes=14))
        assert service.get(session, request_id).next_reminder_at is None
        assert repository.anything_due(request.deadline)  # the expiry


def test_remember_creates_a_standing_approval_that_can_be_revoked(engine: Engine, hasher: TokenHasher) -> None:
    request_id, _ = held(engine, hasher)
    decide(engine, request_id, ANA, remember=Remember("arguments", timedelta(hours=1)))
    with unit_of_work(engine) as session:
        standing = standing_service.list_standing(session)
        assert len(standing) == 1
        request = service.get(session, request_id)
        assert standing_service.matching_standing(standing, "generate_image", request.arguments_digest) is not None
        assert standing_service.matching_standing(standing, "generate_image", "0" * 64) is None
        assert standing[0].id is not None
        standing_service.revoke_standing(session, standing[0].id, actor="ana")
    with unit_of_work(engine) as session:
        assert standing_service.list_standing(session) == []


def test_requester_gone_and_withdraw(engine: Engine, hasher: TokenHasher) -> None:
    request_id, _ = held(engine, hasher)
    with unit_of_work(engine) as session:
        assert [e.kind for e in service.requester_gone(session, request_id, cancel=False)] == ["requester_gone"]
    with unit_of_work(engine) as session:
        request = service.get(session, request_id)
        assert request.requester_gone and request.status is RequestStatus.PENDING
        assert [e.kind for e in service.withdraw(session, request_id, reason="tasks/cancel")] == ["cancelled"]
    with pytest.raises(Conflict, match="cancelled"):
        decide(engine, request_id, ANA)


def test_the_change_mark_moves_with_every_way_a_request_leaves_pending(engine: Engine, hasher: TokenHasher) -> None:
    """Held calls skip their cross-process check while the mark stands still, so each exit from `pending` must move
    it, and a read must not."""

    def mark() -> int:
        with unit_of_work(engine) as session:
            return service.change_mark(session)

    approved, rejected, expired, withdrawn = (held(engine, hasher, prompt=f"call {i}")[0] for i in range(4))
    before = mark()
    with unit_of_work(engine) as session:
        service.get(session, approved)
        service.decided_among(session, [approved, rejected])
    assert mark() == before
    steps: list[Callable[[], object]] = [
        lambda: decide(engine, approved, ANA),
        lambda: decide(engine, rejected, ANA, Verdict.REJECT, reason="no"),
        lambda: _withdraw(engine, withdrawn),
        lambda: _expire_now(engine, expired),  # the last one pending
    ]
    for step in steps:
        step()
        after = mark()
        assert after > before
        before = after


def _expire_now(engine: Engine, request_id: int) -> None:
    with unit_of_work(engine) as session:
        events = deadlines.expire_due(session, None, now=utcnow() + timedelta(hours=1))
    assert [e.request_id for e in events] == [request_id]


def _withdraw(engine: Engine, request_id: int) -> None:
    with unit_of_work(engine) as session:
        assert service.withdraw(session, request_id, reason="tasks/cancel")


def test_concurrent_decisions_release_exactly_once(engine: Engine, hasher: TokenHasher) -> None:
    """Fifty approve/reject/approve races from threads on one request: one decision wins, one claim runs."""
    request_id, _ = held(engine, hasher)
    approvers = [Approver(f"a{i}", Role.APPROVER, "web") for i in range(50)]
    outcomes: list[str] = []
    claims: list[bool] = []
    lock = threading.Lock()

    def race(index: int) -> None:
        verdict = Verdict.REJECT if index % 3 == 1 else Verdict.APPROVE
        try:
            decide(engine, request_id, approvers[index], verdict, reason="race")
            result = "won"
        except Conflict:
            result = "conflict"
        with unit_of_work(engine) as session:
            claimed = service.claim(session, request_id)
        with lock:
            outcomes.append(result)
            claims.append(claimed)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("won") == 1
    assert claims.count(True) <= 1
    with unit_of_work(engine) as session:
        final = service.get(session, request_id)
        assert claims.count(True) == (1 if final.status is RequestStatus.EXECUTING else 0)
        assert verify(session).ok
        decided = session.exec(
            select(AuditEvent).where(col(AuditEvent.action).in_(["request.approved", "request.rejected"]))
        ).all()
        assert len(decided) == 1


def test_two_processes_racing_on_one_request_release_it_once(engine: Engine, hasher: TokenHasher) -> None:
    """Two processes (as two replicas would), 25 threads each, approving, rejecting and claiming at once."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    request_id, _ = held(engine, hasher)
    url = engine.url.render_as_string(hide_password=False)
    worker = Path(__file__).with_name("race_worker.py")
    processes = [
        subprocess.Popen([sys.executable, str(worker), url, str(request_id), tag], stdout=subprocess.PIPE, text=True)
        for tag in ("a", "b")
    ]
    results = []
    for process in processes:
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0
        results += json.loads(out)
    assert len(results) == 50
    assert sum(1 for r in results if r["won"]) == 1
    with unit_of_work(engine) as session:
        final = service.get(session, request_id)
    expected_claims = 1 if final.status is RequestStatus.EXECUTING else 0
    assert sum(1 for r in results if r["claimed"]) == expected_claims
