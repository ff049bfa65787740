"""OAuth's tables: the clients, the authorizations (a consent request and, once approved, its one-time code), the
tokens issued from an authorization, and each person's consent per client. Every secret is stored as an HMAC
(service/security.py), never as itself."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

import service.db.base  # noqa: F401
from service.db.types import UTCDateTime, utcnow

METADATA_DOCUMENT = "metadata_document"
DYNAMIC = "dynamic"


class OAuthClient(SQLModel, table=True):
    __tablename__ = "oauth_clients"

    id: int | None = Field(default=None, primary_key=True)
    client_id: str = Field(sa_column=Column(String(2048), unique=True, nullable=False))
    # The client's registered metadata (RFC 7591), as the SDK's OAuthClientInformationFull serialises it, without
    # client_secret: a dynamic client's secret is here only as its HMAC (service/oauth/service.py CLIENT_SECRET_HMAC).
    client_metadata: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    registered_by: str = Field(sa_column=Column(String(32), nullable=False))
    """METADATA_DOCUMENT (fetched from its client_id URL) or DYNAMIC (RFC 7591 registration)."""
    verified: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class OAuthAuthorization(SQLModel, table=True):
    """One authorization request: pending until a person decides it; approved, it holds a code that is good once."""

    __tablename__ = "oauth_authorizations"

    id: int | None = Field(default=None, primary_key=True)
    request_hash: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    client_row_id: int = Field(foreign_key="oauth_clients.id", index=True, ondelete="CASCADE")
    redirect_uri: str = Field(sa_column=Column(Text, nullable=False))
    redirect_uri_explicit: bool = True
    code_challenge: str = Field(sa_column=Column(String(128), nullable=False))
    state: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    resource: str = Field(sa_column=Column(Text, nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    user_id: int | None = Field(default=None, foreign_key="users.id", ondelete="CASCADE")
    grant_id: int | None = Field(default=None, foreign_key="grants.id", ondelete="CASCADE")
    code_hash: str | None = Field(default=None, sa_column=Column(String(64), unique=True, nullable=True))
    code_expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    decided_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    code_used_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


ACCESS = "access"
REFRESH = "refresh"


class OAuthToken(SQLModel, table=True):
    """An access or refresh token. Every token issued from one authorization (its rotations included) is one family:
    a replayed code or refresh token revokes the whole family."""

    __tablename__ = "oauth_tokens"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    kind: str = Field(sa_column=Column(String(8), nullable=False))
    authorization_id: int = Field(foreign_key="oauth_authorizations.id", index=True, ondelete="CASCADE")
    client_row_id: int = Field(foreign_key="oauth_clients.id", index=True, ondelete="CASCADE")
    grant_id: int = Field(foreign_key="grants.id", index=True, ondelete="CASCADE")
    resource: str = Field(sa_column=Column(Text, nullable=False))
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    """A refresh token's rotation: it was exchanged once and is spent."""
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class OAuthConsent(SQLModel, table=True):
    """Which grant a person let a client act as (the last choice, offered first next time)."""

    __tablename__ = "oauth_consents"
    __table_args__ = (UniqueConstraint("user_id", "client_row_id"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE")
    client_row_id: int = Field(foreign_key="oauth_clients.id", index=True, ondelete="CASCADE")
    grant_id: int = Field(foreign_key="grants.id", index=True, ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
