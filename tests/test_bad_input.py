"""A corpus of bad input at every entry point: the MCP endpoint, the REST API (schemathesis, generated from our own
OpenAPI document), Slack's endpoints and the web forms. Nothing answers 500, nothing runs a call the policy did not
allow, nothing changes on a refused request."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.arguments import MAX_ARGUMENT_DEPTH
from tests.gateway.harness import RunningGateway, approve_via_api, run_gateway
from tests.gateway.test_edges import HEADERS, INIT
from tests.policy.helpers import fixture
from webui.sessions import SESSION_COOKIE

pytestmark = pytest.mark.anyio

# Times that parse, but whose UTC is outside what a datetime can hold.
OUT_OF_RANGE_TIMES = (
    {"until": "0001-01-01T00:00:00+14:00"},
    {"since": "9999-12-31T23:59:59-14:00"},
)

NASTY_STRINGS = [
    "",
    "\x00",
    "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
    "\ufeff\u202eevil",  # a byte-order mark and a right-to-left override
    "🦄" * 1000,
    "' OR 1=1; DROP TABLE tool_call_requests; --",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "%s%n%x",
    "R-99999999999999999999",
    "9" * 400,
]


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """A handled error is one log line; a traceback in the gateway's log means a bug
    (docs/architecture.md#bad-input)."""
    broken = [r.getMessage()[:200] for r in caplog.records if r.exc_info is not None]
    assert broken == [] and "Traceback" not in caplog.text, broken


def deep_arguments(levels: int, *, task: bool = False) -> bytes:
    """A tools/call whose arguments nest `levels` deep, as raw text (Python's encoder would not write 5,000 levels).
    `task`: task-augmented, which the direct path leaves to the SDK."""
    params = '{"task":{"ttl":60000},' if task else "{"
    inner = "[" * (levels - 1) + "]" * (levels - 1)
    return (
        '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":' + params + '"name":"generate_image","arguments":'
        '{"prompt":' + inner + "}}}"
    ).encode()


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"a": [value]}
    return value


def mcp_bodies() -> list[bytes]:
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "generate_image"}}
    bodies: list[Any] = [
        b"",
        b"{",
        b'{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "generate_image", "argu',
        b"\xff\xfe\x00garbage",
        b"[]",
        b"null",
        b"123",
        {"jsonrpc": "1.0", "id": 2, "method": "tools/call"},
        {"jsonrpc": "2.0", "id": {"a": 1}, "method": "tools/call", "params": {}},
        {**call, "params": "not an object"},
        {**call, "params": {"name": 42}},
        {**call, "params": {"name": "generate_image", "arguments": [1, 2]}},
        {**call, "params": {"name": "generate_image", "arguments": {"prompt": nested(200)}}},
        {**call, "params": {"name": "generate_image", "arguments": {"prompt": "x" * 200_000}}},
        {**call, "params": {"name": "generate_image", "arguments": {"prompt": 7, "n": "many"}}},
        {**call, "params": {"name": "generate_image", "arguments": {"prompt": "a", "directory": "/etc"}}},
        {**call, "params": {"name": "edit_image", "arguments": {"prompt": "a", "images": ["/etc/passwd"]}}},
        {"jsonrpc": "2.0", "id": 3, "method": "tasks/get", "params": {"taskId": "R-²"}},
        {"jsonrpc": "2.0", "id": 4, "method": "no/such/method"},
    ]
    for levels in (MAX_ARGUMENT_DEPTH + 1, 400, 5000):
        bodies += [deep_arguments(levels), deep_arguments(levels, task=True)]
    for number in (b"NaN", b"Infinity", b"-Infinity", b"1e400"):
        bodies.append(
            b'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"generate_image","arguments":'
            b'{"prompt":"a","n":' + number + b"}}}"
        )
    bodies.append({**call, "params": {"name": "generate_image", "arguments": {"prompt": "\ud800"}}})
    for text in NASTY_STRINGS:
        bodies.append({**call, "params": {"name": text, "arguments": {"prompt": text}}})
        bodies.append({**call, "params": {"name": "airlock_approval_status", "arguments": {"request_id": text}}})
    return [b if isinstance(b, bytes) else json.dumps(b).encode() for b in bodies]


