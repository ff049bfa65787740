"""The live queue (home): pending requests, newest first, rejected in place one by one or in a batch; each row opens
its request's page, where every value is shown and approving is done.

The page is rendered whole on first load; afterwards its script fetches single rows (or all of them, after a
reconnect) from here whenever the WebSocket says a request changed.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from service.api.deps import RowId, StateDep
from service.approvals import queries
from service.approvals import service as approvals
from service.approvals.schemas import RequestPublic, Verdict
from service.arguments import parse_request_id
from service.errors import AirlockError, InvalidInput
from webui.auth import Approver, CheckedForm, Viewer, field
from webui.errors import wants_json
from webui.rendering import redirect_with_flash, render_fragment, render_html
from webui.work import decide_from_web, in_session

router = APIRouter()
QUEUE_LIMIT = 200


async def pending(state: StateDep) -> list[RequestPublic]:
    page = await in_session(
        state, lambda s: queries.page(s, status="pending", tool=None, grant=None, limit=QUEUE_LIMIT, cursor=None)
    )
    return page.items


@router.get("/")
async def queue_page(request: Request, state: StateDep, user: Viewer) -> Response:
    items = await pending(state)
    return render_html(request, "queue.html", {"items": items, "title": "Queue"})


@router.get("/queue/rows")
async def queue_rows(state: StateDep, user: Viewer) -> Response:
    items = await pending(state)
    html = render_fragment("_queue_rows.html", {"items": items, "user": user, "csrf_token": user.csrf_token})
    return HTMLResponse(html, headers={"Cache-Control": "no-store", "X-Queue-Count": str(len(items))})


@router.get("/queue/rows/{request_id}")
async def queue_row(request_id: RowId, state: StateDep, user: Viewer) -> Response:
    """The row of one request while it is pending; 204 once it has left the queue."""
    item = await in_session(state, lambda s: queries.public(s, approvals.get(s, request_id)))
    if item.status != "pending":
        return Response(status_code=204)
    html = render_fragment("_queue_row.html", {"item": item, "user": user, "csrf_token": user.csrf_token})
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@router.post("/queue/batch")
async def batch(request: Request, form: CheckedForm, state: StateDep, user: Approver) -> Response:
    """Reject the checked requests; each one goes through decide() on its own."""
    action = field(form, "action")
    if action == "approve":
        # A batch shows each request's arguments cut short: approving is done where every value is shown.
        raise InvalidInput("approve each request from its own page, where every argument is shown in full")
    if action != "reject":
        raise InvalidInput("choose reject")
    ticked = form.getlist("request_id")
    ids = [i for i in (parse_request_id(v) for v in ticked) if i is not None]
    if len(ids) != len(ticked):
        raise InvalidInput("the form named a request that does not exist")  # a forged or stale form, not a click
    if not ids:
        raise InvalidInput("tick at least one request")
    reason = field(form, "reason") or None
    if action == "reject" and not reason:
        raise InvalidInput("say why: a rejection needs a reason, which the agent reads")
    done: list[str] = []
    refused: list[str] = []
    for request_id in ids:
        try:
            await decide_from_web(state, user, request_id, Verdict(action), reason=reason)
            done.append(f"R-{request_id}")
        except AirlockError as exc:
            refused.append(exc.message)
    verb = "approved" if action == "approve" else "rejected"
    message = f"{verb.capitalize()} {', '.join(done)}." if done else f"Nothing {verb}."
    if refused:
        message += " " + " ".join(refused)
    if wants_json(request):
        return JSONResponse({"message": message, "done": done, "refused": refused})
    return redirect_with_flash("/", message)
