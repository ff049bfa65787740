"""The web UI's handlers over plain HTTP: sign-in, roles on every page and action, CSRF, errors as pages, headers,
the live socket's checks. One Airlock serves the whole module (the tests only read, or change what they own)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlmodel import select
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin

from service.approvals.events import EventBus
from service.approvals.schemas import ApprovalEvent
from service.audit import queries
from service.audit.models import AuditEvent
from service.db.engine import unit_of_work
from tests.audit.test_audit_service import FORMULAS, add_formula_events, exported_formula_cells
from tests.gateway.harness import RunningGateway, run_gateway
from tests.policy.helpers import fixture
from tests.webui.conftest import DEAR, AgentCall, add_people, call_now, password_of
from webui.auth import secure_cookies
from webui.live import LiveHub

PAGES = (
    "/",
    "/history",
    "/rules",
    "/rules/versions/1",
    "/queue/rows",
    "/history/export?format=jsonl",
    "/grants",
    "/approvals/standing",
    "/dashboard",
)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    tmp_path = tmp_path_factory.mktemp("pages")
    with run_gateway(
        tmp_path, database_url=f"sqlite:///{tmp_path}/airlock.db", policy=fixture("airlock-demo.yaml")
    ) as running:
        add_people(running)
        yield running


def client(gw: RunningGateway) -> httpx2.Client:
    return httpx2.Client(base_url=gw.base_url, follow_redirects=False, timeout=30)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, "the page has no CSRF field"
    return found.group(1)


@contextmanager
def signed_in(gw: RunningGateway, username: str) -> Iterator[httpx2.Client]:
    with client(gw) as web:
        token = csrf_of(web.get("/login").text)
        answer = web.post("/login", data={"username": username, "password": password_of(username), "csrf_token": token})
        assert answer.status_code == 303, answer.text
        yield web


def test_every_page_needs_a_session(gw: RunningGateway) -> None:
    with client(gw) as web:
        for path in PAGES:
            answer = web.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/login?next=")


def test_sign_in_needs_the_forms_csrf_token_and_the_right_password(gw: RunningGateway) -> None:
    with client(gw) as web:
        form = web.get("/login")
        assert 'name="username"' in form.text and 'name="password"' in form.text
        refused = web.post("/login", data={"username": "ana", "password": password_of("ana")})
        assert refused.status_code == 403 and "CSRF" in refused.text
        wrong = web.post("/login", data={"username": "ana", "password": "nope", "csrf_token": csrf_of(form.text)})
        assert wrong.status_code == 401 and "wrong username or password" in wrong.text
        right = web.post(
            "/login",
            data={
                "username": "ana",
                "password": password_of("ana"),
                "csrf_token": csrf_of(wrong.text),
                "next": "//evil.example/",
            },
        )
        assert right.status_code == 303 and right.headers["location"] == "/"  # never an open redirect
        cookie = right.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
        assert web.get("/").status_code == 200


def test_a_viewer_reads_everything_and_changes_nothing(gw: RunningGateway) -> None:
    with signed_in(gw, "vic") as web:
        for path in PAGES:
            assert web.get(path).status_code == 200, path
        token = csrf_of(web.get("/").text)
        source = fixture("airlock-demo.yaml")
        for path, data in (
            ("/rules", {"source": source, "comment": "mine now"}),
            ("/rules/versions/1/rollback", {"comment": "mine now"}),
            ("/queue/batch", {"action": "approve", "request_id": "1"}),
            ("/requests/1/approve", {}),
            ("/requests/1/reject", {"reason": "no"}),
            ("/approvals/standing/1/revoke", {}),
            ("/grants", {"name": "viewer-bot"}),
            ("/grants/agent/revoke", {}),
            ("/grants/agent/labels", {"labels": "env=prod"}),
            ("/users", {"username": "eve", "role": "admin"}),
            ("/users/vic/role", {"role": "admin"}),
        ):
            answer = web.post(path, data={**data, "csrf_token": token})
            assert answer.status_code == 403, path
            assert "role" in answer.text and "Traceback" not in answer.text


def test_an_approver_may_decide_but_not_configure(gw: RunningGateway) -> None:
    with signed_in(gw, "ana") as web:
        token = csrf_of(web.get("/rules").text)
        assert 'id="policy-form"' not in web.get("/rules").text  # no editor for a non-admin
        refused = web.post("/rules", data={"source": "version: '1'", "comment": "x", "csrf_token": token})
        assert refused.status_code == 403
        missing = web.post("/requests/99999/approve", data={"csrf_token": token, "arguments_digest": "0" * 64})
        assert missing.status_code == 404 and "no request R-99999" in missing.text


def test_every_form_posts_its_csrf_token_and_posts_without_it_are_refused(gw: RunningGateway) -> None:
    with signed_in(gw, "root") as web:
        page = web.get("/rules").text
        forms = re.findall(r'<form method="post".*?</form>', page, flags=re.S)
        assert forms and all('name="csrf_token"' in form for form in forms)
        for path in ("/rules", "/rules/check", "/logout", "/requests/1/approve", "/queue/batch"):
            answer = web.post(path, data={"source": "x", "comment": "x"})
            assert answer.status_code == 403, path
        with signed_in(gw, "root") as other:
            foreign = csrf_of(other.get("/").text)  # another session's token
        assert web.post("/rules/check", data={"source": "x", "csrf_token": foreign}).status_code == 403


def test_the_policy_check_lists_problems_with_their_lines(gw: RunningGateway) -> None:
    with signed_in(gw, "vic") as web:
        token = csrf_of(web.get("/").text)
        good = web.post("/rules/check", data={"source": fixture("airlock-demo.yaml"), "csrf_token": token}).json()
        assert good == {"ok": True, "problems": []}
        bad_source = 'version: "1"\ntools:\n  t:\n    action: maybe\n'
        bad = web.post("/rules/check", data={"source": bad_source, "csrf_token": token}).json()
        assert not bad["ok"]
        assert bad["problems"][0]["path"] == "/tools/t/action" and bad["problems"][0]["line"] == 4


def test_errors_are_friendly_pages_and_the_api_keeps_json(gw: RunningGateway) -> None:
    with signed_in(gw, "vic") as web:
        missing = web.get("/no/such/page")
        assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
        assert "There is no page at this address." in missing.text
        bad = web.get("/requests/not-a-number")
        assert bad.status_code == 400 and "Traceback" not in bad.text
        bad_filter = web.get("/history", params={"since": "yesterday-ish"})
        assert bad_filter.status_code == 400 and "2026-11-24T09:00" in bad_filter.text
    with client(gw) as api:
        answer = api.get("/api/requests")
        assert answer.status_code == 401 and answer.json() == {
            "error": "an API token is required: Authorization: Bearer <token>"
        }
        assert api.get("/api/nothing").json() == {"detail": "Not Found"}


def test_pages_carry_a_strict_content_security_policy(gw: RunningGateway) -> None:
    with signed_in(gw, "vic") as web:
        for path in ("/", "/login", "/static/queue.js", "/nope"):
            headers = web.get(path).headers
            csp = headers["content-security-policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
            assert headers["x-content-type-options"] == "nosniff"
        page = web.get("/").text
        assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page) is None  # no inline scripts
        assert re.search(r"\son[a-z]+\s*=", page) is None  # no inline event handlers


def test_the_history_exports_the_current_filter(gw: RunningGateway) -> None:
    with signed_in(gw, "vic") as web:
        page = web.get("/history", params={"outcome": "deny", "tool": "generate_image"}).text
        assert "/history/export?tool=generate_image&amp;outcome=deny&amp;format=csv" in page
        exported = web.get("/history/export", params={"format": "csv", "action": "x", "outcome": "nothing-has-this"})
        assert exported.headers["content-type"].startswith("text/csv")
        assert exported.text.splitlines() == [exported.text.splitlines()[0]]  # the header line only
        assert exported.text.startswith("seq,occurred_at,kind,action")
        assert web.get("/history/export", params={"format": "xml"}).status_code == 400
        add_formula_events(gw.state.runtime.engine)
        cells = exported_formula_cells(web.get("/history/export", params={"format": "csv"}).text)
        assert cells == [("agent:" + f, "'" + f, "'" + f) for f in FORMULAS]  # no cell a spreadsheet would run


def test_the_history_searches_tool_and_reason_and_says_how_far_a_short_search_read(
    gw: RunningGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not call_now(gw, "get_model_capabilities", {}).is_error
    with signed_in(gw, "vic") as web:
        page = web.get("/history", params={"q": "MODEL_cap"}).text
        tools = re.findall(r'<span class="tool">([^<]*)</span>', page)
        assert tools and set(tools) == {"get_model_capabilities"}
        assert 'id="search-window"' not in page
        assert "No events match." in web.get("/history", params={"q": "no such text anywhere"}).text
        monkeypatch.setattr(queries, "SHORT_SEARCH_WINDOW", 1)
        short = web.get("/history", params={"q": "zq"}).text
        assert "No events match." in short and 'id="search-window"' in short and 'id="older"' in short


def test_the_live_socket_wants_a_session_and_the_same_origin(gw: RunningGateway) -> None:
    url = gw.base_url.replace("http://", "ws://") + "/ws/queue"
    with signed_in(gw, "vic") as web:
        cookie = f"airlock_session={web.cookies['airlock_session']}"
    with connect(url, origin=Origin(gw.base_url), additional_headers={"Cookie": cookie}) as socket:
        assert json.loads(socket.recv(timeout=10)) == {"kind": "hello"}
    for origin, headers in ((gw.base_url, {}), ("http://evil.example", {"Cookie": cookie})):
        with pytest.raises(InvalidStatus) as refused:
            connect(url, origin=Origin(origin), additional_headers=headers)
        assert refused.value.response.status_code == 403


def new_person(gw: RunningGateway, username: str, role: str = "approver") -> str:
    """A person of this test's own, created by the admin; their first password."""
    with signed_in(gw, "root") as admin:
        created = admin.post(
            "/users", data={"csrf_token": csrf_of(admin.get("/users").text), "username": username, "role": role}
        )
    password = re.search(r'<code id="secret-password">([^<]+)</code>', created.text)
    assert password is not None
    return password.group(1)


