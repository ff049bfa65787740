"""Signing in to the web UI through real OpenID providers on loopback (tests/oidc/provider.py): the person presses
"Sign in with ...", types their subject at the provider, and comes back signed in, or refused with the reason."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx2
import pytest

from service.db.engine import unit_of_work
from service.users.models import Role
from service.users.service import create_user, get_user, list_users
from tests.gateway.harness import RunningGateway
from tests.oidc.provider import LoopbackProvider, sign_in_through
from tests.webui.test_pages import csrf_of

pytestmark = pytest.mark.e2e


@contextmanager
def browser_like(gw: RunningGateway) -> Iterator[httpx2.Client]:
    """One person's browser: its own cookies, for Airlock and the provider alike."""
    with httpx2.Client(base_url=gw.base_url, follow_redirects=False, timeout=30) as web:
        yield web


def who(page: httpx2.Response) -> tuple[str, str]:
    """The signed-in person's name and role, as the page header shows them."""
    name = re.search(r'<span class="user-name">([^<]+)</span>', page.text)
    role = re.search(r'<span class="role role-[a-z]+">([a-z]+)</span>', page.text)
    assert name is not None and role is not None, page.text[:2000]
    return name.group(1), role.group(1)


def refusal(page: httpx2.Response) -> str:
    found = re.search(r'<p class="error" role="alert">([^<]+)</p>', page.text)
    assert found is not None, page.text[:2000]
    return found.group(1)


def usernames(gw: RunningGateway) -> set[str]:
    with unit_of_work(gw.state.runtime.engine) as session:
        return {user.username for user in list_users(session)}


def add_user_with_email(gw: RunningGateway, username: str, email: str, role: Role = Role.ADMIN) -> None:
    runtime = gw.state.runtime
    with unit_of_work(runtime.engine) as session:
        create_user(session, runtime.hasher, username=username, role=role, actor="test", email=email)


def person(email: str, groups: list[str], *, verified: bool = True, username: str | None = None) -> dict[str, object]:
    claims: dict[str, object] = {"email": email, "email_verified": verified, "groups": groups}
    return claims | ({"preferred_username": username} if username else {})


def test_a_first_sign_in_creates_the_person_with_the_role_their_group_gives(
    gw: RunningGateway, corp: LoopbackProvider
) -> None:
    corp.set_accounts({"sub-ana": person("ana@example.com", ["airlock-approvers"], username="ana")})
    with browser_like(gw) as web:
        login_page = web.get("/login")
        assert 'href="/login/oidc/corp?next=/"' in login_page.text and "Sign in with Corp SSO" in login_page.text
        landed = sign_in_through(web, "corp", "sub-ana")
        assert landed.status_code == 200 and landed.url.path == "/"
        assert who(landed) == ("corp-ana", "approver")
    with unit_of_work(gw.state.runtime.engine) as session:
        ana = get_user(session, "corp-ana")
        assert ana.role is Role.APPROVER and ana.email == "ana@example.com"


@pytest.mark.parametrize(
    ("groups", "role"),
    [(["airlock-admins", "airlock-approvers"], "admin"), (["airlock-approvers"], "approver"), (["sales"], "viewer")],
)
def test_groups_map_to_the_highest_role_and_no_match_gives_the_default(
    gw: RunningGateway, corp: LoopbackProvider, groups: list[str], role: str
) -> None:
    corp.set_accounts({"sub-max": person("max@example.com", groups, username="max")})
    with browser_like(gw) as web:
        assert who(sign_in_through(web, "corp", "sub-max")) == ("corp-max", role)


def test_no_matching_group_is_refused_where_there_is_no_default_role(
    gw: RunningGateway, partner: LoopbackProvider
) -> None:
    partner.set_accounts({"p-sam": person("sam@partner.example", ["sales"], username="sam")})
    with browser_like(gw) as web:
        refused = sign_in_through(web, "partner", "p-sam")
        assert refused.status_code == 403 and "none of your groups" in refusal(refused)
        assert web.get("/").status_code == 303  # no session
    assert "partner-sam" not in usernames(gw) and "sam" not in usernames(gw)


def test_an_unverified_email_does_not_match_an_existing_user(gw: RunningGateway, corp: LoopbackProvider) -> None:
    add_user_with_email(gw, "root", "root@example.com")
    corp.set_accounts(
        {
            "sub-mallory": person("root@example.com", ["airlock-admins"], verified=False, username="mallory"),
            "sub-root": person("ROOT@example.com", ["airlock-admins"]),
        }
    )
    with browser_like(gw) as web:
        refused = sign_in_through(web, "corp", "sub-mallory")
        assert refused.status_code == 403 and "may not link" in refusal(refused)
        assert web.get("/").status_code == 303
    assert usernames(gw) == {"owner", "root"}
    with browser_like(gw) as web:  # the same e-mail, verified: the existing user, linked
        assert who(sign_in_through(web, "corp", "sub-root")) == ("root", "admin")


