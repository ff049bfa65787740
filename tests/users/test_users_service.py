from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from service.db.engine import reading, unit_of_work
from service.errors import AlreadyExists, InvalidInput, NotAuthenticated
from service.security import TokenHasher
from service.users import service
from service.users.models import Role


def test_passwords_are_argon2_and_tokens_authenticate(engine: Engine, hasher: TokenHasher) -> None:
    with unit_of_work(engine) as session:
        created = service.create_user(
            session, hasher, username="ana", role=Role.APPROVER, actor="test", slack_user_id="U024BE7LH"
        )
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT password_hash FROM users")).scalar_one()
    assert stored.startswith("$argon2id$") and created.password not in stored
    with unit_of_work(engine) as session:
        assert service.authenticate_password(session, "ana", created.password).role is Role.APPROVER
        assert service.authenticate_token(session, hasher, created.api_token).username == "ana"
        with pytest.raises(NotAuthenticated):
            service.authenticate_password(session, "ana", "wrong")
        with pytest.raises(NotAuthenticated):
            service.authenticate_password(session, "nobody", created.password)
        with pytest.raises(NotAuthenticated):
            service.authenticate_token(session, hasher, "alku_forged")


def test_duplicates_and_bad_values_are_refused(engine: Engine, hasher: TokenHasher) -> None:
    with unit_of_work(engine) as session:
        service.create_user(session, hasher, username="ana", role=Role.ADMIN, actor="test", slack_user_id="U1ABC")
    with pytest.raises(AlreadyExists), unit_of_work(engine) as session:
        service.create_user(session, hasher, username="ana", role=Role.VIEWER, actor="test")
    with pytest.raises(AlreadyExists, match="Slack user"), unit_of_work(engine) as session:
        service.create_user(session, hasher, username="bo", role=Role.VIEWER, actor="test", slack_user_id="U1ABC")
    with pytest.raises(InvalidInput, match="Slack user id"), unit_of_work(engine) as session:
        service.create_user(session, hasher, username="cy", role=Role.VIEWER, actor="test", slack_user_id="not-slack")
    with pytest.raises(InvalidInput, match="unknown role"):
        service.parse_role("boss")
    with Session(engine) as session:
        assert [u.username for u in service.list_users(session)] == ["ana"]


def test_last_used_is_written_at_most_once_a_minute(engine: Engine, hasher: TokenHasher) -> None:
    with unit_of_work(engine) as session:
        created = service.create_user(session, hasher, username="ana", role=Role.APPROVER, actor="test")
    with reading(engine) as session:
        _, token = service.identify_token(session, hasher, created.api_token)
    assert token.last_used_at is None and service.needs_touch(token)
    assert token.id is not None
    with unit_of_work(engine) as session:
        service.touch_token(session, token.id)
    with reading(engine) as session:
        _, token = service.identify_token(session, hasher, created.api_token)
    assert token.last_used_at is not None
    assert not service.needs_touch(token)  # read-only requests within the minute write nothing
    assert service.needs_touch(token, token.last_used_at + service.LAST_USED_RESOLUTION)
    with pytest.raises(NotAuthenticated), reading(engine) as session:
        service.identify_token(session, hasher, "alku_forged")


def test_sign_out_and_a_new_role_raise_the_session_generation_but_other_changes_do_not(
    engine: Engine, hasher: TokenHasher
) -> None:
    with unit_of_work(engine) as session:
        service.create_user(session, hasher, username="ana", role=Role.APPROVER, actor="test")
        service.create_user(session, hasher, username="bo", role=Role.VIEWER, actor="test")

    def generations() -> dict[str, int]:
        with reading(engine) as session:
            return {u: service.get_user(session, u).session_generation for u in ("ana", "bo")}

    assert generations() == {"ana": 0, "bo": 0}
    with unit_of_work(engine) as session:
        service.end_sessions(session, "ana")
        service.end_sessions(session, "ana")  # each sign-out counts, even within one transaction
    assert generations() == {"ana": 2, "bo": 0}
    with unit_of_work(engine) as session:
        user = service.set_role(session, "bo", Role.ADMIN, actor="root")
        assert user.role is Role.ADMIN and user.session_generation == 1  # the object in hand is up to date
        service.set_role(session, "ana", Role.APPROVER, actor="root")  # not a change: nothing ends
        service.set_slack_user_id(session, "ana", "U024BE7LH", actor="root")
    assert generations() == {"ana": 2, "bo": 1}
    with reading(engine) as session:
        assert service.get_user(session, "bo").role is Role.ADMIN
