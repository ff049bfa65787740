"""tools/call served without the SDK's per-request machinery (service/gateway/direct.py): it must accept exactly
what the SDK would, answer the same way, and notice an agent that hangs up or cancels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from service.gateway import event_stream
from tests.gateway.harness import RunningGateway, approve_via_api, fixture_upstream, run_gateway
from tests.gateway.test_edges import HEADERS, INIT
from tests.gateway.test_holds import DEAR, USERS, pending_request_id, sqlite_url
from tests.policy.helpers import fixture

pytestmark = pytest.mark.anyio


def call(request_id: int, name: str, arguments: Any, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "arguments": arguments}
    if meta:
        params["_meta"] = meta
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


async def open_session(http: httpx2.AsyncClient, gw: RunningGateway, token: str) -> dict[str, str]:
    auth = {"Authorization": f"Bearer {token}", **HEADERS}
    opened = await http.post(gw.mcp_url, json=INIT, headers=auth)
    assert opened.status_code == 200
    session = {**auth, "mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
    await http.post(gw.mcp_url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
    return session


def sse_messages(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[len("data: ") :]) for line in text.splitlines() if line.startswith("data: ")]


async def test_requests_the_sdk_would_refuse_are_refused_and_run_nothing(tmp_path: Path) -> None:
    with run_gateway(
        tmp_path,
        database_url=sqlite_url(tmp_path),
        policy=fixture("airlock-demo.yaml"),
        grants={"a": None, "b": None},
    ) as gw:
        async with httpx2.AsyncClient(timeout=10) as http:
            session = await open_session(http, gw, gw.tokens["a"])
            cheap = call(2, "get_model_capabilities", {})
            stolen = await http.post(
                gw.mcp_url, json=cheap, headers={**session, "Authorization": f"Bearer {gw.tokens['b']}"}
            )
            assert stolen.status_code == 404  # a session belongs to the grant that opened it
            evil = await http.post(gw.mcp_url, json=cheap, headers={**session, "Origin": "https://evil.example"})
            assert evil.status_code == 403
            wrong_accept = await http.post(gw.mcp_url, json=cheap, headers={**session, "Accept": "text/html"})
            assert wrong_accept.status_code == 406
            unknown_session = await http.post(gw.mcp_url, json=cheap, headers={**session, "mcp-session-id": "f" * 32})
            assert unknown_session.status_code == 404
            bad_arguments = await http.post(gw.mcp_url, json=call(3, "get_model_capabilities", [1]), headers=session)
            assert bad_arguments.json()["error"]["code"] == -32602  # the SDK's own answer to malformed params
            ok = await http.post(gw.mcp_url, json=cheap, headers=session)
            assert ok.status_code == 200 and ok.json()["result"]["isError"] is False
            assert ok.headers["mcp-session-id"] == session["mcp-session-id"]
        assert len(gw.upstream_calls("get_model_capabilities")) == 1  # only the last one ran


async def test_a_held_call_streams_heartbeats_and_its_result(tmp_path: Path) -> None:
    with run_gateway(
        tmp_path, database_url=sqlite_url(tmp_path), policy=fixture("airlock-demo.yaml"), users=USERS
    ) as gw:
        async with httpx2.AsyncClient(timeout=30) as http:
            session = await open_session(http, gw, gw.token)
            answers: list[httpx2.Response] = []

            async def agent() -> None:
                answers.append(
                    await http.post(
                        gw.mcp_url, json=call(7, "generate_image", DEAR, {"progressToken": "t7"}), headers=session
                    )
                )

            async with anyio.create_task_group() as group:
                group.start_soon(agent)
                request_id = await pending_request_id(gw)
                async with gw.api("ana") as api:
                    assert (await approve_via_api(api, request_id)).status_code == 200
        answer = answers[0]
        assert answer.headers["content-type"].startswith("text/event-stream")
        progress, final = sse_messages(answer.text)[0], sse_messages(answer.text)[-1]
        assert progress["method"] == "notifications/progress"
        assert progress["params"]["progressToken"] == "t7"
        assert progress["params"]["message"].startswith(f"waiting for human approval, R-{request_id}")
        assert final["id"] == 7 and [b["type"] for b in final["result"]["content"]] == ["image", "image"]
        assert len(gw.upstream_calls("generate_image")) == 1


async def test_a_quiet_held_call_gets_keep_alives_from_the_shared_ticker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No progress token, so no heartbeats: only the ticker writes to this stream while the call waits."""
    monkeypatch.setattr(event_stream, "KEEPALIVE_SECONDS", 0.4)
    with run_gateway(
        tmp_path, database_url=sqlite_url(tmp_path), policy=fixture("airlock-demo.yaml"), users=USERS
    ) as gw:
        async with httpx2.AsyncClient(timeout=30) as http:
            session = await open_session(http, gw, gw.token)
            lines: list[str] = []

            async def agent() -> None:
                request = http.build_request("POST", gw.mcp_url, json=call(5, "generate_image", DEAR), headers=session)
                response = await http.send(request, stream=True)
                async for line in response.aiter_lines():
                    lines.append(line)

            async with anyio.create_task_group() as group:
                group.start_soon(agent)
                request_id = await pending_request_id(gw)
                with anyio.fail_after(10):
                    while lines.count(": keep-alive") < 3:
                        await anyio.sleep(0.05)
                async with gw.api("ana") as api:
                    assert (await approve_via_api(api, request_id)).status_code == 200
        final = sse_messages("\n".join(lines))[-1]
        assert final["id"] == 5 and [b["type"] for b in final["result"]["content"]] == ["image", "image"]
        assert len(gw.upstream_calls("generate_image")) == 1


