from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, String, Text
from sqlmodel import Field, SQLModel

import service.db.base  # noqa: F401
from service.db.types import UTCDateTime, utcnow


class Grant(SQLModel, table=True):
    __tablename__ = "grants"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    # RESTRICT: an owner never vanishes from under a grant (a deleted person's row stays; service/users/departures.py)
    owner_id: int | None = Field(default=None, foreign_key="users.id", index=True, ondelete="RESTRICT")
    labels: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # None means every upstream; a list names the only ones this grant may reach.
    upstreams: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    token_hash: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    token_prefix: str = Field(sa_column=Column(String(16), nullable=False))
    # A grant may carry its own policy document; otherwise the current policy version applies.
    policy_source: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    last_used_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    suspended_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    """Set while the grant's owner is deactivated: refused like a revoked grant, and restored on reactivation."""

    @property
    def is_active(self) -> bool:
        """Neither revoked nor suspended: the grant may act, however its agent signed in."""
        return self.revoked_at is None and self.suspended_at is None

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "labels": self.labels, "upstreams": self.upstreams}
