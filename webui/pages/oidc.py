"""Signing in through an identity provider (OpenID Connect): the start, which sends the browser to the provider, and
the callback it comes back to. The checks live in service/oidc/sign_in.py; the session is the password sign-in's."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from service.api.deps import StateDep
from service.errors import Forbidden, InvalidInput, NotAuthenticated, Unavailable
from service.oidc import sign_in
from service.oidc.client import Providers, SignInAttempt
from webui.auth import secure_cookies, signer_for
from webui.live import sessions_changed
from webui.pages.login import login_page, signed_in
from webui.rendering import safe_next

router = APIRouter()

ATTEMPT_COOKIE = "airlock_oidc"
ATTEMPT_SECONDS = 600
_PURPOSE = "oidc-attempt"
_ATTEMPT_FIELDS = set(SignInAttempt.__dataclass_fields__)


def _providers(request: Request) -> Providers:
    providers: Providers = request.app.state.oidc_providers
    return providers


def _redirect_uri(request: Request, state: StateDep, name: str) -> str:
    base = state.runtime.settings.public_url or str(request.base_url)
    return f"{base.rstrip('/')}/login/oidc/{name}/callback"


@router.get("/login/oidc/{name}")
async def start(name: str, request: Request, state: StateDep) -> Response:
    client = _providers(request).get(name)
    attempt = SignInAttempt.start(name, safe_next(request.query_params.get("next")))
    try:
        url = await client.authorization_url(attempt, _redirect_uri(request, state, name))
    except Unavailable as exc:
        return login_page(request, state, error=exc.message, username="", status=503)
    response = RedirectResponse(url, status_code=303)
    # SameSite=Lax, not Strict: the provider sends the browser back with a top-level GET from its own site.
    response.set_cookie(
        ATTEMPT_COOKIE,
        signer_for(state).seal(_PURPOSE, asdict(attempt), ATTEMPT_SECONDS),
        max_age=ATTEMPT_SECONDS,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(state.runtime.settings.public_url),
        path="/login/oidc",
    )
    return response


@router.get("/login/oidc/{name}/callback")
async def callback(name: str, request: Request, state: StateDep) -> Response:
    client = _providers(request).get(name)
    sealed = signer_for(state).unseal(_PURPOSE, request.cookies.get(ATTEMPT_COOKIE))
    attempt = SignInAttempt(**sealed) if sealed is not None and set(sealed) == _ATTEMPT_FIELDS else None
    answer = dict(request.query_params.items())
    try:
        user = await sign_in.finish(state.runtime, client, attempt, answer, _redirect_uri(request, state, name))
    except (InvalidInput, NotAuthenticated, Forbidden, Unavailable) as exc:
        response = login_page(request, state, error=exc.message, username="", status=exc.status_code, next_path="/")
    else:
        sessions_changed(request, user.username)  # a new role or new groups ended their other sessions
        assert attempt is not None
        response = signed_in(state, user, attempt.next_path)
    response.delete_cookie(ATTEMPT_COOKIE, path="/login/oidc")
    return response
