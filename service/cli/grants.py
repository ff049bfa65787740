from __future__ import annotations

from typing import Annotated

import typer

from service.cli.common import CLI_ACTOR, ConfigOption, DataDirOption, JsonOption, print_json, print_table, runtime
from service.db.engine import unit_of_work
from service.errors import InvalidInput
from service.grants import service

app = typer.Typer(help="Agents' credentials.", no_args_is_help=True)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The grant's name, unique.")],
    owner: Annotated[str | None, typer.Option(help="The user who owns this agent.")] = None,
    label: Annotated[list[str] | None, typer.Option(help="key=value, repeatable.")] = None,
    upstream: Annotated[
        list[str] | None, typer.Option(help="An upstream it may reach, repeatable (default: all).")
    ] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a grant and print its bearer token, once, as the last line."""
    labels = service.parse_labels(label or [])
    with runtime(config, data_dir=data_dir, create=True) as rt, unit_of_work(rt.engine) as session:
        created = service.create_grant(
            session,
            rt.hasher,
            name=name,
            actor=CLI_ACTOR,
            owner=owner,
            labels=labels,
            upstreams=upstream,
            known_upstreams=list(rt.settings.upstreams),
        )
    if as_json:
        print_json(created)
        return
    typer.echo(f"grant {created.name} created; its token is shown this once:")
    typer.echo(created.token)


@app.command("list")
def list_(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
    all_: Annotated[bool, typer.Option("--all", help="Include revoked grants.")] = False,
) -> None:
    """List grants: owner, labels, upstreams, token prefix and state."""
    with runtime(config, data_dir=data_dir) as rt, unit_of_work(rt.engine) as session:
        grants = service.list_grants(session, include_revoked=all_)
    if as_json:
        print_json(grants)
        return
    rows = [
        {
            "name": g.name,
            "owner": g.owner,
            "labels": ",".join(f"{k}={v}" for k, v in g.labels.items()) or None,
            "upstreams": "all" if g.upstreams is None else ",".join(g.upstreams) or "none",
            "token": g.token_prefix + "…",
            "state": "revoked" if g.revoked else "active",
        }
        for g in grants
    ]
    print_table(rows, ["name", "owner", "labels", "upstreams", "token", "state"])


@app.command("reach")
def reach(
    name: Annotated[str, typer.Argument(help="The grant.")],
    upstream: Annotated[list[str] | None, typer.Option(help="An upstream it may reach, repeatable.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every upstream, present and future.")] = False,
    none: Annotated[bool, typer.Option("--none", help="No upstream at all.")] = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Set the upstreams a grant reaches (a grant made at OAuth consent reaches none until this)."""
    if sum((bool(upstream), every, none)) != 1:
        raise InvalidInput("give --upstream (repeatable), --all or --none")
    chosen = None if every else [] if none else list(upstream or [])
    with runtime(config, data_dir=data_dir) as rt, unit_of_work(rt.engine) as session:
        service.set_upstreams(session, name, chosen, actor=CLI_ACTOR, known_upstreams=list(rt.settings.upstreams))
    typer.echo(f"grant {name} reaches " + ("every upstream" if chosen is None else ", ".join(chosen) or "no upstream"))


@app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="The grant to revoke.")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Revoke a grant; its calls that have not run yet are cancelled."""
    with runtime(config, data_dir=data_dir) as rt:
        with unit_of_work(rt.engine) as session:
            cancellation = service.revoke_grant(session, name, actor=CLI_ACTOR)
        # Committed: the cancelled calls can no longer run, so their budgets go back (a running gateway hears of
        # the cancels through the database).
        cancellation.settle(rt.counters)
    count = len(cancellation.cancelled)
    typer.echo(f"grant {name} revoked" + (f"; {count} call(s) that had not run were cancelled" if count else ""))
