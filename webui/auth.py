"""Who is using the web UI: the session cookie, the roles a page or action needs, and the CSRF check on every form.

Viewers read, approvers decide, admins configure. Whether a person may decide a particular request is not decided
here: that rule lives in approvals.deciders.decider_refusal, and the UI only asks it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

import anyio
from fastapi import Depends, Request
from starlette.datastructures import FormData

from service.api.deps import StateDep
from service.approvals.deciders import has_deciding_role
from service.db.engine import unit_of_work
from service.errors import Forbidden, NotAuthenticated
from service.security import same_secret
from service.state import AppState
from service.users import service as users
from service.users.models import Role, User
from webui.sessions import SESSION_COOKIE, SessionSigner, WebSession

CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class WebUser:
    user: User
    session: WebSession
    csrf_token: str

    @property
    def username(self) -> str:
        return self.user.username

    @property
    def role(self) -> Role:
        return self.user.role

    @property
    def has_deciding_role(self) -> bool:
        return has_deciding_role(self.user.role)

    @property
    def is_admin(self) -> bool:
        return self.user.role is Role.ADMIN


def signer_for(state: AppState) -> SessionSigner:
    return SessionSigner.from_hasher(state.runtime.hasher)


def secure_cookies(public_url: str | None) -> bool:
    """Secure cookies whenever Airlock is reached over https; the demo runs on plain http on localhost."""
    return bool(public_url and public_url.lower().startswith("https://"))


async def load_user(state: AppState, cookie: str | None) -> WebUser | None:
    signer = signer_for(state)
    session = signer.read(cookie)
    if session is None:
        return None

    def load() -> User | None:
        with unit_of_work(state.runtime.engine) as db:
            try:
                return users.get_user(db, session.username)
            except Exception:  # a deleted user: the session is simply no longer valid
                return None

    user = await anyio.to_thread.run_sync(load)
    if user is None or user.disabled_at is not None:
        return None
    if not same_secret(session.credential, signer.credential_of(user.password_hash)):
        return None  # the password changed (a reset) since this session began
    if session.generation != user.session_generation:
        return None  # signed out, or the role changed, since this session began
    return WebUser(user, session, signer.csrf_token(session))


async def current_web_user(request: Request, state: StateDep) -> WebUser:
    web_user = await load_user(state, request.cookies.get(SESSION_COOKIE))
    if web_user is None:
        raise NotAuthenticated("please sign in")
    request.state.web_user = web_user
    return web_user


def needs(*roles: Role) -> Callable[[WebUser], Awaitable[WebUser]]:
    async def check(web_user: Annotated[WebUser, Depends(current_web_user)]) -> WebUser:
        if web_user.role not in roles:
            raise Forbidden(f"this needs the {' or '.join(r.value for r in roles)} role; you are a {web_user.role}")
        return web_user

    return check


Viewer = Annotated[WebUser, Depends(current_web_user)]
Approver = Annotated[WebUser, Depends(needs(Role.ADMIN, Role.APPROVER))]
Admin = Annotated[WebUser, Depends(needs(Role.ADMIN))]


async def checked_form(request: Request, web_user: Viewer) -> FormData:
    """The posted form, refused unless it carries this session's CSRF token."""
    form = await request.form()
    token = form.get(CSRF_FIELD)
    if not signer_for(request.app.state.airlock).csrf_ok(web_user.session, token if isinstance(token, str) else None):
        raise Forbidden("this form expired or did not come from Airlock (CSRF check failed); reload and try again")
    return form


CheckedForm = Annotated[FormData, Depends(checked_form)]


def field(form: FormData, name: str, default: str = "") -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else default
