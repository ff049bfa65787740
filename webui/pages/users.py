"""People (admins only): create, role, Slack user id, reset password, API tokens, deactivate, reactivate and delete.
Secrets are shown once."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import Session

from service.api.deps import RowId, StateDep
from service.audit.schemas import user_actor
from service.errors import InvalidInput
from service.users import departures
from service.users import service as users
from service.users.models import Role
from service.users.schemas import UserCreated
from webui.auth import Admin, CheckedForm, field
from webui.live import sessions_changed
from webui.rendering import redirect_with_flash, render_html
from webui.work import in_session

router = APIRouter()


async def _users_page(request: Request, state: StateDep, *, secret: dict[str, str] | None = None) -> Response:
    def load(session: Session) -> dict[str, Any]:
        people = users.list_users(session)
        return {"people": people, "tokens": {p.username: users.list_api_tokens(session, p.username) for p in people}}

    loaded = await in_session(state, load)
    context = {"title": "Users", **loaded, "roles": [r.value for r in Role], "secret": secret}
    return render_html(request, "users.html", context)


def _actor(user: Any) -> str:
    return user_actor(user.username)


@router.get("/users")
async def users_page(request: Request, state: StateDep, user: Admin) -> Response:
    return await _users_page(request, state)


@router.post("/users")
async def create(request: Request, form: CheckedForm, state: StateDep, user: Admin) -> Response:
    def run(session: Session) -> UserCreated:
        return users.create_user(
            session,
            state.runtime.hasher,
            username=field(form, "username"),
            role=users.parse_role(field(form, "role")),
            actor=_actor(user),
            slack_user_id=field(form, "slack_user_id") or None,
            email=field(form, "email") or None,
        )

    created = await in_session(state, run)
    secret = {"for": created.username, "password": created.password, "api_token": created.api_token}
    return await _users_page(request, state, secret=secret)


@router.post("/users/{username}/role")
async def set_role(request: Request, username: str, form: CheckedForm, state: StateDep, user: Admin) -> Response:
    role = users.parse_role(field(form, "role"))
    await in_session(state, lambda s: users.set_role(s, username, role, actor=_actor(user)))
    sessions_changed(request, username)
    return redirect_with_flash("/users", f"{username} is now {role.value}.")


@router.post("/users/{username}/slack")
async def set_slack(username: str, form: CheckedForm, state: StateDep, user: Admin) -> Response:
    slack_id = field(form, "slack_user_id") or None
    await in_session(state, lambda s: users.set_slack_user_id(s, username, slack_id, actor=_actor(user)))
    return redirect_with_flash("/users", f"{username}'s Slack user is {slack_id or 'not set'}.")


@router.post("/users/{username}/password")
async def reset_password(request: Request, username: str, form: CheckedForm, state: StateDep, user: Admin) -> Response:
    password = await in_session(state, lambda s: users.reset_password(s, username, actor=_actor(user)))
    sessions_changed(request, username)
    return await _users_page(request, state, secret={"for": username, "password": password})


@router.post("/users/{username}/tokens")
async def new_token(request: Request, username: str, form: CheckedForm, state: StateDep, user: Admin) -> Response:
    name = field(form, "name")
    token = await in_session(
        state, lambda s: users.new_api_token(s, state.runtime.hasher, username, name=name, actor=_actor(user))
    )
    return await _users_page(request, state, secret={"for": username, "api_token": token})


@router.post("/users/{username}/tokens/{token_id}/revoke")
async def revoke_token(username: str, token_id: RowId, form: CheckedForm, state: StateDep, user: Admin) -> Response:
    await in_session(state, lambda s: users.revoke_api_token(s, username, token_id, actor=_actor(user)))
    return redirect_with_flash("/users", f"API token {token_id} of {username} is revoked.")


@router.post("/users/{username}/deactivate")
async def deactivate(request: Request, username: str, form: CheckedForm, state: StateDep, user: Admin) -> Response:
    departure = await in_session(state, lambda s: departures.deactivate_user(s, username, actor=_actor(user)))
    departure.settle(state.runtime.counters, state.bus)  # committed: budgets back, held calls and pages told
    sessions_changed(request, username)  # their open queue pages close now
    suspended = f" Grants suspended: {', '.join(departure.grants)}." if departure.grants else ""
    return redirect_with_flash("/users", f"{username} is deactivated: signed out everywhere.{suspended}")


@router.post("/users/{username}/reactivate")
async def reactivate(username: str, form: CheckedForm, state: StateDep, user: Admin) -> Response:
    restored = await in_session(state, lambda s: departures.reactivate_user(s, username, actor=_actor(user)))
    again = f" Grants restored: {', '.join(restored)}." if restored else ""
    return redirect_with_flash("/users", f"{username} is reactivated and may sign in again.{again}")


@router.post("/users/{username}/delete")
async def delete(request: Request, username: str, form: CheckedForm, state: StateDep, user: Admin) -> Response:
    if field(form, "confirm_username") != username:
        raise InvalidInput(f"to delete {username}, type their username to confirm")
    departure = await in_session(state, lambda s: departures.delete_user(s, username, actor=_actor(user)))
    departure.settle(state.runtime.counters, state.bus)
    sessions_changed(request, username)
    revoked = f" Grants revoked: {', '.join(departure.grants)}." if departure.grants else ""
    return redirect_with_flash("/users", f"{username} is deleted; the audit log keeps their name.{revoked}")