@contextmanager
def live_socket_of(gw: RunningGateway, username: str, password: str) -> Iterator[tuple[httpx2.Client, Any]]:
    """A signed-in client of this person, and their open live-queue socket (past its hello)."""
    with client(gw) as web:
        signed = web.post(
            "/login", data={"username": username, "password": password, "csrf_token": csrf_of(web.get("/login").text)}
        )
        assert signed.status_code == 303
        cookie = f"airlock_session={web.cookies['airlock_session']}"
        url = gw.base_url.replace("http://", "ws://") + "/ws/queue"
        with connect(url, origin=Origin(gw.base_url), additional_headers={"Cookie": cookie}) as socket:
            assert json.loads(socket.recv(timeout=10)) == {"kind": "hello"}
            yield web, socket


def closed_for_the_ended_session(socket: Any) -> bool:
    with pytest.raises(ConnectionClosed) as closed:
        socket.recv(timeout=10)
    return closed.value.rcvd is not None and closed.value.rcvd.code == 4401


def test_the_live_socket_closes_when_its_session_signs_out(gw: RunningGateway) -> None:
    password = new_person(gw, "sol")
    with live_socket_of(gw, "sol", password) as (web, socket):
        assert web.post("/logout", data={"csrf_token": csrf_of(web.get("/").text)}).status_code == 303
        assert closed_for_the_ended_session(socket)


