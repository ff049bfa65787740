"""What a decision releases: votes bound to the digest they approved, an edit re-priced and evaluated again, and
"remember" only for the call that runs and only when the whole quorum asked for it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from service.approvals import service
from service.approvals import standing as standing_service
from service.approvals.models import RequestStatus, ToolCallRequest
from service.approvals.schemas import Approver, Remember, Verdict
from service.arguments import arguments_digest
from service.audit.models import AuditEvent
from service.audit.service import verify
from service.counters import MemoryCounters
from service.db.engine import unit_of_work
from service.errors import Conflict, Forbidden, InvalidInput
from service.policy import PolicyEngine, counter_key, grant_owner
from service.security import TokenHasher
from service.users.models import Role
from tests.approvals.helpers import ANA, BO, decide, hold
from tests.policy.helpers import IMAGE, T0, engine_for, fixture

CY = Approver("cy", Role.APPROVER, "api")
DEMO = fixture("airlock-demo.yaml")
QUORUM_2 = DEMO.replace("approvers: {roles: [approver]}", "approvers: {roles: [approver]}\n      quorum: 2", 1)
SPEND = counter_key("image_spend", grant_owner("1"), 86400, T0)


def policy(document: str = DEMO, counters: MemoryCounters | None = None) -> PolicyEngine:
    return engine_for(document, counters=counters or MemoryCounters())


def spent(engine: PolicyEngine) -> int:
    """Micro-dollars the grant's daily image budget holds now."""
    return engine.counters.peek([SPEND], T0)[0]


def current(engine: Engine, request_id: int) -> ToolCallRequest:
    with unit_of_work(engine) as session:
        return service.get(session, request_id)


def approved_event(engine: Engine, request_id: int) -> dict[str, Any]:
    with unit_of_work(engine) as session:
        event = session.exec(
            select(AuditEvent).where(AuditEvent.request_id == request_id, AuditEvent.action == "request.approved")
        ).one()
        return dict(event.details)


def test_an_edit_resets_the_votes_and_runs_only_after_a_full_quorum_on_it(engine: Engine, hasher: TokenHasher) -> None:
    rules = policy(QUORUM_2)
    request_id = hold(engine, hasher, rules)
    original = current(engine, request_id).review_digest
    assert decide(engine, request_id, ANA, policy=rules).status is RequestStatus.PENDING
    # Bo's edit would make two votes, but Ana voted for other arguments: the edit cannot ride on her vote.
    after_edit = decide(engine, request_id, BO, patch={"n": 1}, seen_digest=original, policy=rules)
    assert after_edit.status is RequestStatus.PENDING
    edited = {**IMAGE, "n": 1}
    assert after_edit.review_arguments == edited and after_edit.review_digest == arguments_digest(edited)
    with pytest.raises(Conflict, match="not the ones you saw"):  # Ana's view still shows n=4
        decide(engine, request_id, ANA, seen_digest=original, policy=rules)
    with unit_of_work(engine) as session:
        assert service.claim(session, request_id) is False  # nothing to run yet
    released = decide(engine, request_id, ANA, seen_digest=arguments_digest(edited), policy=rules)
    assert released.status is RequestStatus.APPROVED
    details = approved_event(engine, request_id)
    assert details["approvers"] == ["bo", "ana"]
    assert (details["original_digest"], details["executed_digest"]) == (original, arguments_digest(edited))
    assert (details["original_cost_micros"], details["executed_cost_micros"]) == (668_000, 167_000)
    with unit_of_work(engine) as session:
        assert service.claim(session, request_id) is True
        assert service.get(session, request_id).review_arguments == edited  # what the gateway runs after the claim
        assert verify(session).ok


