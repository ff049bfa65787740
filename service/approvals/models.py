"""The queue's table. Its state machine and service arrive with the approvals issue."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Column, Index, String, Text
from sqlmodel import Field, SQLModel

import service.db.base  # noqa: F401
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
    )

    id: int | None = Field(default=None, sa_column=Column(BIG_ID, primary_key=True, autoincrement=True))
    status: RequestStatus = Field(sa_column=Column(StrEnumType(RequestStatus), nullable=False))
    grant_id: int = Field(foreign_key="grants.id")
    upstream: str = Field(sa_column=Column(String(64), nullable=False))
    tool: str = Field(sa_column=Column(String(255), nullable=False))
    arguments: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    arguments_digest: str = Field(sa_column=Column(String(64), nullable=False))
    edited_arguments: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    policy_version_id: int | None = Field(default=None, foreign_key="policy_versions.id")
    rule: str = Field(sa_column=Column(Text, nullable=False))
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    cost_micros: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
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