def test_the_live_socket_closes_when_its_role_or_password_changes(gw: RunningGateway) -> None:
    password = new_person(gw, "ray")
    with live_socket_of(gw, "ray", password) as (_web, socket), signed_in(gw, "root") as admin:
        token = csrf_of(admin.get("/users").text)
        assert admin.post("/users/ray/role", data={"csrf_token": token, "role": "viewer"}).status_code == 303
        assert closed_for_the_ended_session(socket)
    password = new_person(gw, "pia")
    with live_socket_of(gw, "pia", password) as (_web, socket), signed_in(gw, "root") as admin:
        assert (
            admin.post("/users/pia/password", data={"csrf_token": csrf_of(admin.get("/users").text)}).status_code == 200
        )
        assert closed_for_the_ended_session(socket)


def test_the_hub_hands_events_to_every_page_and_forgets_closed_ones() -> None:
    bus = EventBus()
    hub = LiveHub.listening_to(bus)
    with hub.attach("ana") as first, hub.attach("bo") as second:
        bus.publish([ApprovalEvent("created", 7, "pending")])
        assert (
            first.events.receive_nowait()
            == second.events.receive_nowait()
            == {"kind": "created", "request_id": 7, "status": "pending"}
        )
        assert hub.pages == 2
    assert hub.pages == 0
    bus.publish([ApprovalEvent("decided", 7, "approved")])  # nobody listens: nothing breaks


