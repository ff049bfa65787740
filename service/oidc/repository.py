"""All SQL about OpenID Connect links, and finding a user by e-mail for a first sign-in."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from service.errors import Conflict
from service.oidc.models import OIDCLink
from service.users.models import User


class OIDCLinkRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def by_subject(self, issuer: str, subject: str) -> OIDCLink | None:
        query = select(OIDCLink).where(OIDCLink.issuer == issuer, OIDCLink.subject == subject)
        return self.session.exec(query).first()

    def links_of(self, user_id: int) -> Sequence[OIDCLink]:
        return self.session.exec(select(OIDCLink).where(OIDCLink.user_id == user_id)).all()

    def users_with_email(self, email: str) -> Sequence[User]:
        """Users (not deleted) whose e-mail is this one, compared without regard to ASCII case; a non-ASCII e-mail
        matches nobody (docs/sign-in.md, "Linking")."""
        if not email.isascii():
            return []
        wanted = email.lower()
        query = select(User).where(func.lower(col(User.email)) == wanted, col(User.deleted_at).is_(None))
        # SQL lower() folds more than ASCII on PostgreSQL (U+212A KELVIN SIGN to "k"): only ASCII e-mails count.
        return [user for user in self.session.exec(query).all() if _same_ascii_email(user.email, wanted)]

    def add(self, link: OIDCLink) -> OIDCLink:
        """Conflict when the same (issuer, subject) was linked at the same moment by another sign-in."""
        try:
            with self.session.begin_nested():
                self.session.add(link)
        except IntegrityError:
            raise Conflict("this sign-in was just linked by another one at the same moment; sign in again") from None
        return link


def _same_ascii_email(stored: str | None, wanted: str) -> bool:
    return stored is not None and stored.isascii() and stored.lower() == wanted
