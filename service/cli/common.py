"""What every command shares: the --config option, the runtime it builds, and how data is printed."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from sqlalchemy import make_url

from service import log
from service.config import DEFAULT_CONFIG_FILE, DEFAULT_DATA_DIR, Settings, load_settings
from service.errors import NotFound
from service.runtime import Runtime

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file (default ./airlock.yaml; without one, the demo's data folder ./airlock-data).",
        dir_okay=False,
    ),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="The data folder of an install without a config file, as given to `airlock demo --data-dir`.",
        file_okay=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]

CLI_ACTOR = "cli"
logger = logging.getLogger("service.cli")


def cli_settings(config: Path | None, data_dir: Path | None = None) -> Settings:
    """The config file and the environment, with --data-dir over both (a flag is the most specific word)."""
    settings = load_settings(config)
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": data_dir})
    return settings


@contextmanager
def runtime(
    config: Path | None,
    settings: Settings | None = None,
    *,
    data_dir: Path | None = None,
    create: bool = False,
) -> Iterator[Runtime]:
    """`create`: the command may make a new SQLite database (it sets something up). Every other command works on an
    existing one, and stops with where it looked rather than read a new, empty database (then say nothing is there)."""
    settings = settings or cli_settings(config, data_dir)
    log.configure(settings.log_level)
    database = sqlite_file(settings)
    if database is not None and not create and not database.exists():
        raise NotFound(
            f"no Airlock database at {database.absolute()} ({_where_from(config, data_dir)}); "
            "pass --config FILE or --data-dir DIR (the one given to `airlock demo --data-dir`), "
            "or set AIRLOCK_DATA_DIR"
        )
    logger.info("database: %s", _shown(settings))
    rt = Runtime.build(settings)
    try:
        yield rt
    finally:
        rt.close()


def sqlite_file(settings: Settings) -> Path | None:
    if not settings.is_sqlite:
        return None
    name = make_url(settings.effective_database_url).database
    return None if name in (None, "", ":memory:") else Path(name)


def _where_from(config: Path | None, data_dir: Path | None) -> str:
    if data_dir is not None:
        return "from --data-dir"
    if config is not None:
        return f"from {config}"
    if os.environ.get("AIRLOCK_DATA_DIR") or os.environ.get("AIRLOCK_DATABASE_URL"):
        return "from the AIRLOCK_ environment"
    if DEFAULT_CONFIG_FILE.exists():
        return f"from ./{DEFAULT_CONFIG_FILE}"
    return f"the default, ./{DEFAULT_DATA_DIR}, as there is no ./{DEFAULT_CONFIG_FILE} here"


def _shown(settings: Settings) -> str:
    database = sqlite_file(settings)
    if database is not None:
        return f"SQLite {database.absolute()}"
    return make_url(settings.effective_database_url).render_as_string(hide_password=True)


def to_jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [to_jsonable(v) for v in value]
    return value


def print_json(value: Any) -> None:
    typer.echo(json.dumps(to_jsonable(value), ensure_ascii=False, indent=None, default=str))


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    if not rows:
        typer.echo("(none)")
        return
    widths = {c: max(len(c), *(len(str(r.get(c, "") if r.get(c) is not None else "-")) for r in rows)) for c in columns}
    typer.echo("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        cells = [str(row.get(c) if row.get(c) is not None else "-").ljust(widths[c]) for c in columns]
        typer.echo("  ".join(cells).rstrip())
