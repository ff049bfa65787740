from __future__ import annotations

import json

from sqlalchemy import Engine

from service.approvals import service
from service.approvals.models import RequestStatus
from service.db.engine import unit_of_work
from service.security import TokenHasher
from tests.approvals.helpers import held
from tests.cli.conftest import Invoke


def test_list_show_approve_and_reject(run: Invoke, engine: Engine, hasher: TokenHasher) -> None:
    first, _ = held(engine, hasher)
    second, _ = held(engine, hasher, n=3)
    assert run("users", "create", "ana", "--role", "approver").code == 0
    listed = json.loads(run("requests", "list", "--json").out)
    assert [item["id"] for item in listed["items"]] == [second, first]
    shown = json.loads(run("requests", "show", f"R-{first}").out)
    assert shown["events"][0]["action"] == "request.created"
    approved = run("requests", "approve", f"R-{first}", "--as", "ana")
    assert approved.code == 0 and "approved by ana" in approved.out
    again = run("requests", "approve", f"R-{first}", "--as", "ana")
    assert again.code == 2 and "already approved by ana" in again.err
    rejected = run("requests", "reject", str(second), "--as", "ana", "--reason", "no")
    assert rejected.code == 0
    assert run("requests", "approve", "R-x", "--as", "ana").code == 2
    viewer = run("users", "create", "vic", "--role", "viewer")
    assert viewer.code == 0
    third, _ = held(engine, hasher, n=2)
    refused = run("requests", "approve", str(third), "--as", "vic")
    assert refused.code == 2 and "viewers may not decide" in refused.err
    with unit_of_work(engine) as session:
        assert service.get(session, first).status is RequestStatus.APPROVED
        assert service.get(session, second).status is RequestStatus.REJECTED
        assert service.get(session, third).status is RequestStatus.PENDING
