from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel

from service.grants.models import Grant
from service.policy.decision import GrantInfo


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
    suspended: bool = False
    """While the owner is deactivated: refused, and restored when they are reactivated."""


class GrantCreated(BaseModel):
    """The token is shown once and stored only as an HMAC."""

    name: str
    token: str


@dataclass(frozen=True, slots=True)
class AuthenticatedGrant:
    id: int
    info: GrantInfo
    upstreams: tuple[str, ...] | None
    """None: every upstream."""

    def may_reach(self, upstream: str) -> bool:
        return self.upstreams is None or upstream in self.upstreams

    @classmethod
    def of(cls, grant: Grant, info: GrantInfo) -> AuthenticatedGrant:
        assert grant.id is not None
        return cls(grant.id, info, tuple(grant.upstreams) if grant.upstreams is not None else None)
