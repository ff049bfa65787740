from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, String, Text
from sqlmodel import Field, SQLModel

import service.db.base  # noqa: F401
from service.db.types import UTCDateTime, utcnow


class PolicyVersion(SQLModel, table=True):
    __tablename__ = "policy_versions"

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(sa_column=Column(Text, nullable=False))
    digest: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    # file: imported from the config's policy file; cli, web, rollback: a person's change.
    origin: str = Field(sa_column=Column(String(16), nullable=False))
    file_digest: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    created_by: str = Field(sa_column=Column(String(64), nullable=False))
    comment: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