async def test_an_agent_that_hangs_up_leaves_a_request_that_never_runs(tmp_path: Path) -> None:
    with run_gateway(
        tmp_path, database_url=sqlite_url(tmp_path), policy=fixture("airlock-demo.yaml"), users=USERS
    ) as gw:
        async with httpx2.AsyncClient(timeout=30) as http:
            session = await open_session(http, gw, gw.token)
        async with httpx2.AsyncClient(timeout=30) as hanging_up:

            async def agent() -> None:
                await hanging_up.post(gw.mcp_url, json=call(8, "generate_image", DEAR), headers=session)

            async with anyio.create_task_group() as group:
                group.start_soon(agent)
                request_id = await pending_request_id(gw)
                group.cancel_scope.cancel()  # closes the connection mid-stream
        async with gw.api("ana") as api:
            with anyio.fail_after(10):
                while not (await api.get(f"/api/requests/{request_id}")).json()["requester_gone"]:
                    await anyio.sleep(0.05)
            assert request_id not in gw.state.bus.waiting()  # no call in the gateway waits on it any more
            assert (await approve_via_api(api, request_id)).status_code == 200
            # Approved, but nobody is there to receive it: nothing that could run it heard the approval.
            assert (await api.get(f"/api/requests/{request_id}")).json()["status"] == "approved"
        assert gw.upstream_calls("generate_image") == []


BUDGET_OF_ONE_CALL = """version: "1"
default: deny
tools:
  generate_image:
    limits: [{counter: spend, window: day, max: 1.0, scope: grant, increment_from: cost.usd}]
    cost: {estimator: image_gen_mcp}
    require_approval: {when: "true", approvers: {roles: [approver]}}
"""
"""A day's budget that holds one call of four images (0.668 USD), not two."""


async def test_a_hang_up_that_cancels_the_request_gives_its_budget_back(tmp_path: Path) -> None:
    with run_gateway(
        tmp_path,
        database_url=sqlite_url(tmp_path),
        policy=BUDGET_OF_ONE_CALL,
        users=USERS,
        hold={"on_requester_gone": "cancel"},
    ) as gw:
        async with httpx2.AsyncClient(timeout=30) as http:
            session = await open_session(http, gw, gw.token)
        dear = {**DEAR, "n": 4}
        async with httpx2.AsyncClient(timeout=30) as hanging_up:

            async def agent() -> None:
                await hanging_up.post(gw.mcp_url, json=call(8, "generate_image", dear), headers=session)

            async with anyio.create_task_group() as group:
                group.start_soon(agent)
                request_id = await pending_request_id(gw)
                group.cancel_scope.cancel()  # closes the connection mid-stream: the request is withdrawn
        async with gw.api("ana") as api:
            with anyio.fail_after(10):
                while (await api.get(f"/api/requests/{request_id}")).json()["status"] != "cancelled":
                    await anyio.sleep(0.05)
        refused: list[str] = []
        async with httpx2.AsyncClient(timeout=30) as http, gw.api("ana") as api:

            async def another() -> None:
                arguments = {**dear, "prompt": "another"}
                refused.append(
                    (await http.post(gw.mcp_url, json=call(9, "generate_image", arguments), headers=session)).text
                )

            async with anyio.create_task_group() as group:
                group.start_soon(another)
                with anyio.fail_after(10):  # held (it waits for a person), or answered at once
                    while (
                        not refused
                        and not (await api.get("/api/requests", params={"status": "pending"})).json()["items"]
                    ):
                        await anyio.sleep(0.05)
                group.cancel_scope.cancel()
        # Held in its turn, not refused: the withdrawn call's budget came back.
        assert refused == []


HOLD_SLOW = (
    'version: "1"\ndefault: allow\ntools:\n  slow: {require_approval: {when: "true", approvers: {roles: [approver]}}}\n'
)


