"""What OAuth ends when a person is deactivated or deleted (service/users/departures.py): every token acting as a
grant they own, and their consents, in the deactivating transaction. Reactivation brings none of them back, as it
brings back no web session: the apps ask the person again."""

from __future__ import annotations

from sqlmodel import Session

from service.db.types import utcnow
from service.oauth.repository import OAuthRepository
from service.oauth.service import announce_revocation
from service.users.departures import ON_DEACTIVATED
from service.users.models import User


def end_oauth_of(session: Session, user: User, actor: str) -> None:
    assert user.id is not None
    repo = OAuthRepository(session)
    revoked = repo.revoke_tokens_of_owner(user.id, utcnow())
    forgotten = repo.delete_consents_of(user.id)
    if revoked or forgotten:
        announce_revocation(session)


def listen_for_departures() -> None:
    """Called once a process builds its runtime (service/runtime.py); calling it again adds nothing."""
    if end_oauth_of not in ON_DEACTIVATED:
        ON_DEACTIVATED.append(end_oauth_of)
