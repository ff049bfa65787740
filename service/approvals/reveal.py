"""Revealing a masked value to a person who may decide the request: the one way to see a declared secret, and an
audit event every time."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from service.approvals.deciders import decider_refusal
from service.approvals.records import request_event
from service.approvals.schemas import Approver
from service.approvals.service import arguments_view, get
from service.approvals.view import value_at
from service.audit.schemas import user_actor
from service.errors import Forbidden, InvalidInput


def reveal(session: Session, request_id: int, viewer: Approver, pointer: str) -> Any:
    """The exact value at `pointer` of the arguments under review, which the view masks; recorded in the audit log
    (who, which pointer, from which channel; never the value)."""
    request = get(session, request_id)
    refusal = decider_refusal(request, viewer)
    if refusal is not None:
        raise Forbidden(refusal)
    if pointer not in arguments_view(request, viewer).masked:
        raise InvalidInput(f"{pointer!r} is not a masked value of {request.public_id}; every other value is shown")
    value = value_at(request.review_arguments, pointer)
    request_event(
        session,
        request,
        user_actor(viewer.username),
        "request.revealed",
        "revealed",
        None,
        {"pointer": pointer, "channel": viewer.channel},
    )
    return value
