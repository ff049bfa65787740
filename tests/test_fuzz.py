"""A bounded fuzzing pass (hypothesis) over the MCP endpoint and the web forms: whatever arrives, the answer is never a
5xx and the gateway's log holds no traceback (docs/architecture.md#bad-input). tests/test_bad_input.py holds the known
cases; this looks for the unknown ones.

Time budget: 60 s for the whole file in CI. Measured: about 20 s on the 2-core development machine while other
suites ran (each pass about 8 s, with its gateway's start). The example counts below are what keeps it there; raise
them for a longer local run. Each test is also cut at 60 s (pytest-timeout), so an overrun fails instead of stretching
CI. Examples are not stored (database=None): every run explores afresh, and a failure prints its input, which then
belongs in the corpus.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.gateway.harness import run_gateway
from tests.gateway.test_edges import HEADERS, INIT
from tests.policy.helpers import fixture
from tests.test_bad_input import NASTY_STRINGS, assert_no_traceback, deep_arguments

MCP_EXAMPLES = 2000
FORM_EXAMPLES = 800
pytestmark = pytest.mark.timeout(60)
FUZZ = settings(deadline=None, database=None, suppress_health_check=list(HealthCheck))

# Text of every kind, lone surrogates included (hypothesis leaves them out by default), and the corpus' own strings.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=24) | st.sampled_from(NASTY_STRINGS)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | any_text  # floats: NaN and ±Infinity too
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=20,
)
tool_names = st.sampled_from(["generate_image", "edit_image", "get_model_capabilities", "airlock_approval_status"])
request_ids = st.integers() | any_text | st.none() | st.floats() | st.lists(st.integers(), max_size=2)


def as_body(message: Any) -> bytes:
    # ensure_ascii writes a lone surrogate as its \\u escape, and allow_nan writes NaN and Infinity: both arrive.
    return json.dumps(message, ensure_ascii=True, allow_nan=True).encode()


def tool_call(name: str, arguments: Any, request_id: Any, task: bool, meta: Any) -> bytes:
    params: dict[str, Any] = {"name": name, "arguments": arguments}
    if task:
        params["task"] = {"ttl": 60000}  # task-augmented: the SDK's path instead of the direct one
    if meta is not None:
        params["_meta"] = meta
    return as_body({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params})


mcp_bodies = st.one_of(
    st.builds(
        tool_call,
        tool_names | any_text,
        st.dictionaries(any_text, json_values, max_size=5) | json_values,
        request_ids,
        st.booleans(),
        st.none() | st.fixed_dictionaries({"progressToken": request_ids}) | json_values,
    ),
    st.builds(
        lambda method, params, request_id: as_body(
            {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        ),
        st.sampled_from(["tools/list", "tasks/get", "tasks/cancel", "tasks/result", "notifications/cancelled"])
        | any_text,
        json_values,
        request_ids,
    ),
    json_values.map(as_body),
    st.binary(max_size=120),
    st.builds(deep_arguments, st.integers(min_value=1, max_value=3000), task=st.booleans()),
)


def test_fuzzed_mcp_bodies_never_get_a_5xx_nor_leave_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with run_gateway(
        tmp_path,
        database_url=f"sqlite:///{tmp_path}/airlock.db",
        policy=fixture("airlock-demo.yaml"),
        hold={"max_wait": "0.1s", "pending_cap": 100_000},  # held calls answer "pending" at once
    ) as gw:
        with httpx2.Client(timeout=30) as http:
            auth = {"Authorization": f"Bearer {gw.token}", **HEADERS}
            opened = http.post(gw.mcp_url, json=INIT, headers=auth)
            session = {**auth, "mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
            http.post(gw.mcp_url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
            statuses: set[int] = set()

            @settings(FUZZ, max_examples=MCP_EXAMPLES)
            @given(body=mcp_bodies)
            def post(body: bytes) -> None:
                answer = http.post(gw.mcp_url, content=body, headers=session)
                statuses.add(answer.status_code)
                assert answer.status_code < 500, (body[:200], answer.status_code, answer.text[:300])
                assert "Traceback" not in answer.text

            post()
            still_fine = http.post(
                gw.mcp_url,
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "get_model_capabilities"}},
                headers=session,
            )
    assert still_fine.status_code == 200 and '"isError":false' in still_fine.text.replace(" ", "")
    assert 200 in statuses and 400 in statuses  # the pass reached both the gateway's answers and the parse errors
    assert_no_traceback(caplog)


form_text = any_text.map(lambda text: text.encode("utf-8", "surrogatepass").decode("utf-8", "replace"))
durations = st.sampled_from(["1h", "30d", "99999999999999d", "1e400s", "-1s", "0"]) | form_text
deep_text = st.integers(min_value=1, max_value=3000).map(lambda n: '{"prompt":' + "[" * n + "]" * n + "}")


@st.composite
def decision_forms(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    request_id = draw(st.sampled_from(["1", "2", "9" * 30, "R-1", "²"]) | form_text)
    verdict = draw(st.sampled_from(["approve", "reject"]))
    form = {
        "arguments_digest": draw(st.sampled_from(["", "0" * 64]) | form_text),
        "arguments": draw(st.sampled_from(["", '{"prompt": 1}', "null", "[]"]) | deep_text | form_text),
        "comment": draw(form_text),
        "reason": draw(form_text),
        "remember": draw(st.sampled_from(["", "tool", "arguments"]) | form_text),
        "duration": draw(durations),
    }
    return f"/requests/{quote(request_id, safe='') or '1'}/{verdict}", form  # as a browser sends it


def test_fuzzed_sign_in_and_decision_forms_never_get_a_5xx_nor_leave_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.webui.conftest import add_people, password_of
    from tests.webui.test_pages import csrf_of

    caplog.set_level(logging.INFO)
    with run_gateway(
        tmp_path,
        database_url=f"sqlite:///{tmp_path}/airlock.db",
        policy=fixture("airlock-demo.yaml"),
        hold={"max_wait": "0.1s"},
    ) as gw:
        add_people(gw)
        with httpx2.Client(timeout=30) as http:
            auth = {"Authorization": f"Bearer {gw.token}", **HEADERS}
            opened = http.post(gw.mcp_url, json=INIT, headers=auth)
            session = {**auth, "mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
            dear = {"prompt": "four lighthouses", "provider": "openai", "model": "gpt-image-1", "n": 2}
            for request_id in (1, 2):  # two held calls for the decisions to aim at
                held = {"name": "generate_image", "arguments": {**dear, "n": request_id + 1}}
                http.post(
                    gw.mcp_url,
                    json={"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": held},
                    headers=session,
                )
        with (
            httpx2.Client(base_url=gw.base_url, timeout=30, follow_redirects=False) as stranger,
            httpx2.Client(base_url=gw.base_url, timeout=30, follow_redirects=False) as root,
        ):
            login_token = csrf_of(stranger.get("/login").text)
            token = csrf_of(root.get("/login").text)
            assert (
                root.post(
                    "/login", data={"username": "root", "password": password_of("root"), "csrf_token": token}
                ).status_code
                == 303
            )
            csrf = csrf_of(root.get("/rules").text)

            @settings(FUZZ, max_examples=FORM_EXAMPLES)
            @given(
                sign_in=st.fixed_dictionaries(
                    {"username": form_text, "password": form_text, "csrf_token": st.just(login_token) | form_text}
                ),
                decision=decision_forms(),
            )
            def post(sign_in: dict[str, str], decision: tuple[str, dict[str, Any]]) -> None:
                signed = stranger.post("/login", data=sign_in)
                assert signed.status_code < 500 and "Traceback" not in signed.text, (sign_in, signed.status_code)
                path, form = decision
                decided = root.post(path, data={"csrf_token": csrf, **form})
                assert decided.status_code < 500 and "Traceback" not in decided.text, (path, form, decided.status_code)

            post()
    assert_no_traceback(caplog)
