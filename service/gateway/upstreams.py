"""Connections to upstream MCP servers: stdio children (restarted with backoff when they die, their stderr in
our log) and streamable HTTP URLs. Each connection is owned by one task, which is what anyio needs of the SDK's
client context; callers only ever see `call`, `list_*` and `read`/`get`.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from service.config import UpstreamConfig
from service.gateway.catalog import normalise_schema
from service.gateway.protocol import ProgressRelay
from service.gateway.relay import CallTap, RelayedResult, UpstreamGone, UpstreamUnavailable
from service.gateway.sdk_compat import raw_request

__all__ = ["ProgressRelay", "UpstreamConnection", "UpstreamState", "UpstreamUnavailable"]

log = logging.getLogger(__name__)

_HEALTH_INTERVAL_SECONDS = 5.0
_BACKOFF_FIRST_SECONDS = 0.5
_BACKOFF_MAX_SECONDS = 30.0


@dataclass
class UpstreamState:
    name: str
    connected: bool = False
    restarts: int = 0
    last_error: str | None = None
    tools: list[types.Tool] = field(default_factory=list)
    resources: bool = False
    prompts: bool = False


def _stderr_pipe(name: str) -> io.TextIOWrapper:
    """A file the child writes its stderr to; a thread turns each line into a log record of ours."""
    read_fd, write_fd = os.pipe()
    child_log = logging.getLogger(f"airlock.upstream.{name}")

    def pump() -> None:
        with os.fdopen(read_fd, "r", encoding="utf-8", errors="replace") as reader:
            for line in reader:
                if line.strip():
                    child_log.info(line.rstrip(), extra={"upstream": name, "stream": "stderr"})

    threading.Thread(target=pump, name=f"stderr-{name}", daemon=True).start()
    return os.fdopen(write_fd, "w", encoding="utf-8")


class UpstreamConnection:
    def __init__(
        self,
        name: str,
        config: UpstreamConfig,
        *,
        on_tools_changed: Callable[[], None] = lambda: None,
        call_timeout_seconds: float = 300.0,
    ) -> None:
        self.name = name
        self.config = config
        self.state = UpstreamState(name)
        self._client: Client | None = None
        self._tap: CallTap | None = None
        self._opened_tap: CallTap | None = None
        self._version = "2025-11-25"
        """The protocol version the upstream settled on; known once connected."""
        self._ready = anyio.Event()
        self._broken = anyio.Event()
        self._on_tools_changed = on_tools_changed
        self.call_timeout_seconds = call_timeout_seconds

    # -- the owning task --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, watch, reconnect with backoff; runs until cancelled."""
        backoff = _BACKOFF_FIRST_SECONDS
        while True:
            started = time.monotonic()
            try:
                async with AsyncExitStack() as stack:
                    client = await stack.enter_async_context(self._client_for(stack))
                    await self._on_connected(client)
                    await self._watch(client)
            except anyio.get_cancelled_exc_class():
                self._mark_down("shutting down")
                raise
            except Exception as exc:  # any failure of a child or a remote server is reported, then retried
                self._mark_down(_describe(exc))
                log.warning("upstream %s is down: %s", self.name, self.state.last_error, extra={"upstream": self.name})
            else:
                self._mark_down("connection closed")
            if time.monotonic() - started > 60:
                backoff = _BACKOFF_FIRST_SECONDS
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX_SECONDS)
            self.state.restarts += 1

    def _client_for(self, stack: AsyncExitStack) -> Client:
        config = self.config
        if config.command is not None:
            errlog = stack.enter_context(_stderr_pipe(self.name))
            params = StdioServerParameters(
                command=config.command, args=config.args, env=config.env or None, cwd=config.cwd
            )
            return Client(self._tapped(stdio_client(params, errlog=errlog)), mode="legacy", cache=None)
        assert config.url is not None
        http = httpx2.AsyncClient(headers=config.headers, timeout=httpx2.Timeout(30.0, read=self.call_timeout_seconds))
        stack.push_async_callback(http.aclose)
        return Client(self._tapped(streamable_http_client(config.url, http_client=http)), mode="legacy", cache=None)

    @asynccontextmanager
    async def _tapped(self, transport: AbstractAsyncContextManager[Any]) -> AsyncIterator[tuple[Any, Any]]:
        """The SDK's transport with our tap on its read side (relay.py): tool calls skip the SDK's session."""
        async with transport as (read_stream, write_stream):
            tap = self._opened_tap = CallTap(read_stream, write_stream, on_close=self._stream_ended)
            try:
                yield tap, write_stream
            finally:
                tap.close("the connection closed")

    def _stream_ended(self) -> None:
        # The transport's stream ending is the connection ending: the owning task need not wait for a ping to
        # notice. Looked up here, not bound earlier: each connection gets its own event.
        self._broken.set()

    async def _on_connected(self, client: Client) -> None:
        capabilities = client.server_capabilities
        tools = await self._all_tools(client)
        self._client = client
        self._tap = self._opened_tap
        self._version = client.session.protocol_version or "2025-11-25"
        self._broken = anyio.Event()
        self.state.connected = True
        self.state.last_error = None
        self.state.tools = tools
        self.state.resources = capabilities.resources is not None
        self.state.prompts = capabilities.prompts is not None
        self._ready.set()
        log.info("upstream %s connected with %d tools", self.name, len(tools), extra={"upstream": self.name})
        self._on_tools_changed()

    async def _all_tools(self, client: Client) -> list[types.Tool]:
        """Every page of tools/list, read as plain JSON so a schema without "type": "object" can be mended
        instead of failing the whole listing (ClientSession.send_request validates every result first); a tool that
        is still invalid is left out and logged."""
        tools: list[types.Tool] = []
        cursor: str | None = None
        while True:
            page = await raw_request(client, "tools/list", {"cursor": cursor} if cursor else None)
            for raw in page.get("tools") or []:
                try:
                    tools.append(
                        types.Tool.model_validate({**raw, "inputSchema": normalise_schema(raw.get("inputSchema"))})
                    )
                except (ValidationError, AttributeError, TypeError):
                    log.error("upstream %s offers an invalid tool, left out: %.200r", self.name, raw)
            cursor = page.get("nextCursor")
            if not cursor:
                return tools

    async def _watch(self, client: Client) -> None:
        """Return when the connection is gone: a ping fails, or a call reported it broken."""
        while True:
            with anyio.move_on_after(_HEALTH_INTERVAL_SECONDS):
                await self._broken.wait()
                return
            try:
                with anyio.fail_after(_HEALTH_INTERVAL_SECONDS):
                    await client.session.send_ping()
            except (MCPError, TimeoutError, anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
                raise UpstreamUnavailable(f"health check failed: {_describe(exc)}") from exc

    def _mark_down(self, reason: str) -> None:
        was_connected = self.state.connected
        self._client = None
        if self._tap is not None:
            self._tap.close(reason)
            self._tap = None
        self._ready = anyio.Event()
        self.state.connected = False
        self.state.last_error = reason
        if was_connected:
            self._on_tools_changed()

    # -- what callers use --------------------------------------------------------------------------------

    async def wait_ready(self, timeout: float) -> bool:
        with anyio.move_on_after(timeout):
            await self._ready.wait()
        return self.state.connected

    def _connected_client(self) -> Client:
        if self._client is None:
            raise UpstreamUnavailable(f"upstream {self.name} is not connected ({self.state.last_error or 'starting'})")
        return self._client

    async def relay_tool(
        self, name: str, arguments: dict[str, Any], *, progress: ProgressRelay | None = None
    ) -> RelayedResult:
        """Call a tool; its result as the upstream sent it when plain (relay.py). Raises UpstreamUnavailable,
        naming this upstream, when it is down, fails the call, times out or answers with something malformed."""
        tap = self._tap
        if self._client is None or tap is None:
            raise UpstreamUnavailable(f"upstream {self.name} is not connected ({self.state.last_error or 'starting'})")
        try:
            raw = await tap.call(
                "tools/call",
                {"name": name, "arguments": arguments},
                version=self._version,
                progress=progress,
                timeout=self.call_timeout_seconds,
            )
            return RelayedResult.checked(raw, self._version)
        except UpstreamGone as exc:
            self._broken.set()
            raise UpstreamUnavailable(f"upstream {self.name} {exc}") from None
        except UpstreamUnavailable as exc:
            raise UpstreamUnavailable(f"upstream {self.name} {exc}") from None

    async def call_tool(
        self, name: str, arguments: dict[str, Any], *, progress: ProgressRelay | None = None
    ) -> types.CallToolResult:
        """The same call, its result as the SDK's model (for results that are stored or handed to the SDK)."""
        return (await self.relay_tool(name, arguments, progress=progress)).model()

    async def list_resources(self) -> list[types.Resource]:
        client = self._connected_client()
        return (await client.list_resources()).resources

    async def list_resource_templates(self) -> list[types.ResourceTemplate]:
        client = self._connected_client()
        return (await client.list_resource_templates()).resource_templates

    async def read_resource(self, uri: str) -> types.ReadResourceResult:
        client = self._connected_client()
        return await client.read_resource(uri)

    async def list_prompts(self) -> list[types.Prompt]:
        client = self._connected_client()
        return (await client.list_prompts()).prompts

    async def get_prompt(self, name: str, arguments: dict[str, str] | None) -> types.GetPromptResult:
        client = self._connected_client()
        return await client.get_prompt(name, arguments)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
