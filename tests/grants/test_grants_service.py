from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session, select

from service.audit.models import AuditEvent
from service.db.engine import unit_of_work
from service.errors import AlreadyExists, Forbidden, InvalidInput, NotAuthenticated, NotFound
from service.grants import service
from service.security import TokenHasher
from service.users import departures
from service.users.models import Role
from service.users.service import create_user


def test_create_authenticate_and_revoke(engine: Engine, hasher: TokenHasher) -> None:
    with unit_of_work(engine) as session:
        create_user(session, hasher, username="dana", role=Role.VIEWER, actor="test")
        created = service.create_grant(
            session,
            hasher,
            name="design-bot",
            actor="test",
            owner="dana",
            labels={"team": "design"},
            upstreams=["imagegen"],
        )
    assert created.token.startswith("alk_") and len(created.token) > 40
    with unit_of_work(engine) as session:
        grant, info = service.authenticate(session, hasher, created.token)
    assert (info.name, info.owner, dict(info.labels)) == ("design-bot", "dana", {"team": "design"})
    assert grant.upstreams == ["imagegen"]
    with unit_of_work(engine) as session:
        service.revoke_grant(session, "design-bot", actor="test")
    with unit_of_work(engine) as session, pytest.raises(NotAuthenticated):
        service.authenticate(session, hasher, created.token)


def test_only_an_hmac_of_the_token_is_stored(engine: Engine, hasher: TokenHasher) -> None:
    with unit_of_work(engine) as session:
        created = service.create_grant(session, hasher, name="bot", actor="test")
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT token_hash, token_prefix FROM grants")).one()
    assert created.token not in stored[0]
    assert stored[0] == hasher.hash(created.token)
    assert created.token.startswith(stored[1])
    # A different pepper does not accept the same token.
    with unit_of_work(engine) as session, pytest.raises(NotAuthenticated):
        service.authenticate(session, TokenHasher(b"another-pepper-0123456789"), created.token)


def test_bad_input_changes_nothing(engine: Engine, hasher: TokenHasher) -> None:
    with unit_of_work(engine) as session:
        service.create_grant(session, hasher, name="bot", actor="test")
    for kwargs, error in [
        ({"name": "bot"}, AlreadyExists),
        ({"name": "has space"}, InvalidInput),
        ({"name": "x", "owner": "nobody"}, NotFound),
        ({"name": "y", "upstreams": ["nope"], "known_upstreams": ["imagegen"]}, InvalidInput),
    ]:
        with pytest.raises(error), unit_of_work(engine) as session:
            service.create_grant(session, hasher, actor="test", **kwargs)  # type: ignore[arg-type]
    with Session(engine) as session:
        assert [g.name for g in service.list_grants(session)] == ["bot"]


def test_grant_actions_are_audit_events(engine: Engine, hasher: TokenHasher) -> None:
    with unit_of_work(engine) as session:
        service.create_grant(session, hasher, name="bot", actor="cli")
        service.revoke_grant(session, "bot", actor="cli")
    with Session(engine) as session:
        actions = [e.action for e in session.exec(select(AuditEvent)).all()]
    assert actions == ["grant.created", "grant.revoked"]


def test_labels_are_parsed_strictly() -> None:
    assert service.parse_labels(["team=design", "env=prod=1"]) == {"team": "design", "env": "prod=1"}
    with pytest.raises(InvalidInput):
        service.parse_labels(["nolabel"])


def test_a_deleted_owner_is_refused_and_a_deactivated_owners_new_grant_is_suspended(
    engine: Engine, hasher: TokenHasher
) -> None:
    with unit_of_work(engine) as session:
        for name in ("gone", "away"):
            create_user(session, hasher, username=name, role=Role.APPROVER, actor="test")
    with unit_of_work(engine) as session:
        departures.delete_user(session, "gone", actor="cli")
        departures.deactivate_user(session, "away", actor="cli")
    with pytest.raises(NotFound, match="no user named 'gone'"), unit_of_work(engine) as session:
        service.create_grant(session, hasher, name="ghost", actor="test", owner="gone")
    with unit_of_work(engine) as session:
        token = service.create_grant(session, hasher, name="bot", actor="test", owner="away").token
    with unit_of_work(engine) as session:
        assert [(g.name, g.suspended) for g in service.list_grants(session, include_revoked=True)] == [("bot", True)]
        with pytest.raises(Forbidden, match="suspended"):
            service.authenticate(session, hasher, token)
    with unit_of_work(engine) as session:
        assert departures.reactivate_user(session, "away", actor="cli") == ["bot"]
    with unit_of_work(engine) as session:
        assert service.authenticate(session, hasher, token)[1].owner == "away"
