"""All SQL about OAuth clients, authorizations, tokens and consents."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, exists, func, or_, update
from sqlmodel import Session, col, select

from service.grants.models import Grant
from service.oauth.models import OAuthAuthorization, OAuthClient, OAuthConsent, OAuthToken
from service.users.models import User


class OAuthRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: OAuthClient | OAuthAuthorization | OAuthToken | OAuthConsent) -> None:
        self.session.add(row)
        self.session.flush()

    def client(self, client_id: str) -> OAuthClient | None:
        return self.session.exec(select(OAuthClient).where(OAuthClient.client_id == client_id)).first()

    def client_by_row(self, row_id: int) -> OAuthClient | None:
        return self.session.get(OAuthClient, row_id)

    def authorization_by_request(self, request_hash: str) -> OAuthAuthorization | None:
        query = select(OAuthAuthorization).where(OAuthAuthorization.request_hash == request_hash)
        return self.session.exec(query.with_for_update()).first()

    def authorization_by_code(self, code_hash: str) -> tuple[OAuthAuthorization, OAuthClient] | None:
        row = self.session.exec(
            select(OAuthAuthorization, OAuthClient)
            .join(OAuthClient, col(OAuthClient.id) == col(OAuthAuthorization.client_row_id))
            .where(OAuthAuthorization.code_hash == code_hash)
            .with_for_update(of=OAuthAuthorization)
        ).first()
        return (row[0], row[1]) if row is not None else None

    def token(self, token_hash: str, kind: str) -> tuple[OAuthToken, OAuthClient] | None:
        row = self.session.exec(
            select(OAuthToken, OAuthClient)
            .join(OAuthClient, col(OAuthClient.id) == col(OAuthToken.client_row_id))
            .where(OAuthToken.token_hash == token_hash, OAuthToken.kind == kind)
            .with_for_update(of=OAuthToken)
        ).first()
        return (row[0], row[1]) if row is not None else None

    def access_with_grant(self, token_hash: str, kind: str) -> tuple[OAuthToken, Grant, str | None] | None:
        """A token with the grant it acts as and the grant's owner: one query on the gateway's path."""
        row = self.session.exec(
            select(OAuthToken, Grant, User.username)
            .join(Grant, col(Grant.id) == col(OAuthToken.grant_id))
            .join(User, col(User.id) == col(Grant.owner_id), isouter=True)
            .where(OAuthToken.token_hash == token_hash, OAuthToken.kind == kind)
        ).first()
        return (row[0], row[1], row[2]) if row is not None else None

    def revoke_family(self, authorization_id: int, now: datetime) -> int:
        result = self.session.exec(
            update(OAuthToken)
            .where(col(OAuthToken.authorization_id) == authorization_id, col(OAuthToken.revoked_at).is_(None))
            .values(revoked_at=now)
        )
        return int(result.rowcount or 0)

    def owned_live_grants(self, user_id: int) -> list[Grant]:
        query = select(Grant).where(Grant.owner_id == user_id, col(Grant.revoked_at).is_(None))
        return list(self.session.exec(query.order_by(col(Grant.name))).all())

    def grant(self, grant_id: int) -> Grant | None:
        return self.session.get(Grant, grant_id)

    def consent(self, user_id: int, client_row_id: int) -> OAuthConsent | None:
        return self.session.exec(
            select(OAuthConsent).where(OAuthConsent.user_id == user_id, OAuthConsent.client_row_id == client_row_id)
        ).first()

    def consent_by_id(self, consent_id: int) -> OAuthConsent | None:
        return self.session.get(OAuthConsent, consent_id)

    def consents_listed(self, user_id: int | None) -> list[tuple[OAuthConsent, OAuthClient, Grant, str]]:
        """Everyone's consents, or with a user_id, that person's."""
        query = (
            select(OAuthConsent, OAuthClient, Grant, User.username)
            .join(OAuthClient, col(OAuthClient.id) == col(OAuthConsent.client_row_id))
            .join(Grant, col(Grant.id) == col(OAuthConsent.grant_id))
            .join(User, col(User.id) == col(OAuthConsent.user_id))
        )
        if user_id is not None:
            query = query.where(OAuthConsent.user_id == user_id)
        rows = self.session.exec(query.order_by(col(User.username), col(OAuthConsent.id))).all()
        return [(consent, client, grant, username) for consent, client, grant, username in rows]

    def live_tokens(self, now: datetime) -> dict[tuple[int, int], int]:
        """Unrevoked, unexpired tokens per (client row, grant)."""
        rows = self.session.exec(
            select(OAuthToken.client_row_id, OAuthToken.grant_id, func.count())
            .where(col(OAuthToken.revoked_at).is_(None), col(OAuthToken.expires_at) > now)
            .group_by(col(OAuthToken.client_row_id), col(OAuthToken.grant_id))
        ).all()
        return {(client, grant): int(count) for client, grant, count in rows}

    def revoke_client_grant(self, client_row_id: int, grant_id: int, now: datetime) -> int:
        result = self.session.exec(
            update(OAuthToken)
            .where(
                col(OAuthToken.client_row_id) == client_row_id,
                col(OAuthToken.grant_id) == grant_id,
                col(OAuthToken.revoked_at).is_(None),
            )
            .values(revoked_at=now)
        )
        return int(result.rowcount or 0)

    def spend_unused_codes(self, client_row_id: int, grant_id: int, now: datetime) -> int:
        """Marks every approved, unexchanged code of this client for this grant used."""
        result = self.session.exec(
            update(OAuthAuthorization)
            .where(
                col(OAuthAuthorization.client_row_id) == client_row_id,
                col(OAuthAuthorization.grant_id) == grant_id,
                col(OAuthAuthorization.code_hash).is_not(None),
                col(OAuthAuthorization.code_used_at).is_(None),
            )
            .values(code_used_at=now)
        )
        return int(result.rowcount or 0)

    def delete(self, row: OAuthConsent) -> None:
        self.session.delete(row)
        self.session.flush()

    # Sweeping (service/oauth/sweeper.py)

    def any_dead(self, now: datetime) -> bool:
        token = self.session.exec(select(OAuthToken.id).where(_dead_token(now)).limit(1)).first()
        if token is not None:
            return True
        authorization = select(OAuthAuthorization.id).where(_dead_authorization(now)).limit(1)
        return self.session.exec(authorization).first() is not None

    def delete_dead(self, now: datetime) -> tuple[int, int]:
        """Tokens first, then the authorizations left with none: (tokens, authorizations) deleted."""
        tokens = self.session.exec(delete(OAuthToken).where(_dead_token(now)))
        authorizations = self.session.exec(delete(OAuthAuthorization).where(_dead_authorization(now)))
        return int(tokens.rowcount or 0), int(authorizations.rowcount or 0)

    # A person who leaves (service/oauth/departures.py)

    def revoke_tokens_of_owner(self, user_id: int, now: datetime) -> int:
        """Every live token that acts as a grant the person owns: those are the ones they consented to."""
        owned = select(Grant.id).where(col(Grant.owner_id) == user_id)
        result = self.session.exec(
            update(OAuthToken)
            .where(col(OAuthToken.grant_id).in_(owned), col(OAuthToken.revoked_at).is_(None))
            .values(revoked_at=now)
        )
        return int(result.rowcount or 0)

    def delete_consents_of(self, user_id: int) -> int:
        result = self.session.exec(delete(OAuthConsent).where(col(OAuthConsent.user_id) == user_id))
        return int(result.rowcount or 0)


def _dead_token(now: datetime) -> ColumnElement[bool]:
    """Expired or revoked: it can never work again, and a dead token presented is refused just as an unknown one."""
    return or_(col(OAuthToken.expires_at) <= now, col(OAuthToken.revoked_at).is_not(None))


def _dead_authorization(now: datetime) -> ColumnElement[bool]:
    """No token hangs off it, and it can issue none: its code was spent; or it was denied; or its code, or the
    consent request it still is, expired. A replayed code it held is then refused as unknown, with nothing left to
    revoke."""
    authorization = OAuthAuthorization
    undecided_expired = and_(col(authorization.decided_at).is_(None), col(authorization.expires_at) <= now)
    code_gone = and_(
        col(authorization.decided_at).is_not(None),
        or_(col(authorization.code_expires_at).is_(None), col(authorization.code_expires_at) <= now),
    )
    no_tokens = ~exists().where(col(OAuthToken.authorization_id) == col(authorization.id))
    return and_(no_tokens, or_(col(authorization.code_used_at).is_not(None), undecided_expired, code_gone))
