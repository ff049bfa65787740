"""Running the Alembic migrations from the code (the service on start, the CLI, the tests)."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from alembic import command
from service.db.engine import make_engine, normalise_url

# A wheel carries the migrations as service/db/migrations/ (see setup.py); a checkout has their source, alembic/.
_PACKAGED = Path(__file__).resolve().with_name("migrations")
_CHECKOUT = Path(__file__).resolve().parents[2] / "alembic"

# Made by migration 0007 beyond what the models can describe: SQLite's FTS5 table for the history search (FTS5 keeps
# shadow tables beside it, named after it) and PostgreSQL's trigram indexes. A comparison of the models with a database
# (autogenerate, the migrations test) leaves them out.
_SEARCH_TABLE = "audit_search"
_SEARCH_INDEXES = frozenset({"ix_audit_events_tool_trgm", "ix_audit_events_reason_trgm"})


def include_name(name: str | None, type_: str, _parent_names: object) -> bool:
    if type_ == "table" and name is not None:
        return name != _SEARCH_TABLE and not name.startswith(_SEARCH_TABLE + "_")
    if type_ == "index":
        return name not in _SEARCH_INDEXES
    return True


def migrations_folder() -> Path:
    return _PACKAGED if (_PACKAGED / "env.py").is_file() else _CHECKOUT


def alembic_config(url: str) -> Config:
    """No alembic.ini: it is not in the wheel, and running the migrations needs nothing from it but this."""
    config = Config()
    config.set_main_option("script_location", str(migrations_folder()))
    config.attributes["url"] = normalise_url(url)
    return config


def upgrade(url: str) -> None:
    config = alembic_config(url)
    if is_current(config, url):
        return
    command.upgrade(config, "head")


def is_current(config: Config, url: str) -> bool:
    """Whether the database is already at head: a cheap check, so every CLI command can afford it."""
    heads = set(ScriptDirectory.from_config(config).get_heads())
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return set(MigrationContext.configure(connection).get_current_heads()) == heads
    finally:
        engine.dispose()
