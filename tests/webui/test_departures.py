"""Deactivating, reactivating and deleting people from the Users page: admins only, CSRF-checked, a typed confirmation
for a deletion; a deactivated person's open pages, live socket and cookies stop working at once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.db.engine import unit_of_work
from service.users.departures import deactivate_user
from tests.gateway.harness import RunningGateway, run_gateway
from tests.policy.helpers import fixture
from tests.webui.conftest import add_people
from tests.webui.test_pages import closed_for_the_ended_session, csrf_of, live_socket_of, new_person, signed_in


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    tmp_path: Path = tmp_path_factory.mktemp("departures")
    with run_gateway(
        tmp_path, database_url=f"sqlite:///{tmp_path}/airlock.db", policy=fixture("airlock-demo.yaml")
    ) as running:
        add_people(running)
        yield running


def row_of(html: str, username: str) -> str | None:
    found = re.search(rf'<tr data-username="{username}">.*?</tr>', html, flags=re.S)
    return found.group(0) if found else None


def test_a_deactivated_persons_session_and_socket_end_and_reactivation_gives_neither_back(gw: RunningGateway) -> None:
    password = new_person(gw, "lea")
    with live_socket_of(gw, "lea", password) as (web, socket), signed_in(gw, "root") as admin:
        old_cookie = web.cookies["airlock_session"]
        done = admin.post("/users/lea/deactivate", data={"csrf_token": csrf_of(admin.get("/users").text)})
        assert done.status_code == 303
        assert closed_for_the_ended_session(socket)
        assert web.get("/").status_code == 303  # to the sign-in page
        row = row_of(admin.get("/users").text, "lea")
        assert row is not None and "deactivated" in row and "/users/lea/reactivate" in row
        again = web.post(
            "/login", data={"username": "lea", "password": password, "csrf_token": csrf_of(web.get("/login").text)}
        )
        assert again.status_code == 403 and "this account is deactivated" in again.text
        back = admin.post("/users/lea/reactivate", data={"csrf_token": csrf_of(admin.get("/users").text)})
        assert back.status_code == 303
        web.cookies.set("airlock_session", old_cookie)
        assert web.get("/").status_code == 303  # the cookie from before stays dead
        signed = web.post(
            "/login", data={"username": "lea", "password": password, "csrf_token": csrf_of(web.get("/login").text)}
        )
        assert signed.status_code == 303


def test_only_admins_deactivate_or_delete_and_never_themselves(gw: RunningGateway) -> None:
    new_person(gw, "max")
    with signed_in(gw, "ana") as approver:
        token = csrf_of(approver.get("/").text)
        for action in ("deactivate", "reactivate", "delete"):
            assert approver.post(f"/users/max/{action}", data={"csrf_token": token}).status_code == 403
    with signed_in(gw, "root") as admin:
        for action in ("deactivate", "reactivate", "delete"):
            assert admin.post(f"/users/max/{action}", data={"confirm_username": "max"}).status_code == 403  # no CSRF
        token = csrf_of(admin.get("/users").text)
        mine = admin.post("/users/root/deactivate", data={"csrf_token": token})
        assert mine.status_code == 403 and "you cannot deactivate yourself" in mine.text
        mine = admin.post("/users/root/delete", data={"csrf_token": token, "confirm_username": "root"})
        assert mine.status_code == 403 and "you cannot delete yourself" in mine.text
        assert admin.post("/users/ghost/deactivate", data={"csrf_token": token}).status_code == 404
        assert row_of(admin.get("/users").text, "max") is not None


def test_a_deletion_needs_the_username_typed_and_then_the_person_is_gone(gw: RunningGateway) -> None:
    new_person(gw, "ned")
    with signed_in(gw, "root") as admin:
        page = admin.get("/users").text
        row = row_of(page, "ned")
        assert row is not None and 'name="confirm_username"' in row
        token = csrf_of(page)
        unconfirmed = admin.post("/users/ned/delete", data={"csrf_token": token, "confirm_username": "nedd"})
        assert unconfirmed.status_code == 400 and "type their username to confirm" in unconfirmed.text
        assert row_of(admin.get("/users").text, "ned") is not None
        deleted = admin.post("/users/ned/delete", data={"csrf_token": token, "confirm_username": "ned"})
        assert deleted.status_code == 303
        assert row_of(admin.get("/users").text, "ned") is None
        reused = admin.post("/users", data={"csrf_token": token, "username": "ned", "role": "viewer"})
        assert reused.status_code == 409 and "was deleted" in reused.text


def test_a_deactivation_committed_outside_the_web_ui_closes_the_persons_socket_at_once(gw: RunningGateway) -> None:
    """As the CLI (or another replica) does it: no page handler is involved, so only the committed change's notice
    can tell the open page, well before its periodic 30 s check."""
    password = new_person(gw, "kit")
    with live_socket_of(gw, "kit", password) as (_web, socket):
        with unit_of_work(gw.state.runtime.engine) as session:
            deactivate_user(session, "kit", actor="cli")
        assert closed_for_the_ended_session(socket)  # within 10 s
