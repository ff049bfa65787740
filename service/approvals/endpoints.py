"""REST: list, show, approve and reject held requests (users' API tokens). Thin: parse, call the service, answer."""

from __future__ import annotations

from typing import Any, Literal

import anyio
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from service.api.deps import CurrentUser, RowId, StateDep
from service.approvals import queries
from service.approvals.reveal import reveal
from service.approvals.schemas import (
    Approver,
    Remember,
    RequestDetail,
    RequestPage,
    RequestPublic,
    Verdict,
)
from service.db.engine import reading, unit_of_work
from service.durations import parse_duration
from service.errors import InvalidInput
from service.users.models import User

router = APIRouter(prefix="/api/requests", tags=["requests"])


class StrictBody(BaseModel):
    """A decision's body: a field we do not know (say `arguments` instead of `patch`) is refused, never ignored, so
    nobody approves the original while believing they sent an edit."""

    model_config = ConfigDict(extra="forbid")


class RememberBody(StrictBody):
    scope: Literal["arguments", "tool"] = "arguments"
    duration: str = Field("1h", description="How long, such as 1h or 30m (at most 30 days).")


class ApproveBody(StrictBody):
    arguments_digest: str = Field(
        min_length=64,
        max_length=64,
        pattern="^[0-9a-f]{64}$",
        description="The arguments_digest of the request as you read it: the approval is refused (409) when the "
        "arguments under review are no longer those.",
    )
    comment: str | None = Field(None, max_length=2000)
    patch: dict[str, Any] | None = Field(
        None, description="An edit: a JSON merge patch (RFC 7396) with only the values you changed."
    )
    remember: RememberBody | None = None


class RevealBody(StrictBody):
    pointer: str = Field(min_length=1, max_length=2000, description="A JSON pointer listed in the request's masked.")


class Revealed(BaseModel):
    pointer: str
    value: Any


class RejectBody(StrictBody):
    reason: str = Field(min_length=1, max_length=2000)


@router.get("", response_model=RequestPage)
async def list_requests(
    state: StateDep,
    user: CurrentUser,
    status: str | None = Query(
        None, description="pending, approved, executing, succeeded, failed, rejected, expired, cancelled"
    ),
    tool: str | None = None,
    grant: str | None = None,
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = None,
) -> RequestPage:
    def load() -> RequestPage:
        with reading(state.runtime.engine) as session:
            return queries.page(
                session,
                status=status,
                tool=tool,
                grant=grant,
                limit=limit,
                cursor=cursor,
                viewer=Approver.of_user(user, "api"),
            )

    return await anyio.to_thread.run_sync(load)


@router.get("/{request_id}", response_model=RequestDetail)
async def show_request(request_id: RowId, state: StateDep, user: CurrentUser) -> RequestDetail:
    def load() -> RequestDetail:
        with reading(state.runtime.engine) as session:
            return queries.detail(session, request_id, Approver.of_user(user, "api"))

    return await anyio.to_thread.run_sync(load)


@router.post("/{request_id}/reveal", response_model=Revealed)
async def reveal_value(request_id: RowId, body: RevealBody, state: StateDep, user: CurrentUser) -> Revealed:
    """A masked value in full, for a person who may decide the request; the audit log records the reveal."""

    def run() -> Revealed:
        with unit_of_work(state.runtime.engine) as session:
            return Revealed(
                pointer=body.pointer, value=reveal(session, request_id, Approver.of_user(user, "api"), body.pointer)
            )

    return await anyio.to_thread.run_sync(run)


@router.post("/{request_id}/approve", response_model=RequestPublic)
async def approve(request_id: RowId, body: ApproveBody, state: StateDep, user: CurrentUser) -> RequestPublic:
    remember = None
    if body.remember is not None:
        try:
            remember = Remember(body.remember.scope, parse_duration(body.remember.duration))
        except ValueError as exc:
            raise InvalidInput(f"remember.duration: {exc}") from None
    return await _decide(
        state, user, request_id, Verdict.APPROVE, body.comment, body.patch, remember, body.arguments_digest
    )


@router.post("/{request_id}/reject", response_model=RequestPublic)
async def reject(request_id: RowId, body: RejectBody, state: StateDep, user: CurrentUser) -> RequestPublic:
    return await _decide(state, user, request_id, Verdict.REJECT, body.reason, None, None, None)


async def _decide(
    state: StateDep,
    user: User,
    request_id: int,
    verdict: Verdict,
    reason: str | None,
    patch: dict[str, Any] | None,
    remember: Remember | None,
    digest: str | None,
) -> RequestPublic:
    approver = Approver.of_user(user, "api")
    public: RequestPublic = await state.verdicts.submit(
        request_id,
        approver,
        verdict,
        queries.viewed_by(approver),
        reason=reason,
        patch=patch,
        remember=remember,
        seen_digest=digest,
    )
    return public
