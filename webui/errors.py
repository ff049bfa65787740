"""Errors as people see them: a friendly page (or a redirect to sign in), never a traceback.

The REST API under /api keeps its JSON answers; everything else is the web UI's.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.api.deps import render_error
from service.edge import error_body
from service.errors import AirlockError, NotAuthenticated
from webui.rendering import render_html

log = logging.getLogger(__name__)

_TITLES = {
    400: "That did not work",
    401: "Please sign in",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    409: "Already decided",
    413: "Too large",
    422: "That did not work",
    503: "Airlock cannot reach a store it needs",
}


def _is_api(request: Request) -> bool:
    """Machine endpoints (the REST API, Slack's callbacks, probes) keep JSON errors; pages get pages."""
    path = request.url.path
    return path.startswith(("/api/", "/slack/")) or path == "/api" or path in ("/healthz", "/readyz", "/metrics")


def wants_json(request: Request) -> bool:
    """The queue's own scripts post with Accept: application/json and show the answer in place."""
    return "application/json" in request.headers.get("accept", "")


def error_page(request: Request, status_code: int, message: str) -> Response:
    if wants_json(request):
        return JSONResponse(error_body(message), status_code=status_code)
    title = _TITLES.get(status_code, "Something went wrong")
    return render_html(request, "error.html", {"title": title, "message": message, "status": status_code}, status_code)


async def airlock_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AirlockError)
    if _is_api(request):
        return await render_error(request, exc)
    if isinstance(exc, NotAuthenticated) and request.method == "GET" and not wants_json(request):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    return error_page(request, exc.status_code, exc.message)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if _is_api(request):
        return await http_exception_handler(request, exc)
    messages = {404: "There is no page at this address.", 405: "This address does not take that kind of request."}
    return error_page(request, exc.status_code, messages.get(exc.status_code, str(exc.detail)))


async def validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if _is_api(request):
        return await request_validation_exception_handler(request, exc)
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors())
    return error_page(request, 400, f"The request was not understood ({problems}).")


async def unexpected_error(request: Request, exc: Exception) -> Response:
    """A bug: logged with its traceback (that is what a traceback in the log means), shown as a plain apology."""
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    if _is_api(request):
        return JSONResponse(error_body("internal error"), status_code=500)
    return error_page(request, 500, "Airlock hit an unexpected error. It has been logged; please try again.")