async def test_an_agent_that_hangs_up_while_its_approved_call_runs_finds_the_result_kept(tmp_path: Path) -> None:
    log = tmp_path / "upstream.log"
    with run_gateway(
        tmp_path,
        database_url=sqlite_url(tmp_path),
        policy=HOLD_SLOW,
        users=USERS,
        upstreams={"fixture": fixture_upstream(log)},
    ) as gw:
        async with httpx2.AsyncClient(timeout=30) as http:
            session = await open_session(http, gw, gw.token)
        slow = call(9, "slow", {"seconds": 1})
        async with httpx2.AsyncClient(timeout=30) as hanging_up:

            async def agent() -> None:
                await hanging_up.post(gw.mcp_url, json=slow, headers=session)

            async with anyio.create_task_group() as group:
                group.start_soon(agent)
                request_id = await pending_request_id(gw)
                async with gw.api("ana") as api:
                    assert (await approve_via_api(api, request_id)).status_code == 200
                with anyio.fail_after(10):
                    while not gw.upstream_calls("slow"):
                        await anyio.sleep(0.02)
                group.cancel_scope.cancel()  # the agent hangs up while the approved call runs
        async with gw.api("ana") as api:
            with anyio.fail_after(10):
                while (await api.get(f"/api/requests/{request_id}")).json()["status"] != "succeeded":
                    await anyio.sleep(0.1)
        assert gw.upstream_calls("slow.cancelled") == []  # the run was not cut off
        async with httpx2.AsyncClient(timeout=30) as http:
            session = await open_session(http, gw, gw.token)
            again = await http.post(gw.mcp_url, json=slow, headers=session)  # the same call picks up the result
        assert sse_messages(again.text)[-1]["result"]["content"][0]["text"] == "finished"
        assert len(gw.upstream_calls("slow")) == 1


async def test_a_failed_handshake_opens_no_shortcut_and_content_type_is_checked(tmp_path: Path) -> None:
    with run_gateway(tmp_path, database_url=sqlite_url(tmp_path), policy=fixture("airlock-demo.yaml")) as gw:
        auth = {"Authorization": f"Bearer {gw.token}", **HEADERS}
        async with httpx2.AsyncClient(timeout=10) as http:
            bad = {**INIT, "params": {**INIT["params"], "protocolVersion": 5}}  # type: ignore[dict-item]
            refused = await http.post(gw.mcp_url, json=bad, headers=auth)
            session = {**auth, "mcp-session-id": refused.headers.get("mcp-session-id", "x" * 32)}
            after = await http.post(gw.mcp_url, json=call(2, "get_model_capabilities", {}), headers=session)
            assert "error" in (after.json() if after.headers["content-type"].startswith("application/json") else {})
            good = await open_session(http, gw, gw.token)
            seq = await http.post(
                gw.mcp_url,
                content=json.dumps(call(3, "get_model_capabilities", {})),
                headers={**good, "Content-Type": "application/json-seq"},
            )
            assert seq.status_code == 415
            plain = await http.post(gw.mcp_url, json=call(4, "get_model_capabilities", {}), headers=good)
            assert "resultType" not in plain.json()["result"]  # shaped for the 2025 session, as the SDK does
        assert len(gw.upstream_calls("get_model_capabilities")) == 1


async def test_only_the_sessions_own_grant_can_cancel_its_call(tmp_path: Path) -> None:
    with run_gateway(
        tmp_path,
        database_url=sqlite_url(tmp_path),
        policy=fixture("airlock-demo.yaml"),
        users=USERS,
        grants={"agent": None, "other": None},
    ) as gw:
        async with httpx2.AsyncClient(timeout=30) as http:
            session = await open_session(http, gw, gw.tokens["agent"])
            cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 10}}
            answers: list[httpx2.Response] = []

            async def agent() -> None:
                answers.append(await http.post(gw.mcp_url, json=call(10, "generate_image", DEAR), headers=session))

            async with anyio.create_task_group() as group:
                group.start_soon(agent)
                request_id = await pending_request_id(gw)
                stranger = {**session, "Authorization": f"Bearer {gw.tokens['other']}"}
                await http.post(gw.mcp_url, json=cancel, headers=stranger)
                async with gw.api("ana") as api:
                    assert (await approve_via_api(api, request_id)).status_code == 200
            # Still waiting when it was approved, so it ran and answered: a stranger's cancel is not the agent's
            # (a cancelled call can send nothing more than its cancellation).
            assert [b["type"] for b in sse_messages(answers[0].text)[-1]["result"]["content"]] == ["image", "image"]

            async def again() -> None:
                arguments = {**DEAR, "prompt": "another"}
                answers.append(await http.post(gw.mcp_url, json=call(10, "generate_image", arguments), headers=session))

            async with anyio.create_task_group() as group:
                group.start_soon(again)
                second = await pending_request_id(gw)
                await http.post(gw.mcp_url, json=cancel, headers=session)
        assert sse_messages(answers[1].text)[-1]["error"]["code"] == -32800
        async with gw.api("ana") as api:
            assert (await api.get(f"/api/requests/{second}")).json()["requester_gone"] is True
            assert (await api.get(f"/api/requests/{request_id}")).json()["requester_gone"] is False


async def test_each_run_serves_over_the_path_it_names(tmp_path: Path, mcp_path: str) -> None:
    """The conftest runs every gateway test over both paths: the gateway it starts has the fast path on or off."""
    with run_gateway(tmp_path, database_url=sqlite_url(tmp_path), policy=fixture("airlock-demo.yaml")) as gw:
        assert gw.settings.fast_path is (mcp_path == "fast")
        async with httpx2.AsyncClient(timeout=10) as http:
            session = await open_session(http, gw, gw.token)
            answer = await http.post(gw.mcp_url, json=call(2, "get_model_capabilities", {}), headers=session)
        assert answer.status_code == 200 and "result" in answer.json()
