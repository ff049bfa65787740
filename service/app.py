"""The Airlock process: one ASGI app serving MCP at /mcp, the REST API, the web UI, health, readiness and metrics.

Everything heavy (database engine, upstream children, the audit writer) is built in the lifespan, never at import.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from importlib.metadata import version as package_version
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from mcp.server.transport_security import TransportSecuritySettings
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import text
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import service.models  # noqa: F401  every table registered before the first session (docs: service/models.py)
from service.api.deps import StateDep
from service.approvals import endpoints as approvals_api
from service.approvals.channel import ApprovalChannel
from service.approvals.events import EventBus
from service.approvals.pending_cap import PendingCapCheck
from service.approvals.standing_cache import StandingCache
from service.approvals.sweeper import sweep_forever
from service.approvals.verdicts import Verdicts
from service.audit.writer import AuditWriter
from service.caches import ProcessCaches
from service.clock import SYSTEM_CLOCK, Clock
from service.config import Settings
from service.db.notify import changes_heard, listen_url
from service.edge import send_error
from service.errors import AirlockError, Unavailable
from service.gateway.direct import DirectCalls
from service.gateway.endpoints import MCP_PATH, McpEntry, build_mcp_server
from service.gateway.holds import HoldCoordinator
from service.gateway.pool import UpstreamPool
from service.gateway.sdk_compat import PerRequestSessionManager
from service.gateway.service import Gateway
from service.gateway.tasks import TaskRunner
from service.gateway.tasks_2025 import CoreTasks
from service.grants.cache import GrantCache
from service.metrics import Metrics
from service.oauth.client_metadata import MetadataDocuments
from service.oauth.gate import OAuthGate, OAuthTokenCache
from service.oauth.provider import AirlockOAuthProvider, ClientMetadataResolver
from service.oauth.registration import RegistrationLimit
from service.oauth.routes import oauth_routes
from service.oauth.schemas import Lifetimes
from service.oauth.sweeper import sweep_forever as sweep_oauth_forever
from service.policy_versions.holder import PolicyHolder
from service.replicas import ReplicaLink
from service.runtime import Runtime
from service.slack import endpoints as slack_api
from service.state import AppState
from webui import install as install_webui
from webui import on_start as start_webui

if TYPE_CHECKING:
    from service.slack.service import SlackChannel

log = logging.getLogger(__name__)


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """Host and Origin checks against DNS rebinding: loopback names always, plus public_url, oauth.issuer and
    allowed_hosts."""
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost"]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*", "http://127.0.0.1", "http://localhost"]
    listen_host = settings.listen.host
    if listen_host not in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::"):  # noqa: S104 - a comparison, not a bind
        hosts += [listen_host, f"{listen_host}:*"]
    # OAuth's issuer is the address connectors reach /mcp at (service/oauth/resources.py).
    for public_url in (settings.public_url, settings.oauth.issuer):
        if public_url:
            from urllib.parse import urlsplit

            public = urlsplit(public_url)
            if public.netloc:
                hosts.append(public.netloc)
                origins.append(f"{public.scheme}://{public.netloc}")
    for host in settings.allowed_hosts:
        hosts.append(host)
        origins += [f"http://{host}", f"https://{host}"]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


@asynccontextmanager
async def running(
    settings: Settings, oauth: AirlockOAuthProvider | None = None, clock: Clock = SYSTEM_CLOCK
) -> AsyncIterator[AppState]:
    """Build everything, start the upstreams and background tasks, and take it all down again. `clock`: what
    every part reads when time decides what it does (service/clock.py)."""
    runtime = await anyio.to_thread.run_sync(partial(Runtime.build, settings, serving=True, clock=clock))
    oauth_tokens, registrations = _attach_oauth(settings, oauth, runtime, clock)
    writer = AuditWriter(runtime.engine)
    try:  # from here on, a failed start-up still stops the runtime's threads (the WAL checkpointer, the writer)
        metrics = Metrics()
        writer.start()
        standing = StandingCache(runtime.engine)
        pool = UpstreamPool(settings.upstreams, call_timeout_seconds=settings.upstream_call_timeout.total_seconds())
        policy = PolicyHolder(
            runtime.engine,
            runtime.registry,
            runtime.counters,
            settings.policy,
            counters_fail_open=settings.counters.fail_open,
            standing_approvals=standing,
            pending_cap=PendingCapCheck(runtime.engine, settings.hold.pending_cap, settings.hold.replay_window),
            argument_check=pool.catalog,  # calls the policy may hold are checked against their tool's inputSchema
            clock=clock,
        )
        await anyio.to_thread.run_sync(policy.load)
        bus = EventBus()
        holds = HoldCoordinator(runtime.engine, bus, pool, policy, settings.hold, clock=clock)
        gateway = Gateway(pool, policy, writer, metrics, holds, standing)
        task_runner = TaskRunner(runtime.engine, bus, holds, settings.hold.result_retention.total_seconds())
        core_tasks = CoreTasks(task_runner, holds, settings.hold.result_retention.total_seconds())
        grants = GrantCache(runtime.engine, runtime.hasher)
        manager = PerRequestSessionManager(
            app=build_mcp_server(gateway, task_runner, core_tasks, version=_version()),
            security_settings=transport_security(settings),
            max_request_body_size=settings.max_request_bytes,
        )
        manager.session_prefix = f"{settings.replica_name}." if settings.replica_name else ""
        verdicts = Verdicts(
            runtime.engine,
            bus,
            validate_arguments=gateway.validate_arguments,
            counters=runtime.counters,
            policy=policy.current,
            clock=clock,
        )
        slack = _slack_channel(settings, runtime, verdicts, clock)
        channels: list[ApprovalChannel] = [slack] if slack is not None else []
        caches = ProcessCaches(grants, standing, policy, oauth_tokens)
        # A change committed in this process drops what the caches hold of it (service/caches.py).
        with changes_heard(runtime.engine, caches.changed_here):
            async with anyio.create_task_group() as tasks:
                for channel in channels:
                    bus.subscribe(channel.notify)
                    tasks.start_soon(channel.run)
                await pool.start(tasks)
                tasks.start_soon(policy.watch)
                _start_sweepers(tasks, runtime, bus, clock, oauth=oauth_tokens is not None)
                tasks.start_soon(task_runner.run_forever)
                replicas_url = listen_url(settings.effective_database_url)
                if replicas_url is not None:  # PostgreSQL tells us what other processes change
                    tasks.start_soon(ReplicaLink(replicas_url, bus, caches).run)
                else:  # SQLite: decisions from another process (the CLI) are found by polling
                    tasks.start_soon(holds.watch_other_processes)
                async with manager.run():
                    direct = DirectCalls(gateway, manager, transport_security(settings), clock=clock)
                    tasks.start_soon(direct.keep_streams_alive)
                    entry = McpEntry(
                        manager,
                        grants,
                        gateway,
                        direct,
                        max_body_bytes=settings.max_request_bytes,
                        fast_path=settings.fast_path,
                        oauth=OAuthGate(oauth_tokens, settings.oauth.issuer)
                        if oauth_tokens is not None and settings.oauth.issuer is not None
                        else None,
                    )
                    log.info("airlock ready on %s", MCP_PATH, extra={"upstreams": pool.names()})
                    yield AppState(runtime, pool, gateway, grants, metrics, writer, entry, bus, verdicts, slack, caches)
                tasks.cancel_scope.cancel()
    finally:
        writer.stop()
        if registrations is not None:
            registrations.close()
        runtime.close()


def _start_sweepers(tasks: TaskGroup, runtime: Runtime, bus: EventBus, clock: Clock, *, oauth: bool) -> None:
    """What expires by the persisted clock: held calls' deadlines and reminders, and OAuth's dead rows."""
    tasks.start_soon(partial(sweep_forever, runtime.engine, bus, runtime.counters, clock=clock))
    if oauth:
        tasks.start_soon(partial(sweep_oauth_forever, runtime.engine, clock=clock))


def _attach_oauth(
    settings: Settings, oauth: AirlockOAuthProvider | None, runtime: Runtime, clock: Clock
) -> tuple[OAuthTokenCache | None, RegistrationLimit | None]:
    """OAuth's parts that need the database or Redis, when OAuth is on: the gateway's token cache and the bound on
    registrations (both on the app's clock)."""
    if oauth is None or settings.oauth.issuer is None:
        return None, None
    registrations = RegistrationLimit.build(
        settings.oauth, redis_url=settings.redis_url, redis_prefix=settings.counters.redis_prefix + "oauth", clock=clock
    )
    oauth.attach(runtime.engine, runtime.hasher, registrations)
    return OAuthTokenCache(runtime.engine, runtime.hasher, clock), registrations


def _slack_channel(settings: Settings, runtime: Runtime, verdicts: Verdicts, clock: Clock) -> SlackChannel | None:
    if not settings.slack.enabled:
        if settings.slack.signing_secret or settings.slack.app_token:
            log.warning("Slack is off: slack.bot_token is not set")
        return None
    from service.slack.service import SlackChannel  # slack-sdk is loaded only when Slack is configured

    return SlackChannel(
        settings.slack,
        db=runtime.engine,
        public_url=settings.public_url or f"http://{settings.listen.host}:{settings.listen.port}",
        verdicts=verdicts,
        clock=clock,
    )


class AirlockApp:
    """The whole process as one ASGI app. MCP requests skip FastAPI's routing: they are the hot path."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock = SYSTEM_CLOCK,
        *,
        client_metadata: ClientMetadataResolver | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._state: AppState | None = None
        self._serving: AppState | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        issuer = settings.oauth.issuer
        self._oauth = (
            AirlockOAuthProvider(
                issuer,
                Lifetimes.of(settings.oauth),
                client_metadata or MetadataDocuments(settings.oauth.client_metadata, clock),
                clock,
            )
            if issuer is not None
            else None
        )
        self.api = _build_api(self._lifespan, oauth_routes(self._oauth) if self._oauth is not None else [])

    @property
    def state(self) -> AppState:
        """The state built at start-up (for tests and the demo command); it stays readable after shutdown, as a
        stopped process's database and settings."""
        if self._state is None:
            raise RuntimeError("Airlock has not started")
        return self._state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan_without_traceback(self.api, scope, receive, send)
            return
        if scope["type"] == "http":
            path: str = scope["path"]
            if path == MCP_PATH or path.startswith(MCP_PATH + "/"):
                if self._serving is None:
                    await send_error(send, Unavailable("Airlock is starting"))
                    return
                await self._serving.mcp(scope, receive, send)
                return
        await self.api(scope, receive, send)

    def drain(self) -> None:
        """Shutdown begins (called from the signal handler, so it only schedules): held calls get their pending
        answer while uvicorn still lets their responses finish."""
        if self._serving is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._serving.gateway.holds.drain)

    @asynccontextmanager
    async def _lifespan(self, api: FastAPI) -> AsyncIterator[None]:
        async with running(self._settings, self._oauth, self._clock) as state:
            self._state = self._serving = state
            self._loop = asyncio.get_running_loop()
            api.state.airlock = state
            start_webui(api, state)
            try:
                yield
            finally:
                self._serving = None


