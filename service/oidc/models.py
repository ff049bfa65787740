from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, String, UniqueConstraint
from sqlmodel import Field, SQLModel

import service.db.base  # noqa: F401  (naming convention first)
from service.db.types import UTCDateTime, utcnow


class OIDCLink(SQLModel, table=True):
    """A person at an identity provider (issuer, subject) is this Airlock user: found by it at every sign-in after
    the first, whatever their e-mail says by then."""

    __tablename__ = "oidc_links"
    __table_args__ = (UniqueConstraint("issuer", "subject"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    issuer: str = Field(sa_column=Column(String(255), nullable=False))
    subject: str = Field(sa_column=Column(String(255), nullable=False))
    groups: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """The groups of the last sign-in: a change ends the person's other sessions."""
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    last_sign_in_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