def test_a_voter_who_approved_the_call_as_it_stands_cannot_vote_twice(engine: Engine, hasher: TokenHasher) -> None:
    rules = policy(QUORUM_2)
    request_id = hold(engine, hasher, rules)
    decide(engine, request_id, ANA, policy=rules)
    with pytest.raises(Conflict, match="already approved"):
        decide(engine, request_id, ANA, policy=rules)
    # Ana's own edit counts for her only: it moves her vote, and the call still waits for a second approver.
    assert decide(engine, request_id, ANA, patch={"n": 2}, policy=rules).status is RequestStatus.PENDING
    with pytest.raises(Conflict, match="already approved"):
        decide(engine, request_id, ANA, policy=rules)
    assert decide(engine, request_id, BO, policy=rules).status is RequestStatus.APPROVED


def test_a_stale_view_after_someone_elses_edit_is_refused_for_every_verdict(
    engine: Engine, hasher: TokenHasher
) -> None:
    rules = policy(QUORUM_2)
    request_id = hold(engine, hasher, rules)
    seen = current(engine, request_id).review_digest
    decide(engine, request_id, ANA, patch={"n": 1}, seen_digest=seen, policy=rules)
    for verdict, reason in ((Verdict.APPROVE, None), (Verdict.REJECT, "no")):
        with pytest.raises(Conflict, match="reload it"):
            decide(engine, request_id, BO, verdict, reason=reason, seen_digest=seen, policy=rules)
    with pytest.raises(Conflict, match="reload it"):  # nor may a second edit patch arguments Bo did not see
        decide(engine, request_id, BO, patch={"prompt": "a cat"}, seen_digest=seen, policy=rules)
    assert current(engine, request_id).review_arguments == {**IMAGE, "n": 1}


def test_remember_on_the_last_vote_alone_does_not_whitelist(engine: Engine, hasher: TokenHasher) -> None:
    rules = policy(QUORUM_2)
    request_id = hold(engine, hasher, rules)
    decide(engine, request_id, ANA, policy=rules)
    approved = decide(engine, request_id, BO, remember=Remember("tool", timedelta(days=7)), policy=rules)
    assert approved.status is RequestStatus.APPROVED  # the approval goes through, without remembering
    with unit_of_work(engine) as session:
        assert standing_service.list_standing(session) == []
    assert "not every approver" in approved_event(engine, request_id)["not_remembered"]


def test_remember_asked_by_the_whole_quorum_takes_the_narrowest_scope(engine: Engine, hasher: TokenHasher) -> None:
    rules = policy(QUORUM_2)
    request_id = hold(engine, hasher, rules)
    decide(engine, request_id, ANA, remember=Remember("tool", timedelta(days=7)), policy=rules)
    decide(engine, request_id, BO, remember=Remember("arguments", timedelta(hours=1)), policy=rules)
    with unit_of_work(engine) as session:
        (standing,) = standing_service.list_standing(session)
        assert standing.arguments_digest == service.get(session, request_id).arguments_digest
        assert standing.expires_at - standing.created_at == timedelta(hours=1)


def test_a_remember_vote_for_arguments_since_edited_does_not_count(engine: Engine, hasher: TokenHasher) -> None:
    rules = policy(QUORUM_2)
    request_id = hold(engine, hasher, rules)
    decide(engine, request_id, ANA, remember=Remember("tool", timedelta(days=7)), policy=rules)
    decide(engine, request_id, BO, patch={"n": 1}, remember=Remember("tool", timedelta(days=7)), policy=rules)
    assert decide(engine, request_id, ANA, policy=rules).status is RequestStatus.APPROVED  # this time not asking
    with unit_of_work(engine) as session:
        assert standing_service.list_standing(session) == []


def test_remember_with_an_edit_covers_the_edited_call_and_not_the_original(engine: Engine, hasher: TokenHasher) -> None:
    rules = policy()
    request_id = hold(engine, hasher, rules)
    decide(engine, request_id, ANA, patch={"n": 1}, remember=Remember("arguments", timedelta(hours=1)), policy=rules)
    with unit_of_work(engine) as session:
        standing = standing_service.list_standing(session)
        assert standing_service.matching_standing(standing, "generate_image", arguments_digest({**IMAGE, "n": 1}))
        assert not standing_service.matching_standing(standing, "generate_image", arguments_digest({**IMAGE, "n": 4}))


