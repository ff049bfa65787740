"""Signed Slack payloads whose values have types Slack never sends: a correctly signed body is still only as
trustworthy as the signing secret, and a malformed one must be refused (4xx) or ignored (200), never a 500, and must
never decide the request."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.gateway.harness import approve_via_api, mcp_client
from tests.gateway.test_holds import held_call
from tests.slack.fake_slack import fake_slack, view_submission
from tests.slack.helpers import DEAR, post_signed, slack_gateway
from tests.test_bad_input import assert_no_traceback

pytestmark = pytest.mark.anyio


def _odd_clicks(click: dict[str, Any], viewers_click: dict[str, Any]) -> list[dict[str, Any]]:
    """The real Approve click, with one value at a time swapped for a type or text Slack never sends. Where the value
    does not say what is decided (the channel, the trigger), the click is a viewer's, who may not decide."""
    request_part, _, digest = click["actions"][0]["value"].partition(":")
    swaps: list[tuple[tuple[str | int, ...], Any]] = [
        (("actions", 0, "value"), f"R-²:{digest}"),
        (("actions", 0, "value"), f"{request_part.replace('R-', '')}\u0663:{digest}"),  # an Arabic-Indic digit
        (("actions", 0, "value"), ["not", "text"]),
        (("actions", 0, "value"), {"request": request_part}),
        (("actions", 0, "action_id"), ["approve"]),
        (("actions", 0, "action_id"), {"id": "approve"}),
        (("actions", 0), "approve"),
        (("actions",), {"0": click["actions"][0]}),
        (("user",), "U0ANA"),
        (("user", "id"), ["U0ANA"]),
        (("type",), ["block_actions"]),
    ]
    beside: list[tuple[tuple[str | int, ...], Any]] = [
        (("channel",), ["C0"]),
        (("channel", "id"), {"id": "C0"}),
        (("container",), "message"),
        (("trigger_id",), 12),
    ]
    return [_swapped(click, path, value) for path, value in swaps] + [
        _swapped(viewers_click, path, value) for path, value in beside
    ]


def _odd_submissions(view: dict[str, Any], user: str) -> list[dict[str, Any]]:
    """The rejection modal submitted with a reason, with one value at a time swapped as above."""
    good = view_submission(user, view, {"reason": {"value": {"type": "plain_text_input", "value": "too dear"}}})
    meta = json.loads(view["private_metadata"])
    swaps: list[tuple[tuple[str | int, ...], Any]] = [
        (("view", "state", "values"), [["reason", "too dear"]]),
        (("view", "state", "values"), "too dear"),
        (("view", "state", "values", "reason"), ["too dear"]),
        (("view", "state", "values", "reason", "value"), ["too dear"]),
        (("view", "state", "values", "reason", "value", "value"), ["too dear"]),
        (("view", "state"), ["values"]),
        (("view", "private_metadata"), 7),
        (("view", "private_metadata"), ["{}"]),
        (("view", "private_metadata"), json.dumps({**meta, "request": "R-²"})),
        (("view", "private_metadata"), json.dumps({**meta, "request": ["R-1"]})),
        (("view", "private_metadata"), json.dumps({**meta, "request": 10**30})),
        (("view", "private_metadata"), json.dumps({**meta, "request": "9" * 30})),
        (("view", "private_metadata"), "[" * 5000 + "]" * 5000),
        (("view", "callback_id"), ["airlock_reject"]),
        (("view",), "airlock_reject"),
    ]
    # Values that do not say what is decided: on a viewer's submission, who may not decide.
    viewers = view_submission("U0VIC", view, good["view"]["state"]["values"])
    odd_meta = json.dumps({**meta, "digest": ["x"], "channel": {"id": 1}})
    return [_swapped(good, path, value) for path, value in swaps] + [
        _swapped(viewers, ("view", "private_metadata"), odd_meta)
    ]


def _swapped(payload: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    odd = copy.deepcopy(payload)
    holder: Any = odd
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value
    return odd


async def test_signed_payloads_of_unexpected_types_are_refused_and_decide_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with fake_slack() as fake:
        with slack_gateway(tmp_path, fake) as gw:
            async with mcp_client(gw.mcp_url, gw.token) as client:
                async with held_call(gw, client, "generate_image", DEAR) as (request_id, results):
                    approve = await fake.press("U0ANA", "approve", request_id)
                    viewers = await fake.press("U0VIC", "approve", request_id)
                    reject = await fake.press("U0ANA", "reject", request_id)
                    opened = await post_signed(gw, fake, reject)
                    assert opened.status_code == 200
                    view = (await fake.wait_for("views.open"))[0].args["view"]
                    view = json.loads(view) if isinstance(view, str) else view
                    odd = _odd_clicks(approve, viewers) + _odd_submissions(view, "U0ANA")
                    for payload in odd:
                        answer = await post_signed(gw, fake, payload)
                        assert answer.status_code in (200, 400), (payload, answer.status_code, answer.text)
                        assert "Traceback" not in answer.text
                    for raw in ("[" * 5000 + "]" * 5000, '"text"', "\udcff"):
                        body = ("payload=" + raw).encode("utf-8", "surrogateescape")
                        headers = {"Content-Type": "application/x-www-form-urlencoded", **fake.signed(body)}
                        async with httpx2.AsyncClient(base_url=gw.base_url, timeout=10) as http:
                            answer = await http.post("/slack/interactions", content=body, headers=headers)
                            events = await http.post(
                                "/slack/events",
                                content=raw.encode("utf-8", "surrogateescape"),
                                headers=fake.signed(raw.encode("utf-8", "surrogateescape")),
                            )
                        # Not UTF-8 (the lone surrogate) counts as not signed by Slack: 401.
                        assert answer.status_code in (400, 401), (raw[:10], answer.status_code)
                        assert events.status_code in (200, 400, 401), (raw[:10], events.status_code)
                    async with gw.api("ana") as api:
                        assert (await api.get(f"/api/requests/{request_id}")).json()["status"] == "pending"
                        assert gw.upstream_calls("generate_image") == []
                        await approve_via_api(api, request_id)
            assert not results[0].is_error
            assert len(gw.upstream_calls("generate_image")) == 1
    assert_no_traceback(caplog)
