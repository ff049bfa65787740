from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from service.approvals.models import ToolCallRequest
from service.users.models import Role, User


class Verdict(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


@dataclass(frozen=True)
class Approver:
    """Who is deciding, and from where (web, slack, api, cli)."""

    username: str
    role: Role
    channel: str
    slack_user_id: str | None = None
    slack_groups: frozenset[str] = frozenset()

    @classmethod
    def of_user(
        cls,
        user: User,
        channel: str,
        *,
        slack_user_id: str | None = None,
        slack_groups: frozenset[str] = frozenset(),
    ) -> Approver:
        """The one way to make an approver of a stored user. `slack_user_id` is the clicking Slack user's id when
        the channel knows it (a user matched by e-mail has none stored); otherwise the user's own."""
        return cls(
            user.username,
            user.role,
            channel,
            slack_user_id=slack_user_id or user.slack_user_id,
            slack_groups=slack_groups,
        )


@dataclass(frozen=True)
class Remember:
    """ "Approve and remember": the same arguments, or any arguments of the same tool, for a while."""

    scope: Literal["arguments", "tool"]
    duration: timedelta


@dataclass
class ApprovalEvent:
    """What subscribers hear: created, reminder, requester_gone, decided, expired, cancelled, executed."""

    kind: str
    request_id: int
    status: str
    detail: dict[str, Any] = field(default_factory=dict)
    snapshot: ToolCallRequest | None = None
    """The request as committed by the change, when the publisher has it (read-only for subscribers)."""
    origin: str | None = None
    """None for a change made in this process; else the replica that made it (heard through the database). A
    channel that acts once per event (Slack) leaves those to the replica where they happened."""


class BlobPublic(BaseModel):
    pointer: str
    media_type: str
    size: int
    sha256: str


class RequestPublic(BaseModel):
    id: int
    public_id: str
    status: str
    tool: str
    upstream: str
    grant: str
    cost_usd: float | None
    arguments: dict[str, Any]
    """For a person who may decide: the exact values, declared secrets replaced by the masked marker; for anyone
    else, the logged view."""
    arguments_view: Literal["full", "logged"] = "logged"
    arguments_digest: str = Field(description="The digest of the arguments under review; approve with it.")
    masked: list[str] = Field(default_factory=list, description="JSON pointers of masked values (reveal them).")
    blobs: list[BlobPublic] = Field(default_factory=list)
    rule: str
    reason: str | None
    created_at: datetime
    deadline: datetime
    requester_gone: bool
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_reason: str | None = None


class RequestDetail(RequestPublic):
    approvals: list[dict[str, Any]] = Field(default_factory=list)
    events: list[dict[str, Any]] = Field(default_factory=list)
    result: dict[str, Any] | None = None
    edited_arguments: dict[str, Any] | None = None


class RequestPage(BaseModel):
    items: list[RequestPublic]
    next_cursor: str | None


class StandingPublic(BaseModel):
    id: int
    grant_id: int
    tool: str
    arguments_digest: str | None
    created_by: str
    created_at: datetime
    expires_at: datetime
