"""POST /slack/interactions and /slack/events. Thin: verify the signature on the raw body, parse, hand over, ack."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from service.api.deps import StateDep
from service.edge import read_at_most
from service.errors import InvalidInput, NotAuthenticated, NotFound, TooLarge
from service.state import AppState

router = APIRouter(prefix="/slack", tags=["slack"], include_in_schema=False)

MAX_BODY_BYTES = 1024 * 1024
TOO_LARGE = "a Slack request is at most 1 MiB"


async def _verified_body(request: Request, state: AppState) -> tuple[Any, bytes]:
    slack = getattr(state, "slack", None)
    if slack is None or slack.verifier is None:
        raise NotFound("Slack over HTTP is not configured here (slack.bot_token and slack.signing_secret)")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isascii() or not declared.isdigit()):
        raise InvalidInput("Content-Length must be a number")
    if declared is not None and (len(declared) > 12 or int(declared) > MAX_BODY_BYTES):
        raise TooLarge(TOO_LARGE)
    body = await read_at_most(request.stream(), MAX_BODY_BYTES, too_large=TOO_LARGE)
    if not slack.verifier.is_from_slack(body, request.headers):
        raise NotAuthenticated("not signed by Slack, or signed too long ago")
    return slack, body


@router.post("/interactions")
async def interactions(request: Request, state: StateDep) -> Response:
    slack, body = await _verified_body(request, state)
    raw = parse_qs(body.decode("utf-8")).get("payload", [""])[0]  # the verifier refused a body that is not UTF-8
    try:
        payload = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        raise InvalidInput("the form field 'payload' must hold JSON") from None
    if not isinstance(payload, dict):
        raise InvalidInput("the form field 'payload' must hold a JSON object")
    ack = await slack.handle_interaction(payload)
    return JSONResponse(ack) if ack else Response(status_code=200)


@router.post("/events")
async def events(request: Request, state: StateDep) -> Response:
    _, body = await _verified_body(request, state)
    try:
        event = json.loads(body)
    except (json.JSONDecodeError, RecursionError):
        raise InvalidInput("the body must be JSON") from None
    if isinstance(event, dict) and event.get("type") == "url_verification":
        return JSONResponse({"challenge": str(event.get("challenge", ""))})
    return Response(status_code=200)  # Airlock subscribes to no events; acknowledge anything else
