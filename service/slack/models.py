"""Where each request's cards live in Slack, and how much of the request they show yet."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Column, ForeignKey, String
from sqlmodel import Field, SQLModel

import service.db.base  # noqa: F401  (naming convention first)
from service.db.types import BIG_ID, UTCDateTime, utcnow


class SlackCard(SQLModel, table=True):
    """One card of a request in one place: the rule's channel, the default channel, or a named approver's DM.

    The row is written before the post, so a card that Slack has not accepted yet (`ts` empty) is still owed after
    a restart. `shown` is the request state the card last rendered: a card whose `shown` lags is updated again.
    """

    __tablename__ = "slack_cards"

    request_id: int = Field(
        sa_column=Column(
            BIG_ID, ForeignKey("tool_call_requests.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
        )
    )
    target: str = Field(sa_column=Column(String(80), primary_key=True))
    """As configured: "#image-approvals", a channel id, or a user id (the app's DM with that user)."""
    channel_id: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    ts: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    shown: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    image_posted: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, default=False))
    # Posts and uploads are not idempotent: whichever replica sends one holds the card for a while first, so the
    # catch-up of another replica cannot post the same card again meanwhile (see SlackRepository.claim_send).
    sending_by: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    sending_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
