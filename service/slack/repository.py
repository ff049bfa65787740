"""All SQL of the Slack integration: its cards, and the reads it needs of requests and users."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import not_, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from service.approvals.models import RequestStatus, ToolCallRequest
from service.db.types import utcnow
from service.slack.models import SlackCard
from service.users.models import User

_FINAL = (
    RequestStatus.SUCCEEDED,
    RequestStatus.FAILED,
    RequestStatus.REJECTED,
    RequestStatus.EXPIRED,
    RequestStatus.CANCELLED,
)


class SlackRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def cards(self, request_id: int) -> list[SlackCard]:
        return list(
            self.session.exec(
                select(SlackCard).where(SlackCard.request_id == request_id).order_by(col(SlackCard.target))
            ).all()
        )

    def card(self, request_id: int, target: str) -> SlackCard | None:
        return self.session.get(SlackCard, (request_id, target))

    def add_missing_cards(self, request_id: int, targets: list[str]) -> None:
        have = {c.target for c in self.cards(request_id)}
        for target in targets:
            if target in have:
                continue
            try:
                with self.session.begin_nested():  # the catch-up and the event for it may meet here
                    self.session.add(SlackCard(request_id=request_id, target=target))
            except IntegrityError:
                pass

    def save(self, card: SlackCard) -> None:
        card.updated_at = utcnow()
        self.session.add(card)
        self.session.flush()

    def claim_send(
        self, request_id: int, target: str, sender: str, *, image: bool, now: datetime, until: datetime
    ) -> bool:
        """Take the card for its post (or its image's upload), unless that was sent already or another sender holds
        the card. One conditional UPDATE, so two replicas racing for the same card cannot both win."""
        unsent = col(SlackCard.image_posted).is_(False) if image else col(SlackCard.ts).is_(None)
        free = or_(
            col(SlackCard.sending_by).is_(None),
            col(SlackCard.sending_by) == sender,
            col(SlackCard.sending_until).is_(None),
            col(SlackCard.sending_until) < now,
        )
        taken = self.session.execute(
            update(SlackCard)
            .where(col(SlackCard.request_id) == request_id, col(SlackCard.target) == target, unsent, free)
            .values(sending_by=sender, sending_until=until)
        )
        return bool(taken.rowcount)  # type: ignore[attr-defined]

    def pending_without_cards(self, limit: int = 500) -> list[ToolCallRequest]:
        """Held calls whose cards were never queued (the process stopped between the hold and the queueing)."""
        has_card = select(SlackCard.request_id).where(SlackCard.request_id == ToolCallRequest.id).exists()
        return list(
            self.session.exec(
                select(ToolCallRequest)
                .where(ToolCallRequest.status == RequestStatus.PENDING)
                .where(~has_card)
                .order_by(col(ToolCallRequest.id))
                .limit(limit)
            ).all()
        )

    def user_by_slack_id(self, slack_user_id: str) -> User | None:
        return self.session.exec(select(User).where(User.slack_user_id == slack_user_id)).first()

    def user_by_email(self, email: str) -> User | None:
        return self.session.exec(select(User).where(func.lower(User.email) == email.lower())).first()

    def slack_ids_of(self, usernames: list[str]) -> list[str]:
        rows = self.session.exec(
            select(User.slack_user_id).where(col(User.username).in_(usernames), col(User.slack_user_id).is_not(None))
        ).all()
        return sorted(str(r) for r in rows if r)

    def lagging_cards(self, limit: int = 1000) -> list[tuple[SlackCard, str]]:
        """Cards not yet showing a final state, with their request's current status."""
        final = or_(*(col(SlackCard.shown).like(f"{status.value}:%") for status in _FINAL))
        rows = self.session.exec(
            select(SlackCard, ToolCallRequest.status)
            .join(ToolCallRequest, col(ToolCallRequest.id) == col(SlackCard.request_id))
            .where(col(SlackCard.ts).is_(None) | not_(final))
            .limit(limit)
        ).all()
        return [(card, RequestStatus(status).value) for card, status in rows]
