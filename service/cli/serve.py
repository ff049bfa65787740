"""Commands that run Airlock: serve, demo, connect, demo-upstream."""

from __future__ import annotations

import contextlib
import shlex
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from service import log
from service.cli.clients import clients
from service.cli.common import ConfigOption
from service.config import DEFAULT_DATA_DIR, Settings, load_settings
from service.grants.client_configs import airlock_command, as_text, client_configs


def _run(settings: Settings) -> None:
    import uvicorn

    from service.app import create_app

    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.listen.host,
        port=settings.listen.port,
        forwarded_allow_ips=settings.listen.forwarded_allow_ips,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )

    class DrainingServer(uvicorn.Server):
        """On SIGTERM or Ctrl-C, held calls are answered first (a rolling restart cuts no agent off mid-wait)."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)  # first: whatever happens next, the signal is not lost
            app.drain()

    server = DrainingServer(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:  # as uvicorn.run does: a start-up that failed is a failed exit
        sys.exit(3)


def serve(config: ConfigOption = None) -> None:
    """Run the gateway with the configured upstreams, database and policy."""
    settings = load_settings(config)
    log.configure(settings.log_level)
    _run(settings)


def demo_settings(data_dir: Path, host: str, port: int) -> Settings:
    """The embedded default: SQLite in the data folder and the bundled offline image server over stdio."""
    upstream = {"command": sys.executable, "args": ["-m", "service.demo.upstream"], "env": {}}
    return load_settings(
        None,
        data_dir=str(data_dir),
        database_url=None,
        policy=None,
        upstreams={"imagegen": upstream},
        listen={"host": host, "port": port},
        public_url=f"http://{host}:{port}",
    )


def demo(
    data_dir: Annotated[Path, typer.Option(help="Where the demo keeps its SQLite database.")] = DEFAULT_DATA_DIR,
    host: Annotated[str, typer.Option(help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The port to listen on.")] = 8080,
) -> None:
    """Zero-config: SQLite in a data folder, the offline image server upstream and the demo policy."""
    from service.cli.common import runtime
    from service.db.engine import unit_of_work
    from service.demo import setup as demo_setup

    settings = demo_settings(data_dir, host, port)
    mcp_url = f"http://{host}:{port}/mcp"
    airlock = shlex.join(airlock_command())
    data = shlex.quote(str(Path(settings.data_dir).absolute()))
    with runtime(None, settings, create=True) as rt, unit_of_work(rt.engine) as session:
        creds = demo_setup.prepare(session, rt.hasher, rt.registry, Path(settings.data_dir), mcp_url)
    typer.echo(f"Airlock demo: MCP endpoint {mcp_url}")
    typer.echo(f"  agent grant token: {creds.grant_token}")
    typer.echo(f"  web UI:            {settings.public_url}/  (the queue, history and rules)")
    typer.echo(f"  admin login:       {creds.admin_user} / {creds.admin_password}")
    typer.echo(f"  everything above:  {Path(settings.data_dir).absolute() / demo_setup.CREDENTIALS_FILE}")
    typer.echo("  MCP client configs (again at any time: `airlock clients --token <grant token>`):")
    typer.echo(as_text(client_configs(mcp_url, creds.grant_token)))
    typer.echo("  Cheap images pass, over $0.10 are held, saving to server folders is denied.")
    typer.echo(f"  Decide held calls in the web UI, or with `{airlock} requests show R-1 --data-dir {data}`")
    typer.echo("  (every argument in full, and the digest an approval carries), then")
    typer.echo(
        f"  `{airlock} requests approve R-1 --as admin --digest DIGEST --data-dir {data}`, or through the REST API at"
    )
    typer.echo(f"  {settings.public_url}/api/requests with Authorization: Bearer <admin_api_token>. Ctrl-C stops.")
    _run(settings)


def connect(
    url: Annotated[str, typer.Option(help="The gateway's MCP endpoint, e.g. http://127.0.0.1:8080/mcp")],
    token: Annotated[str, typer.Option(help="The grant token.", envvar="AIRLOCK_TOKEN")],
) -> None:
    """A stdio MCP server that forwards to the gateway (for clients that only launch stdio servers)."""
    import anyio

    from service.gateway.bridge import run_bridge

    anyio.run(run_bridge, url, token)


def demo_upstream(
    http: Annotated[bool, typer.Option("--http", help="Serve streamable HTTP instead of stdio.")] = False,
    host: Annotated[str, typer.Option(help="The address to listen on, with --http.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The port to listen on, with --http.")] = 9000,
) -> None:
    """The bundled offline image server (image-gen-mcp's tools), over stdio unless --http."""
    import anyio

    from service.demo import upstream

    if http:
        upstream.serve_http(host, port)
    else:
        anyio.run(upstream.serve_stdio)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("demo")(demo)
    app.command("connect")(connect)
    app.command("clients")(clients)
    app.command("demo-upstream")(demo_upstream)
