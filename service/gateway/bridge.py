"""`airlock connect`: a stdio MCP server that forwards everything to an Airlock gateway over HTTP, for clients
that can only launch stdio servers (Claude Desktop style).

The gateway connection opens on the first request, after the real client's handshake, so that it can carry that
client's `clientInfo`: the gateway picks a held call's wait (hold.client_budgets) by the client's name, and a
client that gives up after 5 s must get its pending answer before then, through the bridge as directly."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server import Server, ServerRequestContext
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

log = logging.getLogger(__name__)


class _GatewayConnection:
    """The bridge's one connection to the gateway, opened (in the lifespan's task group, which also closes it) once
    the first request says who the real client is."""

    def __init__(self, url: str, token: str) -> None:
        self._url = url
        self._token = token
        self._client_info: types.Implementation | None = None
        self._wanted = anyio.Event()
        self._ready = anyio.Event()
        self._client: Client | None = None
        self._failure = ""

    async def run(self) -> None:
        await self._wanted.wait()
        headers = {"Authorization": f"Bearer {self._token}"}
        http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=None))
        transport = streamable_http_client(self._url, http_client=http)
        try:
            async with http, Client(transport, cache=None, client_info=self._client_info) as client:
                self._client = client
                self._ready.set()
                await anyio.sleep_forever()
        except Exception as exc:  # the agent hears why on every request, rather than the bridge vanishing
            log.warning("cannot reach the gateway at %s: %s", self._url, exc)
            self._failure = f"cannot reach the Airlock gateway at {self._url}: {type(exc).__name__}"
            self._client = None
            self._ready.set()

    async def client(self, ctx: ServerRequestContext[Any]) -> Client:
        if not self._wanted.is_set():
            params = ctx.session.client_params
            self._client_info = params.client_info if params is not None else None
            self._wanted.set()
        await self._ready.wait()
        if self._client is None:
            raise MCPError(types.INTERNAL_ERROR, self._failure)
        return self._client


def build_bridge(url: str, token: str) -> Server[Any]:
    @asynccontextmanager
    async def lifespan(_server: Server[Any]) -> AsyncIterator[dict[str, Any]]:
        connection = _GatewayConnection(url, token)
        async with anyio.create_task_group() as group:
            group.start_soon(connection.run)
            yield {"gateway": connection}
            group.cancel_scope.cancel()

    async def gateway(ctx: ServerRequestContext[Any]) -> Client:
        connection: _GatewayConnection = ctx.lifespan_context["gateway"]
        return await connection.client(ctx)

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return await (await gateway(ctx)).list_tools(cursor=params.cursor if params else None)

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        async def relay(progress: float, total: float | None, message: str | None) -> None:
            await ctx.session.report_progress(progress, total, message)

        request = types.CallToolRequest(
            params=types.CallToolRequestParams(name=params.name, arguments=params.arguments)
        )
        return await (await gateway(ctx)).session.send_request(
            request, types.CallToolResult, progress_callback=relay, request_read_timeout_seconds=None
        )

    async def list_resources(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        return await (await gateway(ctx)).list_resources(cursor=params.cursor if params else None)

    async def read_resource(
        ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        return await (await gateway(ctx)).read_resource(str(params.uri))

    async def list_prompts(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        return await (await gateway(ctx)).list_prompts(cursor=params.cursor if params else None)

    async def get_prompt(ctx: ServerRequestContext[Any], params: types.GetPromptRequestParams) -> types.GetPromptResult:
        return await (await gateway(ctx)).get_prompt(params.name, params.arguments)

    return Server(
        "airlock-connect",
        lifespan=lifespan,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_read_resource=read_resource,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
    )


async def run_bridge(url: str, token: str) -> None:
    server = build_bridge(url, token)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
