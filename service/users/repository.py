"""All SQL about users and their API tokens."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col, select

from service.users.models import ApiToken, User


class UserRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def by_username(self, username: str) -> User | None:
        return self.session.exec(select(User).where(User.username == username)).first()

    def by_id(self, user_id: int) -> User | None:
        return self.session.get(User, user_id)

    def by_slack_user(self, slack_user_id: str) -> User | None:
        return self.session.exec(select(User).where(User.slack_user_id == slack_user_id)).first()

    def list(self) -> list[User]:
        return list(self.session.exec(select(User).order_by(col(User.username))).all())

    def add(self, user: User) -> User:
        self.session.add(user)
        self.session.flush()
        return user

    def end_sessions(self, user: User) -> None:
        """Raised in SQL, not read and written back, so that changes racing each other each raise it."""
        assert user.id is not None
        self.session.execute(
            update(User)
            .where(col(User.id) == user.id)
            .values(session_generation=col(User.session_generation) + 1)
            .execution_options(synchronize_session="fetch")
        )

    def add_token(self, token: ApiToken) -> ApiToken:
        self.session.add(token)
        self.session.flush()
        return token

    def touch_token(self, token_id: int, when: datetime) -> None:
        self.session.execute(update(ApiToken).where(col(ApiToken.id) == token_id).values(last_used_at=when))

    def token_by_hash(self, token_hash: str) -> tuple[ApiToken, User] | None:
        row = self.session.exec(
            select(ApiToken, User)
            .join(User, col(User.id) == col(ApiToken.user_id))
            .where(ApiToken.token_hash == token_hash)
        ).first()
        return (row[0], row[1]) if row is not None else None

    def tokens_of(self, user_id: int) -> Sequence[ApiToken]:  # `list` is a method of this class
        return self.session.exec(select(ApiToken).where(ApiToken.user_id == user_id).order_by(col(ApiToken.id))).all()

    def token(self, token_id: int) -> ApiToken | None:
        return self.session.get(ApiToken, token_id)
