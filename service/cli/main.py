"""The `airlock` command."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from service.cli import audit, grants, policy, requests, serve, users
from service.cli.common import ConfigOption, DataDirOption, cli_settings
from service.db import migrate
from service.db.files import private_folder
from service.errors import AirlockError, Unavailable

app = typer.Typer(
    help="Airlock: an MCP gateway with a human in the loop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain click help: typer's rich panels print a "<bool>" type beside every flag, --help included.
    rich_markup_mode=None,
)
app.add_typer(grants.app, name="grants")
app.add_typer(users.app, name="users")
app.add_typer(policy.app, name="policy")
app.add_typer(audit.app, name="audit")
app.add_typer(requests.app, name="requests")
serve.register(app)

db_app = typer.Typer(help="The database.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Create the database or bring it to the newest schema (other commands migrate an existing SQLite database
    themselves; PostgreSQL is migrated only by this one)."""
    settings = cli_settings(config, data_dir)
    if settings.is_sqlite:
        private_folder(Path(settings.data_dir))
    try:
        migrate.upgrade(settings.effective_database_url)
    except Exception as exc:  # alembic wraps driver errors in many types; one clear line is what a user needs
        raise Unavailable(f"migration failed: {str(exc).strip().splitlines()[0]}") from exc
    typer.echo("database is at the newest schema")


def main() -> None:
    try:
        app()
    except AirlockError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(1 if isinstance(exc, Unavailable) else 2)


if __name__ == "__main__":  # `python -m service.cli.main`, where no `airlock` script is installed
    main()