async def session_headers(http: httpx2.AsyncClient, gw: RunningGateway) -> dict[str, str]:
    auth = {"Authorization": f"Bearer {gw.token}", **HEADERS}
    opened = await http.post(gw.mcp_url, json=INIT, headers=auth)
    session = {**auth, "mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
    await http.post(gw.mcp_url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
    return session


async def test_the_mcp_endpoint_answers_bad_input_clearly_and_runs_nothing_it_should_not(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with run_gateway(
        tmp_path,
        database_url=f"sqlite:///{tmp_path}/airlock.db",
        policy=fixture("airlock-demo.yaml"),
        hold={"max_wait": "0.1s", "pending_cap": 1000},  # held calls answer "pending" at once
    ) as gw:
        async with httpx2.AsyncClient(timeout=30) as http:
            session = await session_headers(http, gw)
            statuses = []
            for body in mcp_bodies():
                for headers in (session, {**session, "mcp-session-id": "nope"}, {"Authorization": "Bearer x"}):
                    answer = await http.post(gw.mcp_url, content=body, headers=headers)
                    statuses.append(answer.status_code)
                    assert answer.status_code < 500, (body[:80], answer.status_code, answer.text[:200])
                    assert "Traceback" not in answer.text
            assert {400, 401, 404} <= set(statuses)
            still_fine = await http.post(
                gw.mcp_url,
                json={"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "get_model_capabilities"}},
                headers=session,
            )
            assert still_fine.status_code == 200
        # Nothing the demo policy refuses or holds ran; only the last, allowed call did.
        assert [c["tool"] for c in gw.upstream_calls()] == ["get_model_capabilities"]
    assert_no_traceback(caplog)


async def test_the_rest_api_survives_what_its_own_openapi_document_generates(tmp_path: Path) -> None:
    with run_gateway(
        tmp_path,
        database_url=f"sqlite:///{tmp_path}/airlock.db",
        policy=fixture("airlock-demo.yaml"),
        users={"ana": "approver"},
    ) as gw:
        spec = httpx2.get(gw.base_url + "/openapi.json", timeout=10).json()
        schema = schemathesis.openapi.from_dict(spec)
        headers = {"Authorization": f"Bearer {gw.user_tokens['ana']}"}
        failures: list[str] = []
        for result in schema.get_all_operations():
            operation = result.ok()  # type: ignore[union-attr]  # an invalid schema would raise here, failing the test

            @settings(
                max_examples=10,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            @given(case=operation.as_strategy(), token=st.sampled_from([headers, {}, {"Authorization": "Bearer x"}]))
            def exercise(case: Any, token: dict[str, str]) -> None:
                response = case.call(base_url=gw.base_url, headers=token, timeout=10)
                if response.status_code >= 500 or "Traceback" in response.text:
                    failures.append(f"{case.method} {case.formatted_path}: {response.status_code}")

            exercise()
        assert failures == []
        assert gw.upstream_calls() == []  # the API decides requests; nothing in it runs a call by itself


async def test_slack_and_web_forms_refuse_forged_and_unprotected_posts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with run_gateway(
        tmp_path,
        database_url=f"sqlite:///{tmp_path}/airlock.db",
        policy=fixture("airlock-demo.yaml"),
        users={"ana": "approver"},
        slack={"bot_token": "xoxb-test", "signing_secret": "shh", "api_base_url": "http://127.0.0.1:9/api/"},
    ) as gw:
        async with httpx2.AsyncClient(timeout=10, base_url=gw.base_url) as http:
            for body in (b"", b"payload=%7B", b"payload=" + b"x" * 10_000, "payload=\u202e".encode()):
                for stamp in (b"", b"1", "²".encode(), b"9" * 40):
                    answer = await http.post(
                        "/slack/interactions",
                        content=body,
                        headers={
                            b"Content-Type": b"application/x-www-form-urlencoded",
                            b"X-Slack-Request-Timestamp": stamp,
                            b"X-Slack-Signature": b"v0=" + b"0" * 64,
                        },
                    )
                    assert answer.status_code == 401, (body[:20], stamp, answer.status_code)
            fresh = str(int(time.time())).encode()
            for signature in ("v0=" + "é" * 64, "v0=²", "ÿ"):  # a current timestamp, so the signature is compared
                answer = await http.post(
                    "/slack/interactions",
                    content=b"payload=%7B%7D",
                    headers={
                        b"Content-Type": b"application/x-www-form-urlencoded",
                        b"X-Slack-Request-Timestamp": fresh,
                        b"X-Slack-Signature": signature.encode("latin-1"),
                    },
                )
                assert answer.status_code == 401, (signature, answer.status_code)
            for path in ("/login", "/requests/1/approve", "/rules", "/grants"):
                answer = await http.post(path, data={"username": "ana", "password": "<script>", "csrf_token": ""})
                assert answer.status_code in (400, 401, 403, 404, 405, 422), (path, answer.status_code)
                assert "Traceback" not in answer.text
            await http.get("/login")  # the sign-in form's nonce cookie, so the token is really compared
            for token in ("é" * 43, "\u202e", "😀"):
                answer = await http.post("/login", data={"username": "ana", "password": "x", "csrf_token": token})
                assert answer.status_code == 403, (token, answer.status_code)
        for signature in ("é" * 43, "ÿ", "\x7f"):  # a forged session cookie whose signature is not ASCII
            cookie = f"{SESSION_COOKIE}=eyJ1IjoiYW5hIn0.{signature}".encode("latin-1")
            async with httpx2.AsyncClient(timeout=10, base_url=gw.base_url) as stranger:
                for page in ("/history", "/login", "/api/requests"):
                    answer = await stranger.get(page, headers={b"Cookie": cookie})
                    assert answer.status_code in (200, 303, 400, 401), (page, signature, answer.status_code)
                    assert "Traceback" not in answer.text
    assert_no_traceback(caplog)


async def test_signed_in_web_forms_take_the_corpus_without_a_500_or_an_unallowed_call(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.webui.conftest import add_people, password_of
    from tests.webui.test_pages import csrf_of

    with run_gateway(
        tmp_path,
        database_url=f"sqlite:///{tmp_path}/airlock.db",
        policy=fixture("airlock-demo.yaml"),
        hold={"max_wait": "0.1s", "pending_cap": 1000},
    ) as gw:
        add_people(gw)
        async with httpx2.AsyncClient(timeout=30) as http:
            session = await session_headers(http, gw)
            dear = {"prompt": "four lighthouses", "provider": "openai", "model": "gpt-image-1", "n": 2}
            held = {"name": "generate_image", "arguments": dear}
            await http.post(
                gw.mcp_url, json={"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": held}, headers=session
            )
        async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30, follow_redirects=False) as web:
            token = csrf_of((await web.get("/login")).text)
            signed = await web.post(
                "/login", data={"username": "root", "password": password_of("root"), "csrf_token": token}
            )
            assert signed.status_code == 303
            csrf = csrf_of((await web.get("/rules")).text)
            policy_before = (await web.get("/rules")).text.count("data-version-id")
            answers: list[tuple[str, int]] = []

            async def post(path: str, **form: Any) -> None:
                answer = await web.post(path, data={"csrf_token": csrf, **form})
                answers.append((path, answer.status_code))
                assert answer.status_code < 500 and "Traceback" not in answer.text, (path, form, answer.status_code)

            for text in NASTY_STRINGS:
                segment = quote(text, safe="") or "%20"  # as a browser would send it in a path
                if text:  # an empty edit would be a plain approval, which is not bad input
                    await post("/requests/1/approve", arguments=text, comment=text)
                await post("/requests/1/approve", arguments='{"prompt": 1}', remember=text, duration=text)
                await post(f"/requests/{segment}/approve")
                await post("/queue/batch", action=text, request_id=[text, "9" * 40], reason=text)
                await post("/queue/batch", action="approve", request_id=["9" * 40])
                await post("/rules", source=text, comment=text)
                await post("/rules/check", source=text)
                await post("/grants", name=text, labels=text, owner=text, upstream=text)
                await post(f"/grants/{segment}/revoke")
                await post("/users", username=text, role=text, email=text)
                await post(f"/users/{segment}/role", role=text)
                await post(f"/users/{segment}/deactivate")
                await post(f"/users/{segment}/reactivate")
                await post(f"/users/{segment}/delete", confirm_username=text)
                await post("/users/ana/delete", confirm_username=text)  # a wrong confirmation deletes nothing
                await post(f"/rules/versions/{segment}/rollback", comment=text)
                for page, params in (
                    ("/history", {"since": text, "until": text, "tool": text, "grant": text, "text": text}),
                    ("/history", {"outcome": text, "channel": text, "before": text}),
                    ("/history/export", {"format": text, "tool": text}),
                    ("/rules/simulate", {"grant": text, "tool": text, "arguments": text}),
                ):
                    shown = await web.get(page, params=params)
                    assert shown.status_code < 500 and "Traceback" not in shown.text, (page, params)
            for levels in (MAX_ARGUMENT_DEPTH + 1, 5000):  # an approver's edit nested too deep to run
                deep = '{"prompt":' + "[" * (levels - 1) + "]" * (levels - 1) + "}"
                await post("/requests/1/approve", arguments_digest="0" * 64, arguments=deep)
                assert answers[-1][1] < 500
            for duration in ("99999999999999d", "9" * 400 + "w", "1e400s"):  # "approve and remember" for ages
                await post("/requests/1/approve", arguments='{"prompt": 1}', remember="tool", duration=duration)
                assert answers[-1][1] == 400, answers[-1]
            for page, params in (
                *[("/history", {"cursor": cursor}) for cursor in ("9" * 30, "²")],
                *[(page, times) for page in ("/history", "/history/export") for times in OUT_OF_RANGE_TIMES],
            ):
                shown = await web.get(page, params=params)
                assert shown.status_code == 400 and "Traceback" not in shown.text, (page, params, shown.status_code)
            assert {400, 404, 422} & {status for _, status in answers}
            assert (await web.get("/rules")).text.count("data-version-id") == policy_before  # no bad policy applied
            assert 'data-username="ana"' in (await web.get("/users")).text  # no corpus string confirmed her deletion
        async with gw.api("ana") as api:
            for cursor in ("9" * 30, "²", "-1"):
                listed = await api.get("/api/requests", params={"cursor": cursor})
                assert listed.status_code == 400, (cursor, listed.status_code)
            deep_patch: Any = "x"
            for _ in range(MAX_ARGUMENT_DEPTH + 1):  # the patch object itself is level 1
                deep_patch = {"p": deep_patch}
            edited = await approve_via_api(api, 1, patch=deep_patch)
            assert edited.status_code == 400 and "deeper than" in edited.text, edited.text[:200]
            too_deep_to_parse = '{"arguments_digest":"0","patch":' + "[" * 5000 + "]" * 5000 + "}"
            edited = await api.post(
                "/api/requests/1/approve", content=too_deep_to_parse, headers={"Content-Type": "application/json"}
            )
            assert edited.status_code == 400, edited.status_code
            for duration in ("99999999999999d", "9" * 400 + "w"):
                remembered = await approve_via_api(api, 1, remember={"scope": "tool", "duration": duration})
                assert remembered.status_code in (400, 422), (duration, remembered.status_code)
            request = (await api.get("/api/requests/1")).json()
        assert request["status"] == "pending"  # nothing in the corpus approved it
        assert gw.upstream_calls() == []
    assert_no_traceback(caplog)


def oauth_requests(gw: RunningGateway, client_id: str, text: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, httpx arguments) of one nasty text at every OAuth entry point (service/oauth/)."""
    segment = quote(text, safe="") or "%20"
    challenge = "A" * 43
    callback = "http://127.0.0.1:9/callback"
    authorize = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": callback,
        "code_challenge": challenge,
        "state": text,
    }
    return [
        ("POST", "/register", {"content": text.encode("utf-8", "replace")}),
        ("POST", "/register", {"json": {"redirect_uris": [text], "client_name": text}}),
        (
            "POST",
            "/register",
            {"json": {"redirect_uris": ["http://127.0.0.1:9/cb"], "token_endpoint_auth_method": text}},
        ),
        ("POST", "/register", {"json": {"redirect_uris": ["http://127.0.0.1:9/cb"], "grant_types": [text]}}),
        # Past oauth.registration_max_bytes (16 KiB) for the long texts: 413 before the body is all read.
        ("POST", "/register", {"json": {"redirect_uris": ["http://127.0.0.1:9/cb"], "client_name": text * 20}}),
        ("GET", "/authorize", {"params": {**authorize, "client_id": text}}),
        ("GET", "/authorize", {"params": authorize}),
        ("GET", "/authorize", {"params": {**authorize, "code_challenge": text or "x"}}),
        ("GET", "/authorize", {"params": {**authorize, "resource": text, "scope": text}}),
        ("GET", "/authorize", {"params": {**authorize, "redirect_uri": text}}),
        ("POST", "/token", {"data": {"client_id": text, "grant_type": "authorization_code", "code": text}}),
        ("POST", "/token", {"data": {"client_id": client_id, "grant_type": text, "code": text}}),
        (
            "POST",
            "/token",
            {"data": {"client_id": client_id, "grant_type": "authorization_code", "code": text, "code_verifier": text}},
        ),
        ("POST", "/token", {"data": {"client_id": client_id, "grant_type": "refresh_token", "refresh_token": text}}),
        ("POST", "/revoke", {"data": {"client_id": client_id, "token": text, "token_type_hint": text}}),
        ("POST", "/revoke", {"data": {"client_id": text, "token": text}}),
        ("GET", f"/.well-known/oauth-protected-resource/mcp/{segment}", {}),
        ("GET", f"/oauth/consent/{segment}", {}),
    ]


async def test_the_oauth_endpoints_answer_bad_input_clearly_and_issue_nothing(
    engine: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from sqlmodel import Session, select

    from service.oauth.models import OAuthToken
    from tests.gateway.test_gateway import db_url
    from tests.oauth.helpers import Person, RawClient, csrf_in, oauth_gateway, pkce

    # Enough registrations for the whole corpus from one address; their bound has its own test below.
    with oauth_gateway(tmp_path, db_url(engine), oauth={"registrations_per_address": 1000}) as gw:
        async with httpx2.AsyncClient(timeout=30) as http, httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as web:
            client = await RawClient.register(http, gw)
            person = Person(web, "root")
            _verifier, challenge = pkce()
            page = await person.consent_page(client.authorize_url(challenge))  # signed in, with a pending request
            consent_path, csrf = page.url.path, csrf_in(page.text)
            statuses: list[int] = []
            for text in NASTY_STRINGS:
                for method, path, arguments in oauth_requests(gw, client.client_id, text):
                    answer = await web.request(method, path, **arguments)
                    statuses.append(answer.status_code)
                    assert answer.status_code < 500, (method, path, text[:20], answer.status_code, answer.text[:200])
                    assert "Traceback" not in answer.text
                for form in ({"grant": text}, {"new_grant": text}, {"decision": text, "grant": text}):
                    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", form.get("new_grant", "")):
                        continue  # a well-formed new name makes a real grant: not bad input
                    answer = await web.post(consent_path, data={"csrf_token": csrf, "decision": "approve", **form})
                    assert answer.status_code in (400, 403), (form, answer.status_code, answer.text[:200])
                bearer = "alko_" + quote(text, safe="")
                refused = await http.post(gw.mcp_url, json={}, headers={"Authorization": f"Bearer {bearer}", **HEADERS})
                assert refused.status_code == 401, (text[:20], refused.status_code)
            assert {400, 401, 404} <= set(statuses)
            again = await web.get(consent_path)
            assert again.status_code == 200  # nothing in the corpus answered the pending request
        with Session(gw.state.runtime.engine) as session:
            assert session.exec(select(OAuthToken)).all() == []
        assert gw.upstream_calls() == []
    assert_no_traceback(caplog)


async def test_oauth_registration_floods_and_oversized_metadata_are_refused_and_store_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from sqlmodel import Session, select

    from service.oauth.models import OAuthClient
    from tests.oauth.helpers import REDIRECT_URI, oauth_gateway

    metadata = {"client_name": "x", "redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none"}
    oversized = json.dumps({**metadata, "client_name": "x" * 20_000}).encode()

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for start in range(0, len(oversized), 4096):
            yield oversized[start : start + 4096]

    with oauth_gateway(tmp_path, oauth={"registrations_per_address": 4}) as gw:
        async with httpx2.AsyncClient(base_url=gw.base_url, timeout=30) as http:
            headers = {"Content-Type": "application/json"}
            for body in (oversized, chunks()):
                refused = await http.post("/register", content=body, headers=headers)
                assert refused.status_code == 413, refused.text
                assert refused.json() == {
                    "error": "invalid_client_metadata",
                    "error_description": "client metadata is at most 16384 bytes",
                }
            assert (await http.post("/register", json=metadata)).status_code == 201
            assert (await http.post("/register", json={**metadata, "redirect_uris": ["\x00"]})).status_code == 400
            # Four attempts from this address this hour, refused or not: the fifth is turned away unread.
            flood = await http.post("/register", json=metadata)
            assert flood.status_code == 429 and flood.json()["error"] == "too_many_requests"
            assert int(flood.headers["retry-after"]) > 0
        with Session(gw.state.runtime.engine) as session:
            assert len(session.exec(select(OAuthClient)).all()) == 1
    assert_no_traceback(caplog)


async def test_the_oidc_callback_refuses_forged_and_broken_answers_and_signs_no_one_in(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A bad state, a missing code, the provider's own refusal, a forged code or ID token, a forged attempt cookie
    and the nasty strings: each answered with the sign-in page and its reason, and no session begins."""
    from joserfc import jwt
    from joserfc.jwk import RSAKey

    from service.db.engine import unit_of_work
    from service.users.service import list_users
    from tests.gateway.harness import free_port
    from tests.oidc.provider import callback_of, running_provider

    port = free_port()
    with running_provider() as corp:
        corp.setup([callback_of(f"http://127.0.0.1:{port}", "corp")], {"sub-ana": {"groups": ["airlock-admins"]}})
        forged_token = jwt.encode(
            {"alg": "RS256", "kid": "k"},
            {"iss": corp.issuer, "aud": "airlock", "sub": "sub-ana", "exp": int(time.time()) + 60, "nonce": "n"},
            RSAKey.generate_key(2048),
        )
        with run_gateway(
            tmp_path,
            database_url=f"sqlite:///{tmp_path}/airlock.db",
            policy=fixture("airlock-demo.yaml"),
            port=port,
            oidc={"providers": {"corp": corp.settings()}},
        ) as gw:
            async with httpx2.AsyncClient(timeout=30, base_url=gw.base_url) as web:

                async def started_state() -> str:
                    """A real attempt's state (its cookie is in the jar) for the next answer to be checked against."""
                    start = await web.get("/login/oidc/corp")
                    assert start.status_code == 303, start.text
                    found = re.search(r"[?&]state=([^&]+)", start.headers["location"])
                    assert found is not None
                    return found.group(1)

                answers: list[tuple[dict[str, str] | None, tuple[int, ...]]] = [
                    ({"state": "guessed", "code": "x"}, (401,)),
                    ({"state": "", "code": "x"}, (401,)),
                    (None, (400,)),  # the right state, no code
                    ({"error": "access_denied", "error_description": "the person said no"}, (401,)),
                    ({"code": "forged-code"}, (401,)),
                    ({"code": "forged-code", "id_token": forged_token}, (401,)),
                ]
                answers += [({"state": text, "code": text}, (401,)) for text in NASTY_STRINGS]
                answers += [({"error": text}, (401,)) for text in NASTY_STRINGS if text]
                for query, statuses in answers:
                    state = await started_state()
                    params = {"state": state} | (query or {})
                    answer = await web.get("/login/oidc/corp/callback", params=params)
                    assert answer.status_code in statuses, (query, answer.status_code, answer.text[:300])
                    assert SESSION_COOKIE not in answer.cookies and 'role="alert"' in answer.text
                    assert "Traceback" not in answer.text
                refused = await web.get("/login/oidc/corp/callback", params={"state": await started_state()})
                assert "without a sign-in code" in refused.text
                no_thanks = await web.get(
                    "/login/oidc/corp/callback", params={"state": await started_state(), "error": "access_denied"}
                )
                assert "did not sign you in: access_denied" in no_thanks.text
            async with httpx2.AsyncClient(timeout=30, base_url=gw.base_url) as stranger:
                for cookie in ("", "e30.AAAA", "é" * 40, "x." + "ÿ" * 10):
                    answer = await stranger.get(
                        "/login/oidc/corp/callback",
                        params={"state": "s", "code": "c"},
                        headers={b"Cookie": f"airlock_oidc={cookie}".encode("latin-1")},
                    )
                    assert answer.status_code == 401 and SESSION_COOKIE not in answer.cookies, cookie
                assert (await stranger.get("/login/oidc/nobody")).status_code == 404
                assert (await stranger.get("/login/oidc/nobody/callback?code=x&state=y")).status_code == 404
            with unit_of_work(gw.state.runtime.engine) as session:
                assert [u.username for u in list_users(session)] == ["owner"]
    assert_no_traceback(caplog)
