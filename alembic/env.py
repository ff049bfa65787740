"""Alembic environment: migrates the database the caller hands in, or the one the Airlock config names."""

from __future__ import annotations

from sqlalchemy import Connection, text

from alembic import context
from service.db.engine import make_engine
from service.db.migrate import include_name
from service.models import metadata

target_metadata = metadata

# Any number stays the same across replicas; it only has to be the same for everyone migrating this database.
_MIGRATION_LOCK = 0x41_49_52_4C  # "AIRL"


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=include_name,
    )
    if connection.dialect.name == "postgresql":
        # Several replicas may start at once: one migrates, the others wait and then find nothing to do.
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK})
    try:
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK})
            connection.commit()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.attributes.get("url") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        from service.config import load_settings

        url = load_settings().effective_database_url
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `airlock db upgrade`")
run_migrations_online()
