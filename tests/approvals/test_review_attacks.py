"""Found by the security review of issue 13 (approvals): each test failed before its fix."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from service.approvals.models import RequestStatus
from service.approvals.schemas import Verdict
from service.errors import Conflict
from service.security import TokenHasher
from tests.approvals.helpers import ANA, BO, decide, hold
from tests.approvals.test_votes import QUORUM_2, current, policy, spent


def test_an_edit_refused_after_it_was_priced_leaves_the_budget_as_it_was(engine: Engine, hasher: TokenHasher) -> None:
    rules = policy(QUORUM_2)
    request_id = hold(engine, hasher, rules)  # n=4: 668,000 µ$
    original = current(engine, request_id).review_digest
    decide(engine, request_id, ANA, policy=rules, seen_digest=original)  # Ana's vote: n=4
    edited = decide(engine, request_id, BO, patch={"n": 1}, policy=rules, seen_digest=original)
    assert spent(rules) == 167_000
    # Ana edits it back to the arguments she already voted for: refused ("you already approved ... as it stands").
    with pytest.raises(Conflict):
        decide(engine, request_id, ANA, patch={"n": 4}, policy=rules, seen_digest=edited.review_digest)
    request = current(engine, request_id)
    assert (request.status, request.review_arguments["n"], request.cost_micros) == (RequestStatus.PENDING, 1, 167_000)
    assert spent(rules) == 167_000  # the refused edit must change no counter
    decide(engine, request_id, BO, Verdict.REJECT, reason="no", counters=rules.counters, policy=rules)
    assert spent(rules) == 0  # nothing ran, so nothing may stay reserved
