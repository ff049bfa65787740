"""The test databases are built by `alembic upgrade head`; here we check they match the models exactly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect
from sqlmodel import SQLModel

from alembic import command
from service.db.migrate import alembic_config, include_name, is_current


def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "include_name": include_name})
        assert compare_metadata(context, SQLModel.metadata) == []


def test_database_is_at_head(engine: Engine) -> None:
    assert is_current(alembic_config(str(engine.url)), engine.url.render_as_string(hide_password=False))


def test_downgrade_and_upgrade_again(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/round-trip.db"
    config = alembic_config(url)
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    from service.db.engine import make_engine

    engine = make_engine(url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    command.upgrade(config, "head")
    assert "audit_events" in inspect(engine).get_table_names()
    engine.dispose()


def test_sqlite_runs_in_wal_mode_with_normal_sync(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def test_replicas_starting_together_migrate_a_new_postgresql_database_once(pg_url: str) -> None:
    """Four processes run the migrations at the same moment, as replicas do at start: the advisory lock lets one
    build the schema while the others wait, then find it current. Without the lock, the others fail on tables
    that already exist."""
    import subprocess
    import sys

    import psycopg

    from tests.conftest import PG_ADMIN_URL

    name = f"{pg_url.rsplit('/', 1)[1]}_together"
    url = f"{pg_url.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        script = f"from service.db import migrate; migrate.upgrade({url!r})"
        processes = [subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE) for _ in range(4)]
        errors = [p.communicate(timeout=120)[1].decode() for p in processes]
        assert [p.returncode for p in processes] == [0, 0, 0, 0], errors
        assert is_current(alembic_config(url), url)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
