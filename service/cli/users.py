from __future__ import annotations

from typing import Annotated

import typer

from service.cli.common import CLI_ACTOR, ConfigOption, DataDirOption, JsonOption, print_json, print_table, runtime
from service.db.engine import unit_of_work
from service.users import service

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
            "state": "disabled" if u.disabled else "active",
        }
        for u in users
    ]
    print_table(rows, ["username", "role", "slack", "state"])
