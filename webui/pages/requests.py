"""One request: its arguments, cost, rule, timeline and result, and the decisions (approve, approve and remember,
reject with a reason, edit and approve)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as FastPath
from fastapi.responses import JSONResponse, Response
from sqlmodel import Session

from service.api.deps import RowId, StateDep
from service.approvals import queries
from service.approvals import service as approvals
from service.approvals.reveal import reveal
from service.approvals.schemas import Remember, RequestDetail, Verdict
from service.approvals.view import ArgumentsView, decode_media, escape_invisible, patch_from_edit, value_at
from service.arguments import MAX_ARGUMENT_DEPTH, TOO_DEEP, nests_deeper_than
from service.durations import parse_duration
from service.edge import error_body
from service.errors import Conflict, InvalidInput, NotFound
from service.policy_versions.simulate import explain_cost
from webui.auth import Approver, CheckedForm, Viewer, WebUser, field
from webui.errors import wants_json
from webui.rendering import redirect_with_flash, render_html, safe_next
from webui.views import decided_via, image_blocks, timeline
from webui.work import approver_of, decide_from_web, in_session

router = APIRouter()
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
FOLD_CHARS = 600  # a longer value is folded behind "show all N characters", never cut


async def _detail_page(
    request: Request,
    state: StateDep,
    request_id: int,
    user: WebUser,
    *,
    edit_text: str | None = None,
    edit_error: str | None = None,
    revealed: dict[str, str] | None = None,
) -> Response:
    viewer = approver_of(user)

    def load(session: Session) -> tuple[RequestDetail, ArgumentsView, str, list[dict[str, str]], dict[str, Any] | None]:
        stored = approvals.get(session, request_id)
        policy = state.gateway.policy.current().policy
        view = approvals.arguments_view(stored, viewer)
        shown = approvals.shown_values(stored, view, stored.review_arguments)
        return (
            queries.detail(session, request_id, viewer),
            view,
            json.dumps(shown, indent=2, ensure_ascii=False),
            image_blocks(stored.result),
            explain_cost(policy, stored.tool, stored.review_arguments),
        )

    detail, view, shown_text, images, cost = await in_session(state, load)
    context = {
        "title": detail.public_id,
        "item": detail,
        "view": view,
        "fold_chars": FOLD_CHARS,
        "revealed": revealed or {},
        "timeline": timeline(detail),
        "decided_via": decided_via(detail),
        "cost": cost,
        "images": images,
        "edit_text": edit_text if edit_text is not None else shown_text,
        "edit_error": edit_error,
    }
    return render_html(request, "request.html", context, 400 if edit_error else 200)


@router.get("/requests/{request_id}")
async def request_page(request: Request, request_id: RowId, state: StateDep, user: Viewer) -> Response:
    return await _detail_page(request, state, request_id, user)


@router.post("/requests/{request_id}/reveal")
async def reveal_value(
    request: Request, request_id: RowId, form: CheckedForm, state: StateDep, user: Approver
) -> Response:
    """A masked value, shown on the page to a person who may decide; the audit log records it."""
    pointer = field(form, "pointer")
    value = await in_session(state, lambda s: reveal(s, request_id, approver_of(user), pointer))
    shown = escape_invisible(json.dumps(value, indent=2, ensure_ascii=False))
    return await _detail_page(request, state, request_id, user, revealed={pointer: shown})


@router.get("/requests/{request_id}/arguments/media")
async def argument_media(request_id: RowId, pointer: str, state: StateDep, user: Approver) -> Response:
    """An image among the arguments, for a person who may decide, served with its own type (never inlined)."""

    def load(session: Session) -> tuple[str, bytes] | None:
        stored = approvals.get(session, request_id)
        view = approvals.arguments_view(stored, approver_of(user))
        if not any(b.pointer == pointer and b.is_image for b in view.blobs):
            return None
        return decode_media(value_at(stored.review_arguments, pointer))

    media = await in_session(state, load)
    if media is None:
        raise NotFound("no image among the arguments you may see there")
    return Response(media[1], media_type=media[0], headers={"Cache-Control": "private, max-age=300"})


@router.get("/requests/{request_id}/images/{index}")
async def request_image(
    request_id: RowId, index: Annotated[int, FastPath(ge=0, le=10_000)], state: StateDep, user: Viewer
) -> Response:
    """An image of a stored result, decoded and served with its own type, so the page never inlines agent data."""
    blocks = await in_session(state, lambda s: image_blocks(approvals.get(s, request_id).result))
    if index < 0 or index >= len(blocks) or blocks[index]["mime_type"] not in IMAGE_TYPES:
        raise NotFound("no such image (results are kept for a limited time)")
    try:
        data = base64.b64decode(blocks[index]["data"], validate=True)
    except (binascii.Error, ValueError):
        raise NotFound("this image could not be decoded") from None
    return Response(data, media_type=blocks[index]["mime_type"], headers={"Cache-Control": "private, max-age=300"})


def _remember(form: Any) -> Remember | None:
    scope = field(form, "remember")
    if not scope:
        return None
    if scope not in ("arguments", "tool"):
        raise InvalidInput("remember the same arguments or the whole tool")
    try:
        duration = parse_duration(field(form, "duration") or "1h")
    except ValueError as exc:
        raise InvalidInput(f"remember for: {exc}") from None
    return Remember("arguments" if scope == "arguments" else "tool", duration)


def _answer(request: Request, form: Any, message: str, request_id: int) -> Response:
    if wants_json(request):
        return JSONResponse({"message": message, "request_id": request_id})
    return redirect_with_flash(safe_next(field(form, "next"), f"/requests/{request_id}"), message)


@router.post("/requests/{request_id}/approve")
async def approve(request: Request, request_id: RowId, form: CheckedForm, state: StateDep, user: Approver) -> Response:
    """Approve what the page showed: its arguments digest comes back in a hidden field, and an edit is sent as a
    patch of only the values changed relative to the full values the page showed."""
    digest = field(form, "arguments_digest")
    if not digest:
        raise InvalidInput("approve from the request's page, where every value is shown (no arguments digest)")
    patch = None
    edit_text = field(form, "arguments")
    if edit_text:
        try:
            parsed = json.loads(edit_text)
            too_deep = nests_deeper_than(parsed, MAX_ARGUMENT_DEPTH)  # checked before the diff below recurses into it
        except ValueError as exc:
            return await _detail_page(
                request, state, request_id, user, edit_text=edit_text, edit_error=f"not JSON: {exc}"
            )
        except RecursionError:  # deeper than Python's parser follows
            too_deep = True
        if too_deep:
            return await _detail_page(request, state, request_id, user, edit_text=edit_text, edit_error=TOO_DEEP)
        if not isinstance(parsed, dict):
            return await _detail_page(
                request, state, request_id, user, edit_text=edit_text, edit_error="the arguments must be a JSON object"
            )
        patch = await in_session(state, lambda s: _patch(s, request_id, user, parsed)) or None
    try:
        public = await decide_from_web(
            state,
            user,
            request_id,
            Verdict.APPROVE,
            reason=field(form, "comment") or None,
            patch=patch,
            remember=_remember(form),
            seen_digest=digest,
        )
    except Conflict as exc:
        return _already_decided(request, request_id, exc)
    except InvalidInput as exc:
        if patch is None or wants_json(request):
            raise
        return await _detail_page(request, state, request_id, user, edit_text=edit_text, edit_error=exc.message)
    edited = " with edited arguments" if patch is not None else ""
    return _answer(request, form, f"Approved {public.public_id}{edited}.", request_id)


@router.post("/requests/{request_id}/reject")
async def reject(request: Request, request_id: RowId, form: CheckedForm, state: StateDep, user: Approver) -> Response:
    try:
        public = await decide_from_web(state, user, request_id, Verdict.REJECT, reason=field(form, "reason"))
    except Conflict as exc:
        return _already_decided(request, request_id, exc)
    return _answer(request, form, f"Rejected {public.public_id}.", request_id)


def _patch(session: Session, request_id: int, user: WebUser, edited: dict[str, Any]) -> dict[str, Any]:
    stored = approvals.get(session, request_id)
    view = approvals.arguments_view(stored, approver_of(user))
    return patch_from_edit(approvals.shown_values(stored, view, stored.review_arguments), edited)


def _already_decided(request: Request, request_id: int, exc: Conflict) -> Response:
    """A late second decision (a double click, or Slack got there first) is news, not an error page."""
    if wants_json(request):
        return JSONResponse(error_body(exc.message), status_code=exc.status_code)
    return redirect_with_flash(f"/requests/{request_id}", exc.message)
