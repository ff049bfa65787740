"""Calls that cannot run fail fast: for a tool the policy may hold, arguments that break the tool's inputSchema get
an `[INVALID ARGUMENTS]` result at once, open no request, reserve no budget and never reach the upstream."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine
from sqlmodel import select

from service.approvals.models import ToolCallRequest
from service.audit.models import AuditEvent
from service.db.engine import unit_of_work
from service.policy import counter_key, grant_owner
from tests.gateway.harness import demo_upstream, fixture_upstream, mcp_client, run_gateway
from tests.gateway.test_gateway import db_url
from tests.policy.helpers import fixture

pytestmark = pytest.mark.anyio


def policy() -> str:
    """The demo policy (generate_image may be held), plus a tool it may hold whose schema is broken and one it
    always allows."""
    document = yaml.safe_load(fixture("airlock-demo.yaml"))
    document["tools"]["fx_odd"] = {"require_approval": {"when": "false"}}
    document["tools"]["fx_echo"] = {}
    return yaml.safe_dump(document)


async def test_schema_checks_for_tools_the_policy_may_hold(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="service.gateway.catalog")
    log = tmp_path / "upstream.log"
    upstreams = {"imagegen": demo_upstream(log), "fx": fixture_upstream(log, prefix="fx_")}
    with run_gateway(tmp_path, database_url=db_url(engine), policy=policy(), upstreams=upstreams) as gw:
        async with mcp_client(gw.mcp_url, gw.token) as client:
            invalid = await client.call_tool("generate_image", {"prompt": "a lighthouse", "n": 4})
            assert invalid.is_error
            assert invalid.content[0].text.startswith(  # type: ignore[union-attr]
                "[INVALID ARGUMENTS] 'provider' is a required property; 'model' is a required property."
            )
            # A tool the policy may hold whose upstream schema is itself invalid: not enforced, the call runs.
            odd = await client.call_tool("fx_odd", {})
            assert not odd.is_error
            # A tool the policy always allows is not checked at all (its upstream judges its own arguments).
            echoed = await client.call_tool("fx_echo", {"text": 5})
            assert not echoed.is_error

        assert [c["tool"] for c in gw.upstream_calls()] == ["odd", "echo"]  # generate_image never reached it
        now = time.time()
        counters = gw.state.gateway.policy.current().counters
        keys = [
            counter_key("image_spend", grant_owner("1"), 86400, now),
            counter_key("generate_image_rate", grant_owner("1"), 60, now),
        ]
        spend, rate = counters.peek(keys, now)
        assert spend == 0  # no budget was reserved for a call that could not run
        assert rate == 1  # but it counts against the hard limit, so a looping agent stays capped
    with unit_of_work(engine) as session:
        assert session.exec(select(ToolCallRequest)).all() == []  # no request was opened
        audited = session.exec(select(AuditEvent).where(AuditEvent.action == "call.invalid_arguments")).one()
        assert (audited.tool, audited.outcome) == ("generate_image", "deny")
        assert audited.details["invalid_arguments"] == ["(arguments): required", "(arguments): required"]
    broken = [r for r in caplog.records if "invalid inputSchema" in r.getMessage()]
    assert [r.getMessage().split(" has ")[0] for r in broken] == ["tool 'fx_odd'"]  # logged once, at the listing