def test_a_linked_user_is_not_taken_over_by_email_from_a_new_subject_or_a_second_issuer(
    gw: RunningGateway, corp: LoopbackProvider, partner: LoopbackProvider
) -> None:
    add_user_with_email(gw, "root", "root@example.com")
    corp.set_accounts(
        {
            "sub-root": person("root@example.com", ["airlock-admins"]),
            "sub-other": person("root@example.com", ["airlock-admins"], username="other"),
        }
    )
    partner.set_accounts({"p-root": person("root@example.com", ["airlock-admins"])})
    with browser_like(gw) as web:
        assert who(sign_in_through(web, "corp", "sub-root")) == ("root", "admin")
    for provider, subject in (("corp", "sub-other"), ("partner", "p-root")):
        with browser_like(gw) as web:
            refused = sign_in_through(web, provider, subject)
            assert refused.status_code == 403, provider
            assert "already linked" in refusal(refused)
            assert web.get("/").status_code == 303
    assert usernames(gw) == {"owner", "root"}
    with browser_like(gw) as web:  # the linked subject still signs in as root
        assert who(sign_in_through(web, "corp", "sub-root")) == ("root", "admin")


def test_a_changed_group_demotes_at_the_next_sign_in_and_ends_the_other_sessions(
    gw: RunningGateway, corp: LoopbackProvider
) -> None:
    corp.set_accounts(
        {
            "sub-dana": person("dana@example.com", ["airlock-admins"], username="dana"),
            "sub-ops": person("ops@example.com", ["airlock-admins"], username="ops"),
        }
    )
    with browser_like(gw) as laptop, browser_like(gw) as phone, browser_like(gw) as ops:
        assert who(sign_in_through(ops, "corp", "sub-ops")) == ("corp-ops", "admin")  # remains an admin after dana
        assert who(sign_in_through(laptop, "corp", "sub-dana")) == ("corp-dana", "admin")
        assert laptop.get("/users").status_code == 200
        corp.set_accounts({"sub-dana": person("dana@example.com", ["airlock-approvers"], username="dana")})
        assert who(sign_in_through(phone, "corp", "sub-dana")) == ("corp-dana", "approver")
        assert phone.get("/users").status_code == 403
        ended = laptop.get("/users")
        assert ended.status_code == 303 and ended.headers["location"].startswith("/login")


def test_a_changed_group_with_the_same_role_still_ends_the_other_sessions(
    gw: RunningGateway, corp: LoopbackProvider
) -> None:
    corp.set_accounts({"sub-eve": person("eve@example.com", ["airlock-approvers"], username="eve")})
    with browser_like(gw) as laptop, browser_like(gw) as phone:
        sign_in_through(laptop, "corp", "sub-eve")
        sign_in_through(phone, "corp", "sub-eve")
        assert laptop.get("/").status_code == 200  # the same groups: both sessions live
        corp.set_accounts({"sub-eve": person("eve@example.com", ["airlock-approvers", "ops"], username="eve")})
        assert who(sign_in_through(phone, "corp", "sub-eve")) == ("corp-eve", "approver")
        assert laptop.get("/").status_code == 303


def test_a_deactivated_user_is_refused(gw: RunningGateway, corp: LoopbackProvider) -> None:
    from service.users import departures

    corp.set_accounts({"sub-fay": person("fay@example.com", ["airlock-approvers"], username="fay")})
    with browser_like(gw) as web:
        sign_in_through(web, "corp", "sub-fay")
    with unit_of_work(gw.state.runtime.engine) as session:
        departures.deactivate_user(session, "corp-fay", actor="test")
    with browser_like(gw) as web:
        refused = sign_in_through(web, "corp", "sub-fay")
        assert refused.status_code == 403 and "deactivated" in refusal(refused)


def test_signing_out_ends_a_session_begun_through_the_provider(gw: RunningGateway, corp: LoopbackProvider) -> None:
    corp.set_accounts({"sub-gil": person("gil@example.com", ["airlock-approvers"], username="gil")})
    with browser_like(gw) as web:
        home = sign_in_through(web, "corp", "sub-gil")
        kept = dict(web.cookies)
        out = web.post("/logout", data={"csrf_token": csrf_of(home.text)})
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert web.get("/").status_code == 303
    with httpx2.Client(base_url=gw.base_url, cookies=kept, timeout=30) as copied:
        assert copied.get("/").status_code == 303  # a copy of the cookie taken before is dead too


@pytest.mark.parametrize("gw", [{"passwords": False}], indirect=True)
def test_with_passwords_off_the_form_is_gone_and_a_posted_password_is_refused(
    gw: RunningGateway, corp: LoopbackProvider
) -> None:
    runtime = gw.state.runtime
    with unit_of_work(runtime.engine) as session:
        create_user(
            session, runtime.hasher, username="root", role=Role.ADMIN, actor="test", password="pw-root-0123456789"
        )
    with browser_like(gw) as web:
        page = web.get("/login")
        assert 'action="/login"' not in page.text and 'name="password"' not in page.text
        assert "Sign in with Corp SSO" in page.text
        refused = web.post("/login", data={"username": "root", "password": "pw-root-0123456789", "csrf_token": "x"})
        assert refused.status_code == 403
        assert web.get("/").status_code == 303
        corp.set_accounts({"sub-hal": person("hal@example.com", ["airlock-approvers"], username="hal")})
        assert who(sign_in_through(web, "corp", "sub-hal")) == ("corp-hal", "approver")
