"""What every command shares: the --config option, the runtime it builds, and how data is printed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel

from service import log
from service.config import Settings, load_settings
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
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]

CLI_ACTOR = "cli"


@contextmanager
def runtime(config: Path | None, settings: Settings | None = None) -> Iterator[Runtime]:
    settings = settings or load_settings(config)
    log.configure(settings.log_level)
    rt = Runtime.build(settings)
    try:
        yield rt
    finally:
        rt.close()


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
