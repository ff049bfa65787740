"""The queue's table. Its state machine and service arrive with the approvals issue."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Column, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

import service.db.base  # noqa: F401
from service.arguments import arguments_digest
from service.db.types import BIG_ID, StrEnumType, UTCDateTime, utcnow


class RequestStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    EXECUTING = "executing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class ToolCallRequest(SQLModel, table=True):
    __tablename__ = "tool_call_requests"
    __table_args__ = (
        Index("ix_tool_call_requests_status_deadline", "status", "deadline"),
        Index("ix_tool_call_requests_grant_status", "grant_id", "status"),
        Index("ix_tool_call_requests_binding", "grant_id", "tool", "arguments_digest"),
        Index("ix_tool_call_requests_status_next_reminder", "status", "next_reminder_at"),
    )

    id: int | None = Field(default=None, sa_column=Column(BIG_ID, primary_key=True, autoincrement=True))
    status: RequestStatus = Field(sa_column=Column(StrEnumType(RequestStatus), nullable=False))
    grant_id: int = Field(foreign_key="grants.id")
    upstream: str = Field(sa_column=Column(String(64), nullable=False))
    tool: str = Field(sa_column=Column(String(255), nullable=False))
    upstream_tool: str = Field(default="", sa_column=Column(String(255), nullable=False, server_default=""))
    """The tool's name at the upstream (the agent sees it under the upstream's prefix)."""
    arguments: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    arguments_digest: str = Field(sa_column=Column(String(64), nullable=False))
    edited_arguments: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    policy_version_id: int | None = Field(default=None, foreign_key="policy_versions.id")
    rule: str = Field(sa_column=Column(Text, nullable=False))
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    cost_micros: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    """The estimated cost of the call under review (of the latest edit, once edited)."""
    original_cost_micros: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    """The agent's original call's estimated cost, kept from the first edit on."""
    approval: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    reservation: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    hold_mode: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    requester_gone: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, default=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    deadline: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    decided_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    decided_by: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    decision_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    result_expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    delivered_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    reminders_sent: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    next_reminder_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    """When the next reminder (50%, then 90% of the timeout) is due; None when none is left. Persisted so the
    sweeper finds due reminders with one indexed query instead of reading every pending request."""

    @property
    def public_id(self) -> str:
        return f"R-{self.id}"

    @property
    def review_arguments(self) -> dict[str, Any]:
        """What an approval now releases: the latest edit when there is one, else the agent's original."""
        return self.edited_arguments if self.edited_arguments is not None else self.arguments

    @property
    def review_digest(self) -> str:
        """The digest a decision must carry: that of `review_arguments`, as the deciding person's view showed them."""
        return arguments_digest(self.review_arguments)


class ApprovalVote(SQLModel, table=True):
    """One person's approval of a request, bound to the arguments digest it approved. A quorum of N needs N distinct
    approvers whose votes carry the digest that runs; an edit moves that digest, so older votes stop counting."""

    __tablename__ = "approval_votes"
    __table_args__ = (UniqueConstraint("request_id", "approver", name="uq_approval_votes_request_id_approver"),)

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(
        sa_column=Column(BIG_ID, ForeignKey("tool_call_requests.id", ondelete="CASCADE"), nullable=False)
    )
    approver: str = Field(sa_column=Column(String(64), nullable=False))
    channel: str = Field(sa_column=Column(String(16), nullable=False))
    arguments_digest: str = Field(default="", sa_column=Column(String(64), nullable=False, server_default=""))
    """What this vote approved (votes from before digests were recorded carry "" and never count)."""
    remember_scope: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    """"arguments" or "tool" when this approver asked to remember the call; None when not."""
    remember_seconds: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class StandingApproval(SQLModel, table=True):
    """ "Approve and remember": later calls of the same grant and tool (and, when set, the same arguments) pass."""

    __tablename__ = "standing_approvals"
    __table_args__ = (Index("ix_standing_approvals_grant_tool", "grant_id", "tool"),)

    id: int | None = Field(default=None, primary_key=True)
    grant_id: int = Field(foreign_key="grants.id", ondelete="CASCADE")
    tool: str = Field(sa_column=Column(String(255), nullable=False))
    arguments_digest: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    created_by: str = Field(sa_column=Column(String(64), nullable=False))
    request_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    revoked_by: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