def test_static_files_are_served(gw: RunningGateway, tmp_path: Path) -> None:
    with client(gw) as web:
        assert "WebSocket" in web.get("/static/queue.js").text
        assert web.get("/static/airlock.css").headers["content-type"].startswith("text/css")


def test_an_admin_creates_a_grant_whose_token_is_shown_once_and_then_revokes_it(gw: RunningGateway) -> None:
    with signed_in(gw, "root") as web:
        token = csrf_of(web.get("/grants").text)
        created = web.post(
            "/grants",
            data={
                "csrf_token": token,
                "name": "pages-bot",
                "owner": "ana",
                "labels": "team=qa",
                "upstream": "imagegen",
            },
        )
        assert created.status_code == 200 and created.headers["cache-control"] == "no-store"
        secret = re.search(r'<code id="new-token">(alk_[^<]+)</code>', created.text)
        assert secret is not None
        assert f"&#34;Authorization&#34;: &#34;Bearer {secret.group(1)}&#34;" in created.text  # the MCP client config
        assert f"{gw.base_url}/mcp" in created.text
        listed = web.get("/grants").text
        assert 'data-grant="pages-bot"' in listed and secret.group(1) not in listed and "team=qa" in listed
        again = web.post("/grants", data={"csrf_token": token, "name": "pages-bot"})
        assert again.status_code == 409 and "already exists" in again.text
        assert web.post("/grants/pages-bot/revoke", data={"csrf_token": token}).status_code == 303
        assert 'data-grant="pages-bot"' not in web.get("/grants").text
        assert "revoked" in web.get("/grants", params={"revoked": "1"}).text
    with signed_in(gw, "ana") as web:
        token = csrf_of(web.get("/grants").text)
        assert 'id="create-grant"' not in web.get("/grants").text
        assert web.post("/grants", data={"csrf_token": token, "name": "not-mine"}).status_code == 403


LABELLED = """
version: "1"
default: deny
tools:
  get_model_capabilities:
    deny_if:
      - when: '"env" in grant.labels && grant.labels.env == "frozen"'
        on_deny: "This agent is frozen."
"""


def test_an_admin_edits_a_grants_labels_and_the_policy_sees_them_on_the_next_call(tmp_path: Path) -> None:
    with run_gateway(tmp_path, database_url=f"sqlite:///{tmp_path}/airlock.db", policy=LABELLED) as gw:
        add_people(gw)
        agent = call_now(gw, "get_model_capabilities", {})
        assert not agent.is_error
        with signed_in(gw, "root") as web:
            token = csrf_of(web.get("/grants").text)
            bad = web.post("/grants/agent/labels", data={"csrf_token": token, "labels": "no equals sign"})
            assert bad.status_code == 400 and "key=value" in bad.text
            changed = web.post("/grants/agent/labels", data={"csrf_token": token, "labels": "env=frozen, team=qa"})
            assert changed.status_code == 303
            listed = web.get("/grants").text
            assert "env=frozen" in listed and "team=qa" in listed
            assert web.post("/grants/nobody/labels", data={"csrf_token": token, "labels": ""}).status_code == 404
        frozen = call_now(gw, "get_model_capabilities", {})  # at once: this process's grant cache was cleared
        assert frozen.is_error and "This agent is frozen." in frozen.content[0].text  # type: ignore[union-attr]
        with unit_of_work(gw.state.runtime.engine) as session:
            changes = session.exec(select(AuditEvent).where(AuditEvent.action == "grant.labels_changed")).all()
            assert [(e.actor, e.details) for e in changes] == [
                ("user:root", {"before": {}, "after": {"env": "frozen", "team": "qa"}})
            ]
        assert len(gw.upstream_calls("get_model_capabilities")) == 1


