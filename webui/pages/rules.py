"""The rules: the policy in force rendered readably, the editor (checked as you type), simulate a call, and the
version history with diffs and rollback. Every change needs a comment."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlmodel import Session

from service.api.deps import RowId, StateDep
from service.audit.schemas import user_actor
from service.errors import InvalidInput, NotFound, PolicyInvalid, Problem
from service.grants import service as grants
from service.policy import EstimatorRegistry, load_policy
from service.policy_versions import service as versions
from service.policy_versions.simulate import Simulation, simulate_call
from webui.auth import Admin, CheckedForm, Viewer, field
from webui.rendering import redirect_with_flash, render_html
from webui.rules_view import describe
from webui.work import in_session

router = APIRouter()
WEB_ORIGIN = "web"


def _text(value: object) -> str:
    """A textarea's text: browsers send its line ends as CRLF, and the stored versions (and their diffs) use LF."""
    return str(value or "").replace("\r\n", "\n") if isinstance(value, str) else ""


def _problems(source: str, registry: EstimatorRegistry) -> list[Problem]:
    try:
        load_policy(source, registry)
    except PolicyInvalid as exc:
        return exc.problems
    return []


async def _rules_page(
    request: Request,
    state: StateDep,
    *,
    source: str | None = None,
    comment: str = "",
    problems: list[Problem] | None = None,
    simulation: Simulation | None = None,
    simulate_form: dict[str, str] | None = None,
    simulate_error: str | None = None,
    status: int = 200,
) -> Response:
    runtime = state.runtime

    def load(session: Session) -> dict[str, Any]:
        compiled, current = versions.compiled_current(session, runtime.registry, runtime.settings.policy)
        return {
            "compiled": compiled,
            "current": current,
            "history": versions.history(session, 50),
            "grants": [g.name for g in grants.list_grants(session)],
        }

    loaded = await in_session(state, load)
    current = loaded["current"]
    context = {
        "title": "Rules",
        "view": describe(loaded["compiled"].document),
        "current": current,
        "history": loaded["history"],
        "grants": loaded["grants"],
        "tools": sorted(t.name for t in state.gateway.pool.catalog.tools_for(state.gateway.pool.names())),
        "source": source if source is not None else (current.source if current else ""),
        "comment": comment,
        "problems": problems or [],
        "simulation": simulation,
        "simulate_form": simulate_form or {},
        "simulate_error": simulate_error,
    }
    return render_html(request, "rules.html", context, status)


@router.get("/rules")
async def rules_page(request: Request, state: StateDep, user: Viewer) -> Response:
    return await _rules_page(request, state)


@router.post("/rules/check")
async def check(form: CheckedForm, state: StateDep, user: Viewer) -> Response:
    """The editor's validation as you type: every problem with its pointer and line (the server's `policy check`)."""
    problems = _problems(_text(form.get("source")), state.runtime.registry)
    body = [{"path": p.path or "/", "line": p.line, "message": p.message} for p in problems]
    return JSONResponse({"ok": not problems, "problems": body})


@router.post("/rules")
async def apply(request: Request, form: CheckedForm, state: StateDep, user: Admin) -> Response:
    source = _text(form.get("source"))
    comment = field(form, "comment")
    registry = state.runtime.registry
    try:
        version = await in_session(
            state,
            lambda s: versions.apply(
                s, source, registry, origin=WEB_ORIGIN, actor=user_actor(user.username), comment=comment
            ),
        )
    except PolicyInvalid as exc:
        return await _rules_page(request, state, source=source, comment=comment, problems=exc.problems, status=422)
    except InvalidInput as exc:
        problem = Problem("", exc.message)
        return await _rules_page(request, state, source=source, comment=comment, problems=[problem], status=400)
    return redirect_with_flash("/rules", f"Policy version {version.id} is now in force.")


@router.get("/rules/simulate")
async def simulate(request: Request, state: StateDep, user: Viewer) -> Response:
    params = {name: str(request.query_params.get(name) or "") for name in ("grant", "tool", "arguments")}
    try:
        arguments = json.loads(params["arguments"] or "{}")
        if not isinstance(arguments, dict):
            raise InvalidInput("the arguments must be a JSON object")
        runtime = state.runtime
        simulation = await in_session(
            state,
            lambda s: simulate_call(
                s,
                runtime.registry,
                runtime.settings.policy,
                runtime.counters,
                grant=params["grant"],
                tool=params["tool"],
                arguments=arguments,
            ),
        )
    except ValueError as exc:
        return await _rules_page(request, state, simulate_form=params, simulate_error=f"arguments: not JSON ({exc})")
    except (InvalidInput, NotFound) as exc:
        return await _rules_page(request, state, simulate_form=params, simulate_error=exc.message)
    return await _rules_page(request, state, simulation=simulation, simulate_form=params)


@router.get("/rules/versions/{version_id}")
async def version_page(request: Request, version_id: RowId, state: StateDep, user: Viewer) -> Response:
    def load(session: Session) -> dict[str, Any]:
        version = versions.get(session, version_id)
        previous = next((v for v in versions.history(session, 1000) if v.id is not None and v.id < version_id), None)
        current = versions.current(session)
        return {"version": version, "previous": previous, "current": current}

    loaded = await in_session(state, load)
    version, previous = loaded["version"], loaded["previous"]
    diff = versions.diff(
        previous.source if previous else "",
        version.source,
        old_name=f"version {previous.id}" if previous else "nothing",
        new_name=f"version {version.id}",
    )
    context = {"title": f"Policy version {version.id}", **loaded, "diff_lines": diff.splitlines()}
    return render_html(request, "version.html", context)


@router.post("/rules/versions/{version_id}/rollback")
async def rollback(version_id: RowId, form: CheckedForm, state: StateDep, user: Admin) -> Response:
    comment = field(form, "comment")
    registry = state.runtime.registry
    version = await in_session(
        state,
        lambda s: versions.rollback(s, version_id, registry, actor=user_actor(user.username), comment=comment),
    )
    return redirect_with_flash("/rules", f"Rolled back: version {version.id} (a copy of {version_id}) is now in force.")
