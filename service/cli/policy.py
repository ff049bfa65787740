from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from service.cli.common import CLI_ACTOR, ConfigOption, DataDirOption, JsonOption, print_json, print_table, runtime
from service.config import load_settings
from service.counters import DryRunCounters
from service.db.engine import unit_of_work
from service.errors import InvalidInput, PolicyInvalid
from service.grants.service import grant_info
from service.policy import EstimatorRegistry, PolicyEngine, ToolCall, load_policy
from service.policy_versions import service

app = typer.Typer(help="Check, apply and try out policies.", no_args_is_help=True)

FileArgument = Annotated[
    Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="A policy file, YAML or JSON.")
]


@app.command("check")
def check(
    file: FileArgument, config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False
) -> None:
    """Validate a policy file: exit 0 when it loads, 2 with every problem when it does not."""
    settings = load_settings(config)
    registry = EstimatorRegistry.default(settings.prices)
    try:
        compiled = load_policy(service.read_policy_file(file), registry)
    except PolicyInvalid as exc:
        if as_json:
            print_json(
                {
                    "ok": False,
                    "problems": [{"path": p.path, "line": p.line, "message": p.message} for p in exc.problems],
                }
            )
        else:
            typer.echo(f"{file}: {len(exc.problems)} problem(s)")
            for problem in exc.problems:
                typer.echo(f"  {problem}")
        raise typer.Exit(2) from None
    if as_json:
        print_json({"ok": True, "problems": []})
    else:
        tools = len(compiled.exact) + len(compiled.globs)
        typer.echo(f"{file}: ok ({tools} tool rule(s), default {compiled.default})")


@app.command("apply")
def apply(
    file: FileArgument,
    comment: Annotated[str, typer.Option(help="Why the policy changes (required).")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Store the file as the new current policy version."""
    with runtime(config, data_dir=data_dir, create=True) as rt, unit_of_work(rt.engine) as session:
        version = service.apply(
            session,
            service.read_policy_file(file),
            rt.registry,
            origin="cli",
            actor=CLI_ACTOR,
            comment=comment,
        )
    typer.echo(f"policy version {version.id} is now in force")


@app.command("simulate")
def simulate(
    grant: Annotated[str, typer.Option(help="The grant's name.")],
    tool: Annotated[str, typer.Option(help="The tool name as the agent sees it.")],
    args: Annotated[str, typer.Option("--args", help="The arguments as a JSON object.")] = "{}",
    session_id: Annotated[
        str | None, typer.Option("--session", help="An MCP session id, for session-scoped limits.")
    ] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Decide a call without making it; prints one JSON object. Counters are read, never changed."""
    try:
        arguments: Any = json.loads(args)
    except ValueError as exc:
        raise InvalidInput(f"--args is not valid JSON: {exc}") from None
    if not isinstance(arguments, dict):
        raise InvalidInput("--args must be a JSON object")
    with runtime(config, data_dir=data_dir) as rt, unit_of_work(rt.engine) as session:
        policy, _version = service.compiled_current(session, rt.registry, rt.settings.policy)
        info = grant_info(session, grant)
        engine = PolicyEngine(policy, DryRunCounters(rt.counters))
        decision = engine.evaluate(ToolCall(info, tool, arguments, session_id=session_id))
    print_json(
        {
            "outcome": decision.outcome.value,
            "rule": decision.rule,
            "reason": decision.reason,
            "cost": {"usd": decision.cost_usd},
            "retry_after": decision.retry_after,
            "errors": list(decision.errors),
        }
    )


@app.command("history")
def history(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
    limit: Annotated[int, typer.Option(help="How many versions, newest first.")] = 20,
) -> None:
    """List policy versions: who made each, when, from where and why."""
    with runtime(config, data_dir=data_dir) as rt, unit_of_work(rt.engine) as session:
        versions = service.history(session, limit)
    rows = [
        {
            "version": v.id,
            "created_at": v.created_at.isoformat(timespec="seconds"),
            "by": v.created_by,
            "origin": v.origin,
            "comment": v.comment,
        }
        for v in versions
    ]
    if as_json:
        print_json(rows)
    else:
        print_table(rows, ["version", "created_at", "by", "origin", "comment"])


@app.command("show")
def show(
    version: Annotated[int | None, typer.Argument(help="A version number (default: the current one).")] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Print the source of the current (or a given) policy version."""
    with runtime(config, data_dir=data_dir) as rt, unit_of_work(rt.engine) as session:
        found = service.get(session, version) if version is not None else service.current(session)
    if found is None:
        raise InvalidInput("no policy version is stored yet")
    typer.echo(found.source, nl=not found.source.endswith("\n"))


@app.command("rollback")
def rollback(
    version: Annotated[int, typer.Argument(help="The version to make current again.")],
    comment: Annotated[str, typer.Option(help="Why (required).")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Make an earlier version current again (as a new version)."""
    with runtime(config, data_dir=data_dir) as rt, unit_of_work(rt.engine) as session:
        new = service.rollback(session, version, rt.registry, actor=CLI_ACTOR, comment=comment)
    typer.echo(f"policy version {new.id} (a copy of {version}) is now in force")
