"""Creating users, checking passwords (throttled for the web UI) and API tokens, ending a person's web sessions, and
the rule that Airlock always keeps an active admin."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from service.audit.schemas import AuditRecord, user_actor
from service.audit.service import record
from service.db.notify import CHANGES, announce
from service.db.types import utcnow
from service.errors import AlreadyExists, Conflict, Forbidden, InvalidInput, NotAuthenticated, NotFound, TooManyAttempts
from service.security import (
    TokenHasher,
    hash_password,
    new_password,
    new_token,
    token_prefix,
    verify_password,
)
from service.users.models import ApiToken, Role, User
from service.users.repository import UserRepository
from service.users.schemas import UserCreated, UserPublic
from service.users.throttle import LoginThrottle

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,31}$")


def to_public(user: User) -> UserPublic:
    assert user.id is not None
    return UserPublic(
        id=user.id,
        username=user.username,
        role=user.role,
        slack_user_id=user.slack_user_id,
        email=user.email,
        created_at=user.created_at,
        disabled=user.disabled_at is not None,
    )


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidInput(f"unknown role {value!r}; use admin, approver or viewer") from None


def create_user(
    session: Session,
    hasher: TokenHasher,
    *,
    username: str,
    role: Role,
    actor: str,
    slack_user_id: str | None = None,
    email: str | None = None,
    password: str | None = None,
) -> UserCreated:
    if not _USERNAME.match(username):
        raise InvalidInput("a username is 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit")
    if slack_user_id is not None and not _SLACK_USER.match(slack_user_id):
        raise InvalidInput(f"{slack_user_id!r} is not a Slack user id (they look like U024BE7LH)")
    repo = UserRepository(session)
    existing = repo.by_username(username)
    if existing is not None and existing.deleted_at is not None:
        # The audit log names people by username: a new person under a deleted one's name would inherit their past.
        raise AlreadyExists(f"{username!r} was deleted and stays in the audit log under that name; choose another")
    if existing is not None:
        raise AlreadyExists(f"a user named {username!r} already exists")
    if slack_user_id is not None and repo.by_slack_user(slack_user_id) is not None:
        raise AlreadyExists(f"Slack user {slack_user_id} is already mapped to another user")
    password = password or new_password()
    try:
        with session.begin_nested():
            user = repo.add(
                User(
                    username=username,
                    role=role,
                    slack_user_id=slack_user_id,
                    email=email,
                    password_hash=hash_password(password),
                )
            )
    except IntegrityError:
        raise AlreadyExists(f"a user named {username!r} already exists") from None
    api_token = issue_api_token(session, hasher, user, name="default", actor=actor)
    record(
        session,
        AuditRecord(
            kind="admin",
            action="user.created",
            actor=actor,
            details={"username": username, "role": role.value, "slack_user_id": slack_user_id},
        ),
    )
    return UserCreated(username=username, role=role, password=password, api_token=api_token)


def issue_api_token(session: Session, hasher: TokenHasher, user: User, *, name: str, actor: str) -> str:
    assert user.id is not None
    token = new_token("alku")
    UserRepository(session).add_token(
        ApiToken(user_id=user.id, name=name, token_hash=hasher.hash(token), token_prefix=token_prefix(token))
    )
    return token


def list_users(session: Session) -> list[UserPublic]:
    return [to_public(u) for u in UserRepository(session).list()]


def get_user(session: Session, username: str) -> User:
    """A user who has not been deleted (a deleted one's row stays only for the audit log and their grants)."""
    user = UserRepository(session).by_username(username)
    if user is None or user.deleted_at is not None:
        raise NotFound(f"no user named {username!r}")
    return user


def authenticate_password(session: Session, username: str, password: str) -> User:
    user = UserRepository(session).by_username(username)
    # The same message either way, so the answer does not tell which usernames exist.
    if user is None or not verify_password(user.password_hash, password):
        raise NotAuthenticated("wrong username or password")
    if user.disabled_at is not None:
        # Said only to whoever knows the password, so it tells a stranger nothing.
        raise Forbidden("this account is deactivated; ask an admin to reactivate it")
    return user


def sign_in(session: Session, throttle: LoginThrottle, username: str, password: str, *, address: str) -> User:
    """The web UI's password check. After repeated failures for the username or from the address it refuses every
    attempt, the right password too, until the throttle's window has passed (service.users.throttle)."""
    wait = throttle.retry_after(username, address)
    if wait is not None:
        raise TooManyAttempts(f"too many failed sign-ins; try again in {_wait_in_words(wait)}", retry_after=wait)
    try:
        user = authenticate_password(session, username, password)
    except NotAuthenticated:
        throttle.failed(username, address)
        raise
    throttle.succeeded(username, address)
    return user


def _wait_in_words(seconds: float) -> str:
    if seconds < 60:
        whole = math.ceil(seconds)
        return f"{whole} second{'s' if whole != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def end_sessions(session: Session, username: str) -> None:
    """Every web session of the user ends, in every browser: a cookie copied before proves nothing after."""
    end_sessions_of(session, get_user(session, username))


def end_sessions_of(session: Session, user: User) -> None:
    """The one home of ending a person's sessions: the generation every web session carries moves on, and every
    process (this one after the commit, other replicas through PostgreSQL) is told, so the person's open live pages
    close at once instead of at their next periodic check (service/caches.py)."""
    UserRepository(session).end_sessions(user)
    announce(session, CHANGES, {"what": "sessions", "username": user.username})


# "Last used" is kept to the minute: writing it on every request would make every read of the API a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def identify_token(session: Session, hasher: TokenHasher, token: str) -> tuple[User, ApiToken]:
    """The user behind an API token, without writing anything."""
    found = UserRepository(session).token_by_hash(hasher.hash(token))
    if found is None:
        raise NotAuthenticated("unknown API token")
    api_token, user = found
    if api_token.revoked_at is not None:
        raise NotAuthenticated("this API token is revoked")
    if user.disabled_at is not None:
        raise NotAuthenticated("this API token's user is deactivated")
    return user, api_token


def needs_touch(api_token: ApiToken, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return api_token.last_used_at is None or now - api_token.last_used_at >= LAST_USED_RESOLUTION


def touch_token(session: Session, token_id: int, now: datetime | None = None) -> None:
    UserRepository(session).touch_token(token_id, now or utcnow())


def authenticate_token(session: Session, hasher: TokenHasher, token: str) -> User:
    user, api_token = identify_token(session, hasher, token)
    if needs_touch(api_token):
        api_token.last_used_at = utcnow()
        session.add(api_token)
    return user


def _admin_event(session: Session, action: str, actor: str, details: dict[str, object]) -> None:
    record(session, AuditRecord(kind="admin", action=action, actor=actor, details=dict(details)))


def set_role(session: Session, username: str, role: Role, *, actor: str) -> User:
    user = get_user(session, username)
    if user.role is Role.ADMIN and role is not Role.ADMIN:
        refuse_to_lose_an_admin(session, user, actor, "demote")
    if user.role is not role:
        previous = user.role
        user.role = role
        session.add(user)
        # A new role is a new level of trust: whoever holds the old sessions signs in again under it.
        end_sessions_of(session, user)
        _admin_event(
            session, "user.role_changed", actor, {"username": username, "from": previous.value, "to": role.value}
        )
    return user


def refuse_to_lose_an_admin(session: Session, user: User, actor: str, verb: str) -> None:
    """The one home of "an admin never removes themselves, and Airlock keeps an active admin": every step that takes
    an admin away (a role change, a deactivation, a deletion) calls it before changing anything. The active admins
    stay locked until the transaction ends, so two such steps racing each other cannot both pass."""
    if actor == user_actor(user.username):
        raise Forbidden(f"you cannot {verb} yourself; ask another admin")
    if user.role is not Role.ADMIN or user.disabled_at is not None:
        return
    admins = UserRepository(session).active_admins_locked()
    if [a.id for a in admins] == [user.id]:
        raise Conflict(f"{user.username} is the last active admin; make someone else an admin first")


def set_slack_user_id(session: Session, username: str, slack_user_id: str | None, *, actor: str) -> User:
    """Map a person to their Slack user (None removes the mapping); one Airlock user per Slack user."""
    if slack_user_id is not None and not _SLACK_USER.match(slack_user_id):
        raise InvalidInput(f"{slack_user_id!r} is not a Slack user id (they look like U024BE7LH)")
    user = get_user(session, username)
    if slack_user_id is not None:
        other = UserRepository(session).by_slack_user(slack_user_id)
        if other is not None and other.id != user.id:
            raise AlreadyExists(f"Slack user {slack_user_id} is already mapped to {other.username}")
    if user.slack_user_id != slack_user_id:
        user.slack_user_id = slack_user_id
        session.add(user)
        _admin_event(session, "user.slack_changed", actor, {"username": username, "slack_user_id": slack_user_id})
    return user


def reset_password(session: Session, username: str, *, actor: str) -> str:
    """A new generated password, shown once; the old one stops working at once."""
    user = get_user(session, username)
    password = new_password()
    user.password_hash = hash_password(password)
    session.add(user)
    _admin_event(session, "user.password_reset", actor, {"username": username})
    return password


def list_api_tokens(session: Session, username: str) -> list[ApiToken]:
    user = get_user(session, username)
    assert user.id is not None
    return list(UserRepository(session).tokens_of(user.id))


def new_api_token(session: Session, hasher: TokenHasher, username: str, *, name: str, actor: str) -> str:
    if not name.strip() or len(name) > 64:
        raise InvalidInput("name the token (up to 64 characters), so you know later where it is used")
    token = issue_api_token(session, hasher, get_user(session, username), name=name.strip(), actor=actor)
    _admin_event(session, "user.token_issued", actor, {"username": username, "name": name.strip()})
    return token


def revoke_api_token(session: Session, username: str, token_id: int, *, actor: str) -> None:
    user = get_user(session, username)
    token = UserRepository(session).token(token_id)
    if token is None or token.user_id != user.id:
        raise NotFound(f"{username} has no API token {token_id}")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.add(token)
        _admin_event(session, "user.token_revoked", actor, {"username": username, "token": token.token_prefix})
