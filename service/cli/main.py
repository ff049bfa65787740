"""The `airlock` command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from service.cli import audit, grants, policy, users
from service.cli.common import ConfigOption, runtime
from service.config import DEFAULT_DATA_DIR, load_settings
from service.db import migrate
from service.db.engine import unit_of_work
from service.demo import setup as demo_setup
from service.errors import AirlockError, Unavailable
from service.grants.service import grant_info
from service.policy import DryRunCounters, PolicyEngine, ToolCall
from service.policy_versions import service as policy_versions

app = typer.Typer(
    help="Airlock: an MCP gateway with a human in the loop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(grants.app, name="grants")
app.add_typer(users.app, name="users")
app.add_typer(policy.app, name="policy")
app.add_typer(audit.app, name="audit")

db_app = typer.Typer(help="The database.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Run the migrations (SQLite databases are migrated by every command; PostgreSQL only by this one)."""
    settings = load_settings(config)
    if settings.is_sqlite:
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    try:
        migrate.upgrade(settings.effective_database_url)
    except Exception as exc:  # alembic wraps driver errors in many types; one clear line is what a user needs
        raise Unavailable(f"migration failed: {str(exc).strip().splitlines()[0]}") from exc
    typer.echo("database is at the newest schema")


DEMO_CALLS: list[tuple[str, str, dict[str, Any]]] = [
    (
        "a cheap draft image",
        "generate_image",
        {"prompt": "a lighthouse at dawn", "provider": "openai", "model": "gpt-image-1", "quality": "draft"},
    ),
    (
        "four high-quality portraits",
        "generate_image",
        {
            "prompt": "a lighthouse at dawn",
            "provider": "openai",
            "model": "gpt-image-1",
            "n": 4,
            "orientation": "portrait",
        },
    ),
    (
        "saving into a server folder",
        "generate_image",
        {"prompt": "x", "provider": "openai", "model": "dall-e-3", "directory": "/etc"},
    ),
    ("a tool the policy does not list", "delete_everything", {}),
]


@app.command("demo")
def demo(
    data_dir: Annotated[Path, typer.Option(help="Where the demo keeps its SQLite database.")] = DEFAULT_DATA_DIR,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8080,
) -> None:
    """Zero-config: SQLite in a data folder, the demo policy, an admin and a demo agent's grant."""
    settings = load_settings(None, data_dir=str(data_dir), database_url=None, policy=None)
    with runtime(None, settings) as rt:
        mcp_url = f"http://{host}:{port}/mcp"
        with unit_of_work(rt.engine) as session:
            creds = demo_setup.prepare(session, rt.hasher, rt.registry, Path(settings.data_dir), mcp_url)
        typer.echo(f"Airlock demo data is ready in {settings.data_dir}/ ({demo_setup.CREDENTIALS_FILE} has it all)")
        typer.echo(f"  admin login:  {creds.admin_user} / {creds.admin_password}")
        typer.echo(f"  agent grant:  {demo_setup.DEMO_GRANT} (token in the credentials file)")
        typer.echo("\nWhat the demo policy decides (simulated; counters untouched):")
        with unit_of_work(rt.engine) as session:
            compiled, _ = policy_versions.compiled_current(session, rt.registry, None)
            info = grant_info(session, demo_setup.DEMO_GRANT)
        engine = PolicyEngine(compiled, DryRunCounters(rt.counters))
        for label, tool, arguments in DEMO_CALLS:
            decision = engine.decide(ToolCall(info, tool, arguments))
            cost = f"${decision.cost_usd:.3f}" if decision.cost_usd is not None else "n/a"
            typer.echo(f"  {label:34} -> {decision.outcome.value:5}  cost {cost:7}  {decision.rule}")
            if decision.reason:
                typer.echo(f"  {'':34}    {decision.reason}")


def main() -> None:
    try:
        app()
    except AirlockError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(1 if isinstance(exc, Unavailable) else 2)