def test_an_edit_replaces_the_budget_reservation(engine: Engine, hasher: TokenHasher) -> None:
    rules = policy(QUORUM_2)
    request_id = hold(engine, hasher, rules)
    assert spent(rules) == 668_000  # 4 images at 0.167 USD
    decide(engine, request_id, ANA, patch={"n": 1}, policy=rules)
    assert spent(rules) == 167_000
    assert current(engine, request_id).cost_micros == 167_000
    decide(engine, request_id, BO, Verdict.REJECT, reason="not now", counters=rules.counters, policy=rules)
    assert spent(rules) == 0  # the rejection gives back what the edited call holds, not the original's amount


def test_an_edit_past_a_hard_budget_is_refused_and_changes_nothing(engine: Engine, hasher: TokenHasher) -> None:
    rules = policy(DEMO.replace("max: 20.0", "max: 0.6"))
    request_id = hold(engine, hasher, rules, n=2)
    assert spent(rules) == 334_000
    with pytest.raises(Conflict, match=r"would pass a limit .*Budget of \$0.60"):
        decide(engine, request_id, ANA, patch={"n": 4}, policy=rules)
    assert spent(rules) == 334_000
    assert current(engine, request_id).review_arguments["n"] == 2
    # Its old amount is given back as the new one is taken: 0.501 fits in 0.6, though 0.334 + 0.501 would not.
    decide(engine, request_id, ANA, patch={"n": 3}, policy=rules)
    assert spent(rules) == 501_000


def test_an_edit_the_policy_now_denies_is_refused_with_the_reason(engine: Engine, hasher: TokenHasher) -> None:
    rules = policy()
    request_id = hold(engine, hasher, rules)
    with pytest.raises(InvalidInput, match="Saving images to server folders is not allowed"):
        decide(engine, request_id, ANA, patch={"directory": "/srv/www"}, policy=rules)
    request = current(engine, request_id)
    assert (request.status, request.edited_arguments) == (RequestStatus.PENDING, None)
    assert spent(rules) == 668_000


def test_an_edit_under_a_rule_with_other_approvers_needs_one_of_them(engine: Engine, hasher: TokenHasher) -> None:
    counters = MemoryCounters()
    request_id = hold(engine, hasher, policy(counters=counters))
    # Since the call was held, the policy in force names its approvers: Bo and Cy, both of them.
    named = DEMO.replace("approvers: {roles: [approver]}", "approvers: {users: [bo, cy]}\n      quorum: 2", 1)
    stricter = policy(named, counters)
    with pytest.raises(Forbidden, match="you are not an approver for this rule"):
        decide(engine, request_id, ANA, patch={"n": 1}, policy=stricter)
    assert current(engine, request_id).edited_arguments is None
    assert spent(stricter) == 668_000  # the refused edit kept the old reservation and took no new one
    assert decide(engine, request_id, BO, patch={"n": 1}, policy=stricter).status is RequestStatus.PENDING
    with pytest.raises(Forbidden):  # the request is now decided under the new rule
        decide(engine, request_id, ANA, policy=stricter)
    assert decide(engine, request_id, CY, policy=stricter).status is RequestStatus.APPROVED


def test_a_patch_that_changes_nothing_is_a_plain_vote(engine: Engine, hasher: TokenHasher) -> None:
    rules = policy(QUORUM_2)
    request_id = hold(engine, hasher, rules)
    decide(engine, request_id, ANA, policy=rules)
    assert decide(engine, request_id, BO, patch={"n": 4}, policy=rules).status is RequestStatus.APPROVED
    with unit_of_work(engine) as session:
        edits = session.exec(select(AuditEvent).where(col(AuditEvent.action) == "request.edited")).all()
        assert edits == []
