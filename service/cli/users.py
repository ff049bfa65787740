from __future__ import annotations

from typing import Annotated

import typer

from service.cli.common import CLI_ACTOR, ConfigOption, DataDirOption, JsonOption, print_json, print_table, runtime
from service.db.engine import unit_of_work
from service.users import departures, service

app = typer.Typer(help="People who approve, review and configure.", no_args_is_help=True)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The username, unique.")],
    role: Annotated[str, typer.Option(help="admin, approver or viewer.")],
    slack_user: Annotated[str | None, typer.Option(help="Their Slack user id, e.g. U024BE7LH.")] = None,
    email: Annotated[str | None, typer.Option(help="Their e-mail (matched to Slack with slack.match_email).")] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a user; prints a generated password and API token (shown once)."""
    parsed_role = service.parse_role(role)
    with runtime(config, data_dir=data_dir, create=True) as rt, unit_of_work(rt.engine) as session:
        created = service.create_user(
            session,
            rt.hasher,
            username=name,
            role=parsed_role,
            actor=CLI_ACTOR,
            slack_user_id=slack_user,
            email=email,
        )
    if as_json:
        print_json(created)
        return
    typer.echo(f"user {created.username} ({created.role.value}) created")
    typer.echo(f"password:  {created.password}")
    typer.echo(f"api token: {created.api_token}")


@app.command("list")
def list_(config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """List users: role, Slack user id and state."""
    with runtime(config, data_dir=data_dir) as rt, unit_of_work(rt.engine) as session:
        users = service.list_users(session)
    if as_json:
        print_json(users)
        return
    rows = [
        {
            "username": u.username,
            "role": u.role.value,
            "slack": u.slack_user_id,
            "state": "deactivated" if u.disabled else "active",
        }
        for u in users
    ]
    print_table(rows, ["username", "role", "slack", "state"])


@app.command("deactivate")
def deactivate(
    name: Annotated[str, typer.Argument(help="The user to deactivate.")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Cut a person off: sessions, API tokens and standing approvals end; their grants are suspended."""
    with runtime(config, data_dir=data_dir) as rt:
        with unit_of_work(rt.engine) as session:
            departure = departures.deactivate_user(session, name, actor=CLI_ACTOR)
        departure.settle(rt.counters)  # committed: the cancelled calls' budgets go back
    typer.echo(f"user {name} deactivated" + _what_ended(departure, "suspended"))


@app.command("reactivate")
def reactivate(
    name: Annotated[str, typer.Argument(help="The user to reactivate.")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Let a deactivated person sign in again and restore their grants (not their sessions or API tokens)."""
    with runtime(config, data_dir=data_dir) as rt, unit_of_work(rt.engine) as session:
        restored = departures.reactivate_user(session, name, actor=CLI_ACTOR)
    typer.echo(f"user {name} reactivated" + (f"; grants restored: {', '.join(restored)}" if restored else ""))


@app.command("delete")
def delete(
    name: Annotated[str, typer.Argument(help="The user to delete.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Delete a person: deactivated, their grants revoked; their past decisions stay in the audit log by name."""
    if not yes:
        typer.confirm(f"Delete {name} and revoke every grant they own?", abort=True, err=True)
    with runtime(config, data_dir=data_dir) as rt:
        with unit_of_work(rt.engine) as session:
            departure = departures.delete_user(session, name, actor=CLI_ACTOR)
        departure.settle(rt.counters)
    typer.echo(f"user {name} deleted" + _what_ended(departure, "revoked"))


def _what_ended(departure: departures.Departure, grants_were: str) -> str:
    parts = []
    if departure.grants:
        parts.append(f"grants {grants_were}: {', '.join(departure.grants)}")
    if departure.cancellation.cancelled:
        parts.append(f"{len(departure.cancellation.cancelled)} call(s) that had not run were cancelled")
    if departure.tokens_revoked:
        parts.append(f"{departure.tokens_revoked} API token(s) revoked")
    if departure.standing_ended:
        parts.append(f"{departure.standing_ended} standing approval(s) ended")
    return "; " + "; ".join(parts) if parts else ""
