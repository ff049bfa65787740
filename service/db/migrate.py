"""Running the Alembic migrations from the code (the service on start, the CLI, the tests)."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from alembic import command
from service.db.engine import make_engine, normalise_url

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def alembic_config(url: str) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
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