def create_app(
    settings: Settings, *, clock: Clock = SYSTEM_CLOCK, client_metadata: ClientMetadataResolver | None = None
) -> AirlockApp:
    """`clock`: a test passes one it moves (tests/clock.py); production runs on the system's. `client_metadata`
    resolves OAuth client_ids that are https URLs (Client ID Metadata Documents); by default they are fetched as
    `oauth.client_metadata` says."""
    return AirlockApp(settings, clock, client_metadata=client_metadata)


def _build_api(
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]], oauth: Sequence[BaseRoute] = ()
) -> FastAPI:
    api = FastAPI(title="Airlock", version=_version(), lifespan=lifespan)
    api.include_router(approvals_api.router)
    api.include_router(slack_api.router)
    api.router.routes.extend(oauth)  # the SDK's OAuth handlers, when OAuth is configured (service/oauth/routes.py)

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz")
    async def readyz(state: StateDep) -> Response:
        database = await anyio.to_thread.run_sync(_database_ok, state.runtime)
        upstreams = {name: c.state.connected for name, c in state.pool.connections.items()}
        ready = database and all(upstreams.values())
        body = {"ready": ready, "database": database, "upstreams": upstreams}
        return JSONResponse(body, status_code=200 if ready else 503)

    @api.get("/metrics")
    async def metrics(state: StateDep) -> Response:
        for name, connection in state.pool.connections.items():
            state.metrics.upstream_up.labels(name).set(1 if connection.state.connected else 0)
            state.metrics.upstream_restarts.labels(name).set(connection.state.restarts)
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # After the API's routes: the web UI's pages live under /. It installs the one set of error handlers, which
    # answer the API and Slack's callbacks in JSON and people with pages.
    install_webui(api)
    return api


async def _lifespan_without_traceback(api: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """A start-up refused for a reason we know (a config error such as a tool-name clash between upstreams)
    is one clear log line, not a traceback: that is what a traceback in the log would wrongly suggest."""

    async def send_clean(message: Message) -> None:
        if message["type"] == "lifespan.startup.failed":
            lines = [line for line in str(message.get("message", "")).splitlines() if line.strip()]
            message = {**message, "message": lines[-1] if lines else "start-up failed"}
        await send(message)

    try:
        await api(scope, receive, send_clean)
    except AirlockError as exc:
        log.error("start-up refused: %s", exc.message)


def _database_ok(runtime: Runtime) -> bool:
    try:
        with runtime.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:  # any failure means not ready; the reason is in the log
        log.warning("readiness: database unreachable", exc_info=True)
        return False
    return True


def _version() -> str:
    try:
        return package_version("airlock")
    except Exception:  # running from a source tree without metadata
        return "0.0.0"
