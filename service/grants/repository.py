"""All SQL about grants."""

from __future__ import annotations

from sqlmodel import Session, col, select

from service.grants.models import Grant
from service.users.models import User


class GrantRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def by_name(self, name: str) -> Grant | None:
        return self.session.exec(select(Grant).where(Grant.name == name)).first()

    def by_token_hash(self, token_hash: str) -> tuple[Grant, str | None] | None:
        row = self.session.exec(
            select(Grant, User.username)
            .join(User, col(User.id) == col(Grant.owner_id), isouter=True)
            .where(Grant.token_hash == token_hash)
        ).first()
        return (row[0], row[1]) if row is not None else None

    def by_id_with_owner(self, grant_id: int) -> tuple[Grant, str | None] | None:
        row = self.session.exec(
            select(Grant, User.username)
            .join(User, col(User.id) == col(Grant.owner_id), isouter=True)
            .where(Grant.id == grant_id)
        ).first()
        return (row[0], row[1]) if row is not None else None

    def by_name_with_owner(self, name: str) -> tuple[Grant, str | None] | None:
        row = self.session.exec(
            select(Grant, User.username)
            .join(User, col(User.id) == col(Grant.owner_id), isouter=True)
            .where(Grant.name == name)
        ).first()
        return (row[0], row[1]) if row is not None else None

    def list_with_owners(self, include_revoked: bool) -> list[tuple[Grant, str | None]]:
        query = select(Grant, User.username).join(User, col(User.id) == col(Grant.owner_id), isouter=True)
        if not include_revoked:
            query = query.where(col(Grant.revoked_at).is_(None))
        return [(g, owner) for g, owner in self.session.exec(query.order_by(col(Grant.name))).all()]

    def owned_by(self, user_id: int) -> list[Grant]:
        """The grants the user owns that are not revoked (suspended or not)."""
        query = select(Grant).where(Grant.owner_id == user_id, col(Grant.revoked_at).is_(None))
        return list(self.session.exec(query.order_by(col(Grant.id))).all())

    def is_live_locked(self, grant_id: int) -> bool:
        """Whether the grant is neither revoked nor suspended, holding a share lock on its row until the transaction
        ends (PostgreSQL; SQLite has one writer at a time anyway): a revocation or suspension that writes the row
        waits for us, or we for it."""
        row = self.session.exec(
            select(Grant.id, Grant.revoked_at, Grant.suspended_at)
            .where(Grant.id == grant_id)
            .with_for_update(read=True)
        ).first()
        return row is not None and row[1] is None and row[2] is None

    def add(self, grant: Grant) -> Grant:
        self.session.add(grant)
        self.session.flush()
        return grant
