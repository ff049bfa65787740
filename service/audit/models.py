from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

import service.db.base  # noqa: F401
from service.db.types import BIG_ID, UTCDateTime, utcnow

GENESIS_HASH = "0" * 64


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_occurred_at", "occurred_at"),
        Index("ix_audit_events_tool_occurred_at", "tool", "occurred_at"),
        Index("ix_audit_events_grant_occurred_at", "grant_id", "occurred_at"),
        Index("ix_audit_events_outcome_occurred_at", "outcome", "occurred_at"),
        Index("ix_audit_events_request_id", "request_id"),
        # The history page filters and pages newest first by seq: one (filter, seq) index per filter it offers.
        Index("ix_audit_events_tool_seq", "tool", "seq"),
        Index("ix_audit_events_outcome_seq", "outcome", "seq"),
        Index("ix_audit_events_grant_id_seq", "grant_id", "seq"),
        Index("ix_audit_events_actor_seq", "actor", "seq"),
    )

    id: int | None = Field(default=None, sa_column=Column(BIG_ID, primary_key=True, autoincrement=True))
    # Contiguous (taken from the chain head, not a sequence), so a deleted row leaves a visible gap.
    seq: int = Field(sa_column=Column(BigInteger, unique=True, nullable=False))
    occurred_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    action: str = Field(sa_column=Column(String(48), nullable=False))
    actor: str = Field(sa_column=Column(String(128), nullable=False))
    grant_id: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    grant_name: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    upstream: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    tool: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))
    outcome: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    rule: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    cost_micros: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    argument_keys: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    arguments_digest: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    request_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    prev_hash: str = Field(sa_column=Column(String(64), nullable=False))
    hash: str = Field(sa_column=Column(String(64), nullable=False))


class AuditChainHead(SQLModel, table=True):
    """One row: the newest link, and where a purge cut the chain. Appenders lock it to stay in order."""

    __tablename__ = "audit_chain_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    hash: str = Field(default=GENESIS_HASH, sa_column=Column(String(64), nullable=False))
    anchor_seq: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    anchor_hash: str = Field(default=GENESIS_HASH, sa_column=Column(String(64), nullable=False))
