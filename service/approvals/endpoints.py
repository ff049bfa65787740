"""REST: list, show, approve and reject held requests (users' API tokens). Thin: parse, call the service, answer."""

from __future__ import annotations

from typing import Any, Literal

import anyio
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from service.api.deps import CurrentUser, RowId, StateDep
from service.approvals import queries
from service.approvals.schemas import (
    Approver,
    Remember,
    RequestDetail,
    RequestPage,
    RequestPublic,
    Verdict,
)
from service.db.engine import reading
from service.durations import parse_duration
from service.errors import InvalidInput
from service.users.models import User

router = APIRouter(prefix="/api/requests", tags=["requests"])


class RememberBody(BaseModel):
    scope: Literal["arguments", "tool"] = "arguments"
    duration: str = Field("1h", description="How long, such as 1h or 30m (at most 30 days).")


class ApproveBody(BaseModel):
    comment: str | None = Field(None, max_length=2000)
    arguments: dict[str, Any] | None = None
    remember: RememberBody | None = None


class RejectBody(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


def approver_for(user: User, channel: str = "api") -> Approver:
    return Approver(user.username, user.role, channel, slack_user_id=user.slack_user_id)


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
            return queries.page(session, status=status, tool=tool, grant=grant, limit=limit, cursor=cursor)

    return await anyio.to_thread.run_sync(load)


@router.get("/{request_id}", response_model=RequestDetail)
async def show_request(request_id: RowId, state: StateDep, user: CurrentUser) -> RequestDetail:
    def load() -> RequestDetail:
        with reading(state.runtime.engine) as session:
            return queries.detail(session, request_id)

    return await anyio.to_thread.run_sync(load)


@router.post("/{request_id}/approve", response_model=RequestPublic)
async def approve(request_id: RowId, body: ApproveBody, state: StateDep, user: CurrentUser) -> RequestPublic:
    remember = None
    if body.remember is not None:
        try:
            remember = Remember(body.remember.scope, parse_duration(body.remember.duration))
        except ValueError as exc:
            raise InvalidInput(f"remember.duration: {exc}") from None
    return await _decide(state, user, request_id, Verdict.APPROVE, body.comment, body.arguments, remember)


@router.post("/{request_id}/reject", response_model=RequestPublic)
async def reject(request_id: RowId, body: RejectBody, state: StateDep, user: CurrentUser) -> RequestPublic:
    return await _decide(state, user, request_id, Verdict.REJECT, body.reason, None, None)


async def _decide(
    state: StateDep,
    user: User,
    request_id: int,
    verdict: Verdict,
    reason: str | None,
    arguments: dict[str, Any] | None,
    remember: Remember | None,
) -> RequestPublic:
    public: RequestPublic = await state.decisions.decide(
        request_id,
        approver_for(user),
        verdict,
        queries.public,
        reason=reason,
        patch=arguments,
        remember=remember,
    )
    return public
