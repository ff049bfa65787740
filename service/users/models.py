from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, Integer, String
from sqlmodel import Field, SQLModel

import service.db.base  # noqa: F401  (naming convention first)
from service.db.types import StrEnumType, UTCDateTime, utcnow


class Role(StrEnum):
    ADMIN = "admin"
    APPROVER = "approver"
    VIEWER = "viewer"


class UserBase(SQLModel):
    username: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    role: Role = Field(sa_column=Column(StrEnumType(Role), nullable=False))
    slack_user_id: str | None = Field(default=None, sa_column=Column(String(32), unique=True, nullable=True))
    email: str | None = Field(default=None, sa_column=Column(String(254), nullable=True))


class User(UserBase, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    password_hash: str = Field(sa_column=Column(String(255), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    disabled_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    """Set while the person is deactivated (service/users/departures.py): no sign-in, and their grants suspended."""
    deleted_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    """A deleted person's row stays, stripped of every credential, so their name stays on the audit log and on the
    grants they owned; the name is not given to anyone else."""
    session_generation: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    """Web sessions carry the value they began under: raising it (sign-out, a new role) ends them all."""


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    name: str = Field(sa_column=Column(String(64), nullable=False))
    token_hash: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    token_prefix: str = Field(sa_column=Column(String(16), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    last_used_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
