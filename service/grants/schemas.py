from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class GrantPublic(BaseModel):
    id: int
    name: str
    owner: str | None
    labels: dict[str, str]
    upstreams: list[str] | None
    token_prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


class GrantCreated(BaseModel):
    """The token is shown once and stored only as an HMAC."""

    name: str
    token: str
