"""Signing out ends the session on the server, a new role ends a person's sessions, and repeated failed sign-ins are
throttled per username and per address; over plain HTTP against a running Airlock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.gateway.harness import RunningGateway, run_gateway
from tests.policy.helpers import fixture
from tests.webui.conftest import add_people, password_of
from tests.webui.test_pages import client, csrf_of, signed_in

WINDOW_SECONDS = 2


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[RunningGateway]:
    """Each test its own Airlock, so that each starts with no failures counted."""
    with run_gateway(
        tmp_path,
        database_url=f"sqlite:///{tmp_path}/airlock.db",
        policy=fixture("airlock-demo.yaml"),
        sign_in={"failures_per_username": 3, "failures_per_address": 8, "window": f"{WINDOW_SECONDS}s"},
    ) as running:
        add_people(running)
        yield running


def attempt(web: httpx2.Client, username: str, password: str) -> httpx2.Response:
    return web.post(
        "/login", data={"username": username, "password": password, "csrf_token": csrf_of(web.get("/login").text)}
    )


def test_a_cookie_copied_before_sign_out_is_refused_after_it(gw: RunningGateway) -> None:
    with signed_in(gw, "ana") as web, client(gw) as thief, signed_in(gw, "vic") as other:
        thief.cookies.set("airlock_session", web.cookies["airlock_session"])
        assert thief.get("/").status_code == 200
        stolen_csrf = csrf_of(thief.get("/").text)
        assert web.post("/logout", data={"csrf_token": csrf_of(web.get("/").text)}).status_code == 303
        for path in ("/", "/history", "/queue/rows"):
            refused = thief.get(path)
            assert refused.status_code == 303 and refused.headers["location"].startswith("/login"), path
        assert thief.post("/requests/1/approve", data={"csrf_token": stolen_csrf}).status_code == 401
        assert other.get("/").status_code == 200  # another person's session is untouched
    with signed_in(gw, "ana") as again:  # signing in again works at once
        assert again.get("/").status_code == 200


def test_a_new_role_ends_the_persons_sessions(gw: RunningGateway) -> None:
    with signed_in(gw, "vic") as vic, signed_in(gw, "root") as root:
        assert vic.get("/").status_code == 200
        token = csrf_of(root.get("/users").text)
        assert root.post("/users/vic/role", data={"csrf_token": token, "role": "approver"}).status_code == 303
        assert vic.get("/").status_code == 303
        assert root.get("/users").status_code == 200  # the admin who changed it stays signed in


def test_failed_sign_ins_lock_the_username_alone_until_the_window_passes(gw: RunningGateway) -> None:
    with client(gw) as web:
        for username in ("ana", "ana", "ana", "ghost", "ghost", "ghost"):
            wrong = attempt(web, username, "wrong password")
            assert wrong.status_code == 401 and "wrong username or password" in wrong.text
        locked_at = time.monotonic()
        refused = {}
        for username, password in (("ana", password_of("ana")), ("ghost", "anything")):
            answer = attempt(web, username, password)
            assert answer.status_code == 429, answer.text
            assert "text/html" in answer.headers["content-type"] and 'name="password"' in answer.text  # the form
            assert 1 <= int(answer.headers["retry-after"]) <= WINDOW_SECONDS
            refused[username] = answer.text.split('role="alert">')[1].split("<")[0]
        assert refused["ana"].startswith("too many failed sign-ins; try again in ")
        assert refused["ana"] == refused["ghost"]  # no telling whether the user exists
        with client(gw) as other:
            assert attempt(other, "vic", password_of("vic")).status_code == 303  # other people sign in as usual
        time.sleep(max(0.0, WINDOW_SECONDS + 0.2 - (time.monotonic() - locked_at)))
        assert attempt(web, "ana", password_of("ana")).status_code == 303


def test_failed_sign_ins_from_one_address_lock_it_for_everyone(gw: RunningGateway) -> None:
    with client(gw) as web:
        for i in range(8):  # eight usernames, none failing three times
            assert attempt(web, f"guess{i}", "wrong password").status_code == 401
        locked = attempt(web, "vic", password_of("vic"))
        assert locked.status_code == 429 and "too many failed sign-ins" in locked.text
