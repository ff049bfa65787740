"""All SQL about users and their API tokens."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from service.users.models import ApiToken, Role, User


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
        """Everyone but the deleted (whose rows stay, for the audit log and the grants they owned)."""
        query = select(User).where(col(User.deleted_at).is_(None)).order_by(col(User.username))
        return list(self.session.exec(query).all())

    def active_admins_locked(self) -> Sequence[User]:  # `list` is a method of this class
        """The active admins, their rows locked until the transaction ends (PostgreSQL; SQLite has one writer at a
        time anyway): two admins deactivating each other at once cannot both pass the "last admin" check."""
        query = (
            select(User)
            .where(User.role == Role.ADMIN, col(User.disabled_at).is_(None), col(User.deleted_at).is_(None))
            .order_by(col(User.id))
            .with_for_update()
        )
        return self.session.exec(query).all()

    def departed_among(self, usernames: Collection[str]) -> set[str]:
        """Those of `usernames` who are deactivated or deleted (a name with no user row, such as the CLI's operator,
        is not among them)."""
        if not usernames:
            return set()
        query = select(User.username).where(
            col(User.username).in_(usernames),
            or_(col(User.disabled_at).is_not(None), col(User.deleted_at).is_not(None)),
        )
        return set(self.session.exec(query).all())

    def revoke_tokens(self, user_id: int, when: datetime) -> int:
        """Revoke every live API token of the user; how many were live."""
        result = self.session.execute(
            update(ApiToken)
            .where(col(ApiToken.user_id) == user_id, col(ApiToken.revoked_at).is_(None))
            .values(revoked_at=when)
            .execution_options(synchronize_session="fetch")
        )
        return int(getattr(result, "rowcount", 0) or 0)

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
