"""Signing in and out."""

from __future__ import annotations

import math

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from service.api.deps import StateDep
from service.db.engine import unit_of_work
from service.errors import Forbidden, NotAuthenticated, TooManyAttempts
from service.users import service as users
from service.users.models import User
from webui.auth import CheckedForm, Viewer, field, load_user, secure_cookies, signer_for
from webui.live import sessions_changed
from webui.rendering import render_html, safe_next
from webui.sessions import LOGIN_COOKIE, SESSION_COOKIE, SESSION_SECONDS, SessionSigner
from webui.work import in_session

router = APIRouter()


def login_page(
    request: Request, state: StateDep, *, error: str | None, username: str, status: int, next_path: str | None = None
) -> Response:
    """The sign-in page: the password form (unless passwords are off) and a button per identity provider."""
    nonce = SessionSigner.new_login_nonce()
    oidc = state.runtime.settings.oidc
    context = {
        "error": error,
        "username": username,
        "next": safe_next(next_path if next_path is not None else request.query_params.get("next")),
        "login_csrf": signer_for(state).login_csrf_token(nonce),
        "passwords": oidc.passwords,
        "providers": [(name, provider.display_name or name) for name, provider in oidc.providers.items()],
    }
    response = render_html(request, "login.html", context, status)
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(state.runtime.settings.public_url),
        path="/login",
    )
    return response


@router.get("/login")
async def login_form(request: Request, state: StateDep) -> Response:
    if await load_user(state, request.cookies.get(SESSION_COOKIE)) is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    return login_page(request, state, error=None, username="", status=200)


@router.post("/login")
async def login(request: Request, state: StateDep) -> Response:
    if not state.runtime.settings.oidc.passwords:
        raise Forbidden("password sign-in is turned off here; sign in through your identity provider")
    form = await request.form()
    username, password = field(form, "username"), str(form.get("password") or "")
    token = form.get("csrf_token")
    if not signer_for(state).login_csrf_ok(
        request.cookies.get(LOGIN_COOKIE), token if isinstance(token, str) else None
    ):
        raise Forbidden("this sign-in form expired or did not come from Airlock (CSRF check failed); reload it")

    address = request.client.host if request.client else "unknown"

    def check() -> User:
        with unit_of_work(state.runtime.engine) as session:
            return users.sign_in(session, state.runtime.login_throttle, username, password, address=address)

    try:
        user = await anyio.to_thread.run_sync(check)
    except TooManyAttempts as exc:
        response = login_page(request, state, error=exc.message, username=username, status=429)
        response.headers["Retry-After"] = str(math.ceil(exc.retry_after))
        return response
    except NotAuthenticated as exc:
        return login_page(request, state, error=exc.message, username=username, status=401)
    except Forbidden as exc:  # the right password of a deactivated account
        return login_page(request, state, error=exc.message, username=username, status=403)
    response = signed_in(state, user, field(form, "next"))
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


def signed_in(state: StateDep, user: User, next_path: str) -> Response:
    """The redirect that starts a web session, whichever way the person signed in."""
    cookie, _session = signer_for(state).issue(user.username, user.password_hash, user.session_generation)
    response = RedirectResponse(safe_next(next_path), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(state.runtime.settings.public_url),
        path="/",
    )
    return response


@router.post("/logout")
async def logout(request: Request, form: CheckedForm, web_user: Viewer, state: StateDep) -> Response:
    # Clearing the cookie is not enough: a copy of it (another tab, another machine, a thief's) would stay valid.
    await in_session(state, lambda session: users.end_sessions(session, web_user.username))
    sessions_changed(request, web_user.username)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure_cookies(state.runtime.settings.public_url),
    )
    return response
