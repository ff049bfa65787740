"""A replica stopped the way a rolling restart stops it (SIGTERM): the agents waiting on it for a decision get their
pending answer before it goes, and pick their call up on the other replica; nothing runs twice."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import Engine

from tests.cluster.harness import replicas
from tests.cluster.test_replicas import OnReplica, url_of
from tests.gateway.harness import approve_via_api, mcp_client
from tests.gateway.test_holds import DEAR, pending_request_id
from tests.policy.helpers import fixture

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("engine", ["postgresql"], indirect=True)]


async def test_sigterm_answers_waiting_agents_and_the_other_replica_delivers(engine: Engine, tmp_path: Path) -> None:
    with replicas(
        tmp_path, count=2, database_url=url_of(engine), policy=fixture("airlock-demo.yaml"), users={"ana": "approver"}
    ) as cluster:
        answers: list[Any] = []
        async with mcp_client(cluster.mcp_url(0), cluster.tokens["agent"]) as agent_on_a:

            async def agent() -> None:
                answers.append(await agent_on_a.call_tool("generate_image", DEAR))

            async with anyio.create_task_group() as group:
                group.start_soon(agent)
                request_id = await pending_request_id(OnReplica(cluster, 1), timeout=15)
                stopped_at = time.monotonic()
                cluster.processes[0].terminate()  # SIGTERM, as an orchestrator stops a replica
        answered_after = time.monotonic() - stopped_at
        assert cluster.processes[0].wait(20) is not None
        [pending] = answers
        text = pending.content[0].text
        assert not pending.is_error and f"approval pending (R-{request_id})" in text
        assert answered_after < 4  # well inside the 5 s graceful window, not cut off when it closes
        assert re.search(r"airlock_approval_status", text)
        async with cluster.api(1, "ana") as api_on_b:
            shown = (await api_on_b.get(f"/api/requests/{request_id}")).json()
            assert shown["status"] == "pending" and shown["requester_gone"] is False  # the agent was told, not lost
            assert (await approve_via_api(api_on_b, request_id)).status_code == 200
        async with mcp_client(cluster.mcp_url(1), cluster.tokens["agent"]) as agent_on_b:
            result = await agent_on_b.call_tool(
                "airlock_approval_status", {"request_id": f"R-{request_id}", "wait_seconds": 10}
            )
        assert [block.type for block in result.content] == ["image", "image"]
        assert len(cluster.upstream_calls("generate_image")) == 1
