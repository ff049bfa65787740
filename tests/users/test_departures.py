"""People come and go (service/users/departures.py): what deactivation ends, what reactivation gives back (and does
not), what deletion keeps, and who may not be removed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from service.approvals import service as approvals
from service.approvals.models import RequestStatus
from service.audit.models import AuditEvent
from service.audit.service import verify
from service.counters import MemoryCounters
from service.db.engine import unit_of_work
from service.errors import AlreadyExists, Conflict, Forbidden, NotAuthenticated, NotFound
from service.grants import service as grants
from service.grants.service import grant_info, hold_live
from service.security import TokenHasher
from service.users import departures
from service.users import service as users
from service.users.models import Role, User
from tests.approvals.helpers import ANA, decide, held
from tests.approvals.test_cancellation import spent, wait_until_a_backend_waits_for_a_lock

ROOT = "user:root"
PEOPLE = (("root", Role.ADMIN), ("ana", Role.APPROVER))


@pytest.fixture
def people(engine: Engine, hasher: TokenHasher) -> dict[str, str]:
    """root (admin) and ana (approver), with their passwords; `held` adds dana, who owns grant `bot`."""
    with unit_of_work(engine) as session:
        created = [users.create_user(session, hasher, username=n, role=r, actor="t") for n, r in PEOPLE]
    return {c.username: c.password for c in created}


def deactivate(engine: Engine, username: str, actor: str = ROOT) -> departures.Departure:
    with unit_of_work(engine) as session:
        return departures.deactivate_user(session, username, actor=actor)


def user_row(engine: Engine, username: str) -> User:
    with Session(engine, expire_on_commit=False) as session:
        found = session.exec(select(User).where(User.username == username)).one()
        session.expunge(found)
        return found


def test_deactivation_suspends_the_grants_and_cancels_their_calls_as_a_revocation_does(
    engine: Engine, hasher: TokenHasher, people: dict[str, str]
) -> None:
    counters = MemoryCounters()
    pending, _ = held(engine, hasher, counters=counters, prompt="pending")  # grant `bot`, owned by dana
    approved, _ = held(engine, hasher, counters=counters, prompt="approved")
    decide(engine, approved, ANA)

    departure = deactivate(engine, "dana")
    departure.settle(counters)

    assert departure.grants == ["bot"]
    assert spent(counters) == 0  # both budgets came back: neither call can run any more
    with unit_of_work(engine) as session:
        assert [approvals.get(session, r).status for r in (pending, approved)] == [RequestStatus.CANCELLED] * 2
        assert approvals.get(session, pending).decision_reason == "grant suspended: its owner is deactivated"
        assert not hold_live(session, 1)  # no new request opens for it


def test_a_suspended_grants_token_is_refused_with_its_reason_and_reactivation_restores_it(
    engine: Engine, hasher: TokenHasher, people: dict[str, str]
) -> None:
    with unit_of_work(engine) as session:
        token = grants.create_grant(session, hasher, name="bot", actor="t", owner="ana").token
    deactivate(engine, "ana")
    with unit_of_work(engine) as session:
        with pytest.raises(Forbidden, match="grant 'bot' is suspended: its owner ana is deactivated"):
            grants.authenticate(session, hasher, token)
        with pytest.raises(NotAuthenticated):
            grants.authenticate(session, hasher, "alk_forged")
        with pytest.raises(NotFound):
            grant_info(session, "bot")
        assert [g.suspended for g in grants.list_grants(session)] == [True]
    with unit_of_work(engine) as session:
        assert departures.reactivate_user(session, "ana", actor=ROOT) == ["bot"]
    with unit_of_work(engine) as session:
        assert grants.authenticate(session, hasher, token)[1].owner == "ana"
        assert hold_live(session, 1)


def test_deactivation_ends_sessions_and_tokens_and_reactivation_gives_none_back(
    engine: Engine, hasher: TokenHasher, people: dict[str, str]
) -> None:
    with unit_of_work(engine) as session:
        token = users.new_api_token(session, hasher, "ana", name="laptop", actor=ROOT)
    generation = user_row(engine, "ana").session_generation
    departure = deactivate(engine, "ana")
    assert departure.tokens_revoked == 2  # the default token and the laptop's
    assert user_row(engine, "ana").session_generation == generation + 1
    with unit_of_work(engine) as session:
        with pytest.raises(Forbidden, match="deactivated"):
            users.authenticate_password(session, "ana", people["ana"])
        with pytest.raises(NotAuthenticated, match="wrong username or password"):
            users.authenticate_password(session, "ana", "a wrong guess")  # a stranger learns nothing
        with pytest.raises(NotAuthenticated):
            users.authenticate_token(session, hasher, token)
    with unit_of_work(engine) as session:
        departures.reactivate_user(session, "ana", actor=ROOT)
    with unit_of_work(engine) as session:
        assert users.authenticate_password(session, "ana", people["ana"]).username == "ana"
        with pytest.raises(NotAuthenticated, match="revoked"):
            users.authenticate_token(session, hasher, token)
    assert user_row(engine, "ana").session_generation == generation + 1  # old cookies stay dead


def test_an_admin_cannot_remove_themselves_or_the_last_active_admin(
    engine: Engine, hasher: TokenHasher, people: dict[str, str]
) -> None:
    for act in (departures.deactivate_user, departures.delete_user):
        with pytest.raises(Forbidden, match="yourself"), unit_of_work(engine) as session:
            act(session, "root", actor=ROOT)
        with pytest.raises(Conflict, match="last active admin"), unit_of_work(engine) as session:
            act(session, "root", actor="cli")
    assert user_row(engine, "root").disabled_at is None
    with unit_of_work(engine) as session:
        users.create_user(session, hasher, username="ops", role=Role.ADMIN, actor="t")
    deactivate(engine, "root", actor="user:ops")  # another admin remains active
    with pytest.raises(Conflict, match="last active admin"), unit_of_work(engine) as session:
        departures.delete_user(session, "ops", actor="cli")


def test_deletion_keeps_the_name_on_the_audit_log_and_the_grants_and_revokes_them(
    engine: Engine, hasher: TokenHasher, people: dict[str, str]
) -> None:
    pending, counters = held(engine, hasher, prompt="pending")
    decided, _ = held(engine, hasher, counters=counters, prompt="decided")
    decide(engine, decided, ANA)
    with unit_of_work(engine) as session:
        departure = departures.delete_user(session, "ana", actor=ROOT)
        dana = departures.delete_user(session, "dana", actor=ROOT)
    departure.settle(counters)
    dana.settle(counters)
    assert dana.grants == ["bot"]
    with unit_of_work(engine) as session:
        listed = grants.list_grants(session, include_revoked=True)
        assert [(g.name, g.owner, g.revoked) for g in listed] == [("bot", "dana", True)]
        approvals_by_ana = session.exec(select(AuditEvent).where(AuditEvent.action == "request.approved")).all()
        assert [(e.request_id, e.actor) for e in approvals_by_ana] == [(decided, "user:ana")]
        assert approvals.get(session, pending).status is RequestStatus.CANCELLED
        assert verify(session).ok  # nothing was removed from the chain
        assert [u.username for u in users.list_users(session)] == ["root"]
        with pytest.raises(NotFound):
            users.get_user(session, "ana")
        with pytest.raises(NotAuthenticated):
            users.authenticate_password(session, "ana", people["ana"])
    with pytest.raises(AlreadyExists, match="was deleted"), unit_of_work(engine) as session:
        users.create_user(session, hasher, username="ana", role=Role.VIEWER, actor="t")
    with pytest.raises(NotFound), unit_of_work(engine) as session:
        departures.reactivate_user(session, "ana", actor=ROOT)


def test_a_deactivation_listener_runs_in_the_same_transaction(
    engine: Engine, hasher: TokenHasher, people: dict[str, str]
) -> None:
    heard: list[tuple[str, str]] = []

    def fails_after_hearing(session: Session, user: User, actor: str) -> None:
        heard.append((user.username, actor))
        raise RuntimeError("the OAuth store is down")

    with listening(fails_after_hearing):
        with pytest.raises(RuntimeError):
            deactivate(engine, "ana")
    assert heard == [("ana", ROOT)]
    assert user_row(engine, "ana").disabled_at is None  # all or nothing: the deactivation rolled back with it
    with listening(lambda session, user, actor: heard.append((user.username, "again"))):
        deactivate(engine, "ana")
    assert heard[-1] == ("ana", "again")
    assert user_row(engine, "ana").disabled_at is not None


@contextmanager
def listening(listener: departures.DeactivationListener) -> Iterator[None]:
    departures.ON_DEACTIVATED.append(listener)
    try:
        yield
    finally:
        departures.ON_DEACTIVATED.remove(listener)


def test_an_admin_cannot_demote_themselves_or_the_last_active_admin(
    engine: Engine, hasher: TokenHasher, people: dict[str, str]
) -> None:
    with pytest.raises(Forbidden, match="cannot demote yourself"), unit_of_work(engine) as session:
        users.set_role(session, "root", Role.APPROVER, actor=ROOT)
    for role in (Role.APPROVER, Role.VIEWER):
        with pytest.raises(Conflict, match="last active admin"), unit_of_work(engine) as session:
            users.set_role(session, "root", role, actor="cli")
    assert user_row(engine, "root").role is Role.ADMIN
    with unit_of_work(engine) as session:
        users.set_role(session, "ana", Role.ADMIN, actor=ROOT)
    with unit_of_work(engine) as session:
        users.set_role(session, "root", Role.VIEWER, actor="user:ana")  # one of two admins: ana remains
    assert user_row(engine, "root").role is Role.VIEWER
    with pytest.raises(Conflict, match="ana is the last active admin"), unit_of_work(engine) as session:
        departures.deactivate_user(session, "ana", actor="cli")


def test_a_demotion_racing_a_deactivation_leaves_an_admin(
    engine: Engine, hasher: TokenHasher, people: dict[str, str]
) -> None:
    """ops deactivates root while root demotes ops: the demotion waits for the admins' lock, then finds ops the last
    active admin."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: the two never interleave")
    with unit_of_work(engine) as session:
        users.create_user(session, hasher, username="ops", role=Role.ADMIN, actor="t")
    outcome: list[BaseException | None] = []

    def root_demotes_ops() -> None:
        try:
            with unit_of_work(engine) as session:
                users.set_role(session, "ops", Role.APPROVER, actor=ROOT)
            outcome.append(None)
        except Conflict as exc:
            outcome.append(exc)

    thread = threading.Thread(target=root_demotes_ops)
    with unit_of_work(engine) as session:
        departures.deactivate_user(session, "root", actor="user:ops")
        thread.start()  # it waits for this transaction's lock on the admins
        wait_until_a_backend_waits_for_a_lock(engine)
    thread.join()
    assert [str(e) for e in outcome] == ["ops is the last active admin; make someone else an admin first"]
    assert (user_row(engine, "ops").role, user_row(engine, "ops").disabled_at) == (Role.ADMIN, None)


def test_a_deactivated_admin_does_not_count_as_the_admin_that_remains(
    engine: Engine, hasher: TokenHasher, people: dict[str, str]
) -> None:
    """A demoted admin and a deactivated one are both gone as admins: whichever step comes second is refused."""
    with unit_of_work(engine) as session:
        users.create_user(session, hasher, username="ops", role=Role.ADMIN, actor="t")
    deactivate(engine, "ops")
    with pytest.raises(Conflict, match="root is the last active admin"), unit_of_work(engine) as session:
        users.set_role(session, "root", Role.APPROVER, actor="user:ops")
