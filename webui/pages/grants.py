"""Grants (agents' credentials) and standing approvals: list, create (the token shown once), labels, revoke."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import Session

from service.api.deps import RowId, StateDep
from service.approvals import standing, stats
from service.audit import queries as audit_queries
from service.audit.schemas import user_actor
from service.grants import service as grants
from service.grants.client_configs import client_configs
from service.oauth import consent as oauth
from service.users import service as users
from service.users.models import User
from webui.auth import Admin, Approver, CheckedForm, Viewer, field
from webui.rendering import redirect_with_flash, render_html
from webui.views import usage_rows
from webui.work import in_session

router = APIRouter()
USAGE_DAYS = 7


def _labels(text: str) -> dict[str, str]:
    pairs = [p.strip() for p in text.replace("\n", ",").split(",") if p.strip()]
    return grants.parse_labels(pairs)


async def _grants_page(
    request: Request, state: StateDep, viewer: User, *, created: dict[str, Any] | None = None
) -> Response:
    since = datetime.now(UTC) - timedelta(days=USAGE_DAYS - 1)
    since = since.replace(hour=0, minute=0, second=0, microsecond=0)
    show_revoked = request.query_params.get("revoked") == "1"

    def load(session: Session) -> dict[str, Any]:
        listed = grants.list_grants(session, include_revoked=show_revoked)
        return {
            "grants": listed,
            "usage": audit_queries.usage_by_grant(session, since),
            "ran": stats.ran_cost_by_grant_day(session, since),
            "last": audit_queries.last_calls(session, [g.id for g in listed]),
            "people": [u.username for u in users.list_users(session)],
            "consents": oauth.list_consents(session, viewer, state.runtime.clock.now()),
        }

    loaded = await in_session(state, load)
    rows = usage_rows(loaded["grants"], loaded["usage"], loaded["ran"], loaded["last"], since, USAGE_DAYS)
    context = {
        "title": "Grants",
        "rows": rows,
        "people": loaded["people"],
        "consents": loaded["consents"],
        "upstreams": state.gateway.pool.names(),
        "created": created,
        "show_revoked": show_revoked,
    }
    return render_html(request, "grants.html", context)


@router.get("/grants")
async def grants_page(request: Request, state: StateDep, user: Viewer) -> Response:
    return await _grants_page(request, state, user.user)


@router.post("/grants")
async def create(request: Request, form: CheckedForm, state: StateDep, user: Admin) -> Response:
    name = field(form, "name")
    upstreams = [v for v in form.getlist("upstream") if isinstance(v, str) and v]
    known = state.gateway.pool.names()

    def run(session: Session) -> str:
        created = grants.create_grant(
            session,
            state.runtime.hasher,
            name=name,
            actor=user_actor(user.username),
            owner=field(form, "owner") or None,
            labels=_labels(field(form, "labels")),
            upstreams=upstreams or None,
            known_upstreams=known,
        )
        return created.token

    token = await in_session(state, run)
    base = (state.runtime.settings.public_url or str(request.base_url)).rstrip("/")
    shown = {"name": name, "token": token, "configs": client_configs(f"{base}/mcp", token)}
    return await _grants_page(request, state, user.user, created=shown)


@router.post("/grants/{name}/labels")
async def set_labels(name: str, form: CheckedForm, state: StateDep, user: Admin) -> Response:
    labels = _labels(field(form, "labels"))
    # Committed, the change drops this process's cached lookups of the grant (service/caches.py).
    await in_session(state, lambda s: grants.set_labels(s, name, labels, actor=user_actor(user.username)))
    shown = ", ".join(f"{k}={v}" for k, v in labels.items()) or "none"
    return redirect_with_flash("/grants", f"Grant {name} now has the labels: {shown}.")


@router.post("/grants/{name}/revoke")
async def revoke(name: str, form: CheckedForm, state: StateDep, user: Admin) -> Response:
    cancellation = await in_session(state, lambda s: grants.revoke_grant(s, name, actor=user_actor(user.username)))
    cancellation.settle(state.runtime.counters, state.bus)  # committed: budgets back, held calls and pages told
    count = len(cancellation.cancelled)
    cancelled = f" {count} call(s) that had not run were cancelled." if count else ""
    return redirect_with_flash("/grants", f"Grant {name} is revoked: its token no longer works.{cancelled}")


@router.post("/grants/consents/{consent_id}/revoke")
async def revoke_consent(consent_id: RowId, form: CheckedForm, state: StateDep, user: Viewer) -> Response:
    # Committed, the revocation drops every process's cached token lookups (service/caches.py).
    now = state.runtime.clock.now()
    name = await in_session(state, lambda s: oauth.revoke_consent(s, consent_id, user.user, now))
    return redirect_with_flash("/grants", f"{name} no longer acts for that grant: its tokens stopped working.")


@router.get("/approvals/standing")
async def standing_page(request: Request, state: StateDep, user: Viewer) -> Response:
    def load(session: Session) -> dict[str, Any]:
        names = {g.id: g.name for g in grants.list_grants(session, include_revoked=True)}
        return {"items": standing.list_standing(session), "names": names}

    loaded = await in_session(state, load)
    return render_html(request, "standing.html", {"title": "Standing approvals", **loaded})


@router.post("/approvals/standing/{standing_id}/revoke")
async def revoke_standing(standing_id: RowId, form: CheckedForm, state: StateDep, user: Approver) -> Response:
    await in_session(state, lambda s: standing.revoke_standing(s, standing_id, actor=user_actor(user.username)))
    return redirect_with_flash("/approvals/standing", f"Standing approval {standing_id} is revoked.")
