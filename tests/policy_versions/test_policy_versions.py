from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from service.counters import MemoryCounters
from service.db.engine import unit_of_work
from service.errors import InvalidInput, PolicyInvalid
from service.policy import EstimatorRegistry, Outcome, PolicyEngine
from service.policy_versions import service
from tests.policy.helpers import call

REGISTRY = EstimatorRegistry.default()
ALLOW_X = 'version: "1"\ndefault: deny\ntools:\n  x: {}\n'
ALLOW_Y = 'version: "1"\ndefault: deny\ntools:\n  y: {}\n'


def decide(engine: Engine, tool: str, policy_file: Path | None = None) -> Outcome:
    with Session(engine) as session:
        compiled, _ = service.compiled_current(session, REGISTRY, policy_file)
    return PolicyEngine(compiled, MemoryCounters()).evaluate(call(tool)).outcome


def test_the_file_is_imported_only_when_its_digest_changes(engine: Engine, tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(ALLOW_X)
    with unit_of_work(engine) as session:
        first = service.import_file_if_changed(session, policy_file, REGISTRY)
        again = service.import_file_if_changed(session, policy_file, REGISTRY)
    assert first is not None and again is None
    assert decide(engine, "x") is Outcome.ALLOW


def test_a_web_edit_survives_a_restart_until_the_file_changes(engine: Engine, tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(ALLOW_X)
    with unit_of_work(engine) as session:
        service.import_file_if_changed(session, policy_file, REGISTRY)
        service.apply(session, ALLOW_Y, REGISTRY, origin="web", actor="ana", comment="switch to y")
    with unit_of_work(engine) as session:  # a restart imports the unchanged file: nothing happens
        assert service.import_file_if_changed(session, policy_file, REGISTRY) is None
    assert decide(engine, "y") is Outcome.ALLOW
    policy_file.write_text(ALLOW_X + "  z: {}\n")
    with unit_of_work(engine) as session:
        assert service.import_file_if_changed(session, policy_file, REGISTRY) is not None
    assert decide(engine, "z") is Outcome.ALLOW
    assert decide(engine, "y") is Outcome.DENY


def test_a_refused_policy_is_not_stored_and_the_current_one_stays(engine: Engine) -> None:
    with unit_of_work(engine) as session:
        service.apply(session, ALLOW_X, REGISTRY, origin="cli", actor="ana", comment="first")
    with pytest.raises(PolicyInvalid), unit_of_work(engine) as session:
        service.apply(
            session, 'version: "1"\ntools: {x: {colour: red}}\n', REGISTRY, origin="cli", actor="ana", comment="bad"
        )
    with Session(engine) as session:
        assert len(service.history(session)) == 1
    assert decide(engine, "x") is Outcome.ALLOW


def test_every_change_needs_a_comment(engine: Engine) -> None:
    with pytest.raises(InvalidInput, match="comment"), unit_of_work(engine) as session:
        service.apply(session, ALLOW_X, REGISTRY, origin="web", actor="ana", comment="  ")


def test_rollback_makes_a_new_version_with_the_old_text(engine: Engine) -> None:
    with unit_of_work(engine) as session:
        v1 = service.apply(session, ALLOW_X, REGISTRY, origin="cli", actor="ana", comment="x")
        service.apply(session, ALLOW_Y, REGISTRY, origin="cli", actor="ana", comment="y")
        assert v1.id is not None
        v3 = service.rollback(session, v1.id, REGISTRY, actor="ana", comment="back to x")
    assert (v3.origin, v3.source) == ("rollback", ALLOW_X)
    assert decide(engine, "x") is Outcome.ALLOW
    assert "-  y: {}" in service.diff(ALLOW_Y, ALLOW_X) and "+  x: {}" in service.diff(ALLOW_Y, ALLOW_X)


def test_the_file_is_used_while_nothing_is_stored(engine: Engine, tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(ALLOW_Y)
    assert decide(engine, "y", policy_file) is Outcome.ALLOW
    with pytest.raises(InvalidInput, match="no policy"):
        decide(engine, "y", None)
