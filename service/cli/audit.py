from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from service.audit import service
from service.cli.common import CLI_ACTOR, ConfigOption, DataDirOption, JsonOption, print_json, runtime
from service.db.engine import unit_of_work
from service.times import parse_instant

app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


@app.command("verify")
def verify(config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Check every link of the chain; exit 1 when a row was edited or deleted."""
    with runtime(config, data_dir=data_dir) as rt, unit_of_work(rt.engine) as session:
        report = service.verify(session)
    if as_json:
        print_json(report.__dict__)
    elif report.ok:
        typer.echo(f"ok: {report.checked} events verified (head {report.head_seq})")
    else:
        typer.echo(f"BROKEN: {report.problem} ({report.checked} events verified before it)")
    if not report.ok:
        raise typer.Exit(1)


@app.command("export")
def export(
    since: Annotated[str | None, typer.Option(help="From this date or time (UTC unless given).")] = None,
    until: Annotated[str | None, typer.Option(help="Up to (not including) this date or time.")] = None,
    format_: Annotated[ExportFormat, typer.Option("--format", help="jsonl or csv.")] = ExportFormat.jsonl,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Stream events to stdout as JSON lines or CSV."""
    start, end = parse_instant(since, "--since"), parse_instant(until, "--until")
    with runtime(config, data_dir=data_dir) as rt, unit_of_work(rt.engine) as session:
        for chunk in service.export(session, since=start, until=end, fmt=format_.value):
            typer.echo(chunk, nl=False)


@app.command("purge")
def purge(
    before: Annotated[str, typer.Option(help="Delete events older than this date or time.")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Delete old events; the hash at the cut is kept so `verify` still proves the rest."""
    cut = parse_instant(before, "--before")
    assert cut is not None
    with runtime(config, data_dir=data_dir) as rt, unit_of_work(rt.engine) as session:
        deleted = service.purge(session, cut, actor=CLI_ACTOR)
    typer.echo(f"{deleted} events purged")