def test_users_are_managed_by_admins_only(gw: RunningGateway) -> None:
    with signed_in(gw, "ana") as web:
        assert web.get("/users").status_code == 403
        assert 'href="/users"' not in web.get("/").text
    with signed_in(gw, "root") as web:
        token = csrf_of(web.get("/users").text)
        created = web.post("/users", data={"csrf_token": token, "username": "zoe", "role": "viewer"})
        password = re.search(r'<code id="secret-password">([^<]+)</code>', created.text)
        assert password is not None and "alku_" in created.text
        assert web.post("/users/zoe/role", data={"csrf_token": token, "role": "approver"}).status_code == 303
        assert web.post("/users/zoe/slack", data={"csrf_token": token, "slack_user_id": "U0ZOE123"}).status_code == 303
        bad_slack = web.post("/users/zoe/slack", data={"csrf_token": token, "slack_user_id": "zoe"})
        assert bad_slack.status_code == 400 and "is not a Slack user id" in bad_slack.text
        issued = web.post("/users/zoe/tokens", data={"csrf_token": token, "name": "ci"})
        assert re.search(r'<code id="secret-token">alku_', issued.text)
        reset = web.post("/users/zoe/password", data={"csrf_token": token})
        new_password = re.search(r'<code id="secret-password">([^<]+)</code>', reset.text)
        assert new_password is not None and new_password.group(1) != password.group(1)
        row = re.search(r'<tr data-username="zoe">.*?</tr>', web.get("/users").text, flags=re.S)
        assert row is not None and "approver" in row.group(0) and "U0ZOE123" in row.group(0) and "ci" in row.group(0)
    with client(gw) as web:
        form = csrf_of(web.get("/login").text)
        old = web.post("/login", data={"username": "zoe", "password": password.group(1), "csrf_token": form})
        assert old.status_code == 401
        new = web.post(
            "/login", data={"username": "zoe", "password": new_password.group(1), "csrf_token": csrf_of(old.text)}
        )
        assert new.status_code == 303
        assert web.get("/").status_code == 200
        with signed_in(gw, "root") as admin:
            admin.post("/users/zoe/password", data={"csrf_token": csrf_of(admin.get("/users").text)})
        assert web.get("/").status_code == 303  # a new password ends the sessions that began with the old one


def test_the_dashboard_draws_its_charts_on_the_server(gw: RunningGateway) -> None:
    assert not call_now(gw, "get_model_capabilities", {}).is_error
    with signed_in(gw, "vic") as web:
        page = web.get("/dashboard").text
        assert 'id="stat-pending"' in page
        assert re.search(r'<rect [^>]*fill="#17803d"><title>\d\d:00: \d+ allow</title>', page)  # this hour's call
        assert "<script" not in page.split("</head>")[1]  # readable without JavaScript


def test_the_request_page_says_via_which_channel_it_was_decided(gw: RunningGateway) -> None:
    agent = AgentCall(gw, "generate_image", {**DEAR, "prompt": "decided over the REST API"}).start()
    with signed_in(gw, "vic") as web:
        deadline = time.monotonic() + 15
        while not (rows := re.findall(r'data-request-id="(\d+)"', web.get("/queue/rows").text)):
            assert time.monotonic() < deadline, "the call was not held"
            time.sleep(0.05)
        request_id = rows[0]
        approved = httpx2.post(
            f"{gw.base_url}/api/requests/{request_id}/approve",
            json={
                "comment": "fine",
                "arguments_digest": web.get(f"/requests/{request_id}").text.split('data-digest="')[1][:64],
            },
            headers={"Authorization": f"Bearer {gw.user_tokens['ana']}"},
        )
        assert approved.status_code == 200, approved.text
        assert not agent.wait().is_error
        page = web.get(f"/requests/{request_id}").text
        assert "ana via api at" in page
        assert '<span class="tag channel">via api</span>' in page
        assert web.get(f"/queue/rows/{request_id}").status_code == 204  # it left the queue


def test_cookies_are_secure_when_airlock_is_reached_over_https() -> None:
    assert secure_cookies("https://airlock.example.com")
    assert not secure_cookies("http://127.0.0.1:8080")
    assert not secure_cookies(None)
