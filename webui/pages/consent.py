"""The OAuth consent page: a signed-in person lets an app (an MCP client) act as one of their grants, or refuses.
The rules are service/oauth/consent.py's; this page parses and renders."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from service.api.deps import StateDep
from service.config import OAuthConfig
from service.errors import NotFound
from service.oauth import consent as oauth
from service.oauth.provider import CONSENT_PATH
from service.oauth.schemas import Lifetimes
from service.users.models import Role
from webui.auth import CheckedForm, Viewer, field
from webui.rendering import CONTENT_SECURITY_POLICY, render_html
from webui.work import in_session

router = APIRouter()


def _configured(state: StateDep) -> tuple[OAuthConfig, str]:
    config = state.runtime.settings.oauth
    if config.issuer is None:
        raise NotFound("OAuth is not configured on this Airlock")
    return config, config.issuer


@router.get(CONSENT_PATH + "/{key}")
async def consent_page(key: str, request: Request, state: StateDep, user: Viewer) -> Response:
    config, _issuer = _configured(state)
    role = Role(config.grant_creator_role)
    now = state.runtime.clock.now()
    view = await in_session(state, lambda s: oauth.consent_view(s, state.runtime.hasher, key, user.user, role, now=now))
    response = render_html(request, "consent.html", {"title": "Allow an app", "view": view, "key": key})
    # The answer redirects to the app, and a browser holds a form's redirects to form-action; framing stays
    # refused (frame-ancestors 'none', X-Frame-Options: DENY) as on every page.
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY.replace(
        "form-action 'self'", f"form-action 'self' {view.redirect_origin}".rstrip()
    )
    return response


@router.post(CONSENT_PATH + "/{key}")
async def decide(key: str, form: CheckedForm, state: StateDep, user: Viewer) -> Response:
    config, issuer = _configured(state)
    hasher = state.runtime.hasher
    now = state.runtime.clock.now()
    if field(form, "decision") == "deny":
        target = await in_session(state, lambda s: oauth.deny(s, hasher, key, user.user, issuer=issuer, now=now))
    else:
        target = await in_session(
            state,
            lambda s: oauth.approve(
                s,
                hasher,
                key,
                user.user,
                grant_name=field(form, "grant") or None,
                new_grant_name=field(form, "new_grant") or None,
                creator_role=Role(config.grant_creator_role),
                issuer=issuer,
                lifetimes=Lifetimes.of(config),
                now=now,
            ),
        )
    return RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
