"""No paid result is lost (issue 13, section 6): a client whose timeout is shorter than the hold (the OpenAI Agents
SDK: 5 s, clientInfo "mcp", neither cancels nor closes) gets the stored result when it retries the same call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from sqlalchemy import Engine, text

from service.audit.service import export
from service.db.engine import make_engine, unit_of_work
from service.gateway.answers import REPLAY_OF
from service.gateway.sdk_compat import raw_request
from tests.clock import MovableClock
from tests.gateway.harness import RunningGateway, approve_via_api, mcp_client, run_gateway
from tests.gateway.test_gateway import db_url
from tests.gateway.test_holds import DEAR, DENY_IMAGES, USERS, denial_rule, held_call, image_spend, pending_request_id
from tests.policy.helpers import fixture

pytestmark = pytest.mark.anyio


async def give_up_after(client: Client, seconds: float, arguments: dict[str, Any]) -> None:
    """A tools/call whose caller stops waiting without cancelling it or closing its stream."""
    with pytest.raises(MCPError):
        await raw_request(
            client,
            "tools/call",
            {"name": "generate_image", "arguments": arguments},
            timeout=seconds,
            cancel_on_abandon=False,
        )


async def approve_and_await_run(gw: RunningGateway, request_id: int) -> None:
    """Approve through the REST API, then wait until the still-attached original call has run it."""
    async with gw.api("ana") as api:
        assert (await approve_via_api(api, request_id)).status_code == 200
        with anyio.fail_after(15):
            while (await api.get(f"/api/requests/{request_id}")).json()["status"] != "succeeded":
                await anyio.sleep(0.05)


async def request_count(gw: RunningGateway) -> int:
    async with gw.api("ana") as api:
        return len((await api.get("/api/requests")).json()["items"])


async def test_a_client_that_gave_up_gets_the_stored_result_when_it_retries(engine: Engine, tmp_path: Path) -> None:
    with run_gateway(
        tmp_path,
        database_url=db_url(engine),
        policy=fixture("airlock-demo.yaml"),
        users=USERS,
        grants={"agent": None, "other": None},
    ) as gw:
        async with mcp_client(gw.mcp_url, gw.tokens["agent"]) as client:
            await give_up_after(client, 1.0, DEAR)
            request_id = await pending_request_id(gw)
            await approve_and_await_run(gw, request_id)
            assert len(gw.upstream_calls("generate_image")) == 1  # ran for a caller that no longer listened

            again = await client.call_tool("generate_image", DEAR)
            assert not again.is_error
            assert again.content[0].text.startswith(f"[REPLAY of R-{request_id}]")  # type: ignore[union-attr]
            assert [block.type for block in again.content[1:]] == ["image", "image"]
            assert (again.meta or {})[REPLAY_OF] == f"R-{request_id}"

            listed = await client.call_tool("airlock_approval_status", {})
            assert (listed.structured_content or {})["requests"][0]["request_id"] == f"R-{request_id}"
            assert (listed.structured_content or {})["requests"][0]["status"] == "succeeded"

        async with mcp_client(gw.mcp_url, gw.tokens["other"]) as stranger:
            # Another grant's identical call is its own: no replay, and it does not see the first grant's requests.
            assert (await stranger.call_tool("airlock_approval_status", {})).structured_content == {"requests": []}
            await give_up_after(stranger, 1.0, DEAR)
        assert await request_count(gw) == 2
        assert len(gw.upstream_calls("generate_image")) == 1
        gw.state.writer.stop()  # flush what is written in batches
        with unit_of_work(engine) as session:
            rows = [json.loads(line) for line in export(session, since=None, until=None, fmt="jsonl")]
        replays = [r for r in rows if r["action"] == "call.replayed"]
        assert [(r["grant_name"], r["details"]["replay_of"]) for r in replays] == [("agent", f"R-{request_id}")]


async def test_a_replay_passes_the_policy_in_force_first(tmp_path: Path) -> None:
    with run_gateway(
        tmp_path, database_url=f"sqlite:///{tmp_path}/airlock.db", policy=fixture("airlock-demo.yaml"), users=USERS
    ) as gw:
        async with mcp_client(gw.mcp_url, gw.token) as client:
            await give_up_after(client, 1.0, DEAR)
            await approve_and_await_run(gw, await pending_request_id(gw))
            Path(gw.settings.policy or "").write_text(DENY_IMAGES)
            with anyio.fail_after(10):
                while denial_rule(gw) is None:
                    await anyio.sleep(0.2)
            denied = await client.call_tool("generate_image", DEAR)
        assert denied.is_error
        assert denied.content[0].text.startswith("[POLICY DENIED] Images are off.")  # type: ignore[union-attr]
        assert REPLAY_OF not in (denied.meta or {})


async def test_after_the_replay_window_the_same_call_is_a_new_request(tmp_path: Path) -> None:
    clock = MovableClock.from_now()  # the gateway's: the test moves it past the window
    with run_gateway(
        tmp_path,
        database_url=f"sqlite:///{tmp_path}/airlock.db",
        policy=fixture("airlock-demo.yaml"),
        users=USERS,
        hold={"replay_window": "1m"},
        clock=clock,
    ) as gw:
        async with mcp_client(gw.mcp_url, gw.token) as client:
            await give_up_after(client, 1.0, DEAR)
            first = await pending_request_id(gw)
            await approve_and_await_run(gw, first)
            clock.advance(59)  # the window counts from the first delivery
            within = await client.call_tool("generate_image", DEAR)
            assert (within.meta or {})[REPLAY_OF] == f"R-{first}"
            clock.advance(2)
            await give_up_after(client, 1.0, DEAR)
            assert await pending_request_id(gw) != first
        assert await request_count(gw) == 2
        assert len(gw.upstream_calls("generate_image")) == 1


async def test_with_the_replay_window_at_zero_the_same_call_is_a_new_request(tmp_path: Path) -> None:
    with run_gateway(
        tmp_path,
        database_url=f"sqlite:///{tmp_path}/airlock.db",
        policy=fixture("airlock-demo.yaml"),
        users=USERS,
        hold={"replay_window": 0},
    ) as gw:
        async with mcp_client(gw.mcp_url, gw.token) as client:
            await give_up_after(client, 1.0, DEAR)
            first = await pending_request_id(gw)
            await approve_and_await_run(gw, first)
            await give_up_after(client, 1.0, DEAR)
            assert await pending_request_id(gw) != first
        assert await request_count(gw) == 2
        assert len(gw.upstream_calls("generate_image")) == 1


def refuse_to_record(database_url: str, action: str) -> None:
    """From now on the database refuses to store one kind of audit record, as a full disk would refuse the write."""
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(
            text(
                f"CREATE TRIGGER refuse_{action.replace('.', '_')} BEFORE INSERT ON audit_events"
                f" WHEN NEW.action = '{action}' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
        )
    engine.dispose()


async def test_a_replay_whose_decision_cannot_be_recorded_gives_its_budget_back_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/airlock.db"
    with run_gateway(tmp_path, database_url=url, policy=fixture("airlock-demo.yaml"), users=USERS) as gw:
        async with mcp_client(gw.mcp_url, gw.token) as client:
            async with held_call(gw, client, "generate_image", DEAR) as (request_id, results):
                async with gw.api("ana") as api:
                    assert (await approve_via_api(api, request_id)).status_code == 200
            assert not results[0].is_error
            spent = image_spend(gw)
            assert spent > 0

            refuse_to_record(url, "call.replayed")
            again = await client.call_tool("generate_image", DEAR)

        # The replay was decided (it reserved the call's cost, then gave its budget back: it runs nothing) but not
        # recorded; giving the budget back a second time would leave the first call's cost unspent.
        assert again.is_error
        assert again.content[0].text.startswith("[UNAVAILABLE]")  # type: ignore[union-attr]
        assert image_spend(gw) == spent
        assert len(gw.upstream_calls("generate_image")) == 1
