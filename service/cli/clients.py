"""`airlock clients`: MCP client configurations that work when pasted."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from service.cli.common import CLI_ACTOR, ConfigOption, DataDirOption, JsonOption, cli_settings, print_json, runtime
from service.config import Settings
from service.db.engine import unit_of_work
from service.errors import InvalidInput
from service.grants import service as grants
from service.grants.client_configs import as_text, client_configs


def mcp_url_of(settings: Settings) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/") + "/mcp"
    host = "127.0.0.1" if settings.listen.host in ("0.0.0.0", "::") else settings.listen.host  # noqa: S104
    return f"http://{host}:{settings.listen.port}/mcp"


def clients(
    token: Annotated[
        str | None, typer.Option(help="A grant's token (shown once, when the grant was made).", envvar="AIRLOCK_TOKEN")
    ] = None,
    new_grant: Annotated[
        str | None, typer.Option("--new-grant", help="Make a grant with this name and use its new token.")
    ] = None,
    owner: Annotated[str | None, typer.Option(help="With --new-grant: the user who owns the agent.")] = None,
    url: Annotated[str | None, typer.Option(help="The MCP endpoint (default: from public_url, else listen).")] = None,
    client: Annotated[
        str | None, typer.Option(help="Only this client: claude-desktop, claude-code, cursor or vscode.")
    ] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print ready-to-paste configurations for Claude Desktop, Claude Code, Cursor and VS Code.

    Grant tokens are stored hashed, so give --token, or --new-grant NAME; otherwise a marked placeholder stands in.
    """
    if token and new_grant:
        raise InvalidInput("give --token or --new-grant, not both")
    settings = cli_settings(config, data_dir)
    if new_grant:
        with runtime(config, settings, create=True) as rt, unit_of_work(rt.engine) as session:
            token = grants.create_grant(
                session,
                rt.hasher,
                name=new_grant,
                actor=CLI_ACTOR,
                owner=owner,
                known_upstreams=list(rt.settings.upstreams),
            ).token
        typer.echo(f"grant {new_grant} created; its token appears below and is shown this once", err=True)
    configs = client_configs(url or mcp_url_of(settings), token)
    if client is not None:
        configs = [c for c in configs if c.key == client]
        if not configs:
            raise InvalidInput(f"unknown client {client!r}: claude-desktop, claude-code, cursor or vscode")
    if as_json:
        print_json({c.key: c.text if c.key == "claude-code" else json.loads(c.text) for c in configs})
        return
    typer.echo(as_text(configs))
