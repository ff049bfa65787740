"""The reference point "minimal mcp-SDK proxy": the SDK's low-level server in front of one stdio upstream, each
tools/list and tools/call forwarded through one client session. No auth, no policy, no record: what a proxy
costs before it does anything of its own.

    python -m bench.peers.sdk_proxy PORT UPSTREAM_SCRIPT
"""

from __future__ import annotations

import sys
from typing import Any

import anyio
import mcp_types as types
import uvicorn
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.server import Server, ServerRequestContext


async def main(port: int, upstream_script: str) -> None:
    params = StdioServerParameters(command=sys.executable, args=[upstream_script])
    async with Client(stdio_client(params), mode="legacy", cache=None) as upstream:

        async def list_tools(
            ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
        ) -> types.ListToolsResult:
            return await upstream.list_tools()

        async def call_tool(
            ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
        ) -> types.CallToolResult:
            return await upstream.call_tool(params.name, params.arguments or {})

        app = Server("sdk-proxy", on_list_tools=list_tools, on_call_tool=call_tool).streamable_http_app()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
        await uvicorn.Server(config).serve()


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]), sys.argv[2])
