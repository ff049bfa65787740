"""An upstream whose tools/call answers are whatever the test asks for, as a real child process on stdio.

`relay` answers with its `result` argument as the JSON-RPC result, unchecked (a middleware's result is only dumped
by the SDK), so tests can send exactly the shapes real servers send, or garbage. `hang` never answers. Each call,
start and cancellation is appended to the file named by AIRLOCK_DEMO_UPSTREAM_LOG.
"""

from __future__ import annotations

import json
import os
from typing import Any

import anyio
import mcp_types as types
from mcp.server import Server, ServerRequestContext

TOOLS = [
    types.Tool(name="relay", input_schema={"type": "object", "properties": {"result": {}}}),
    types.Tool(name="hang", input_schema={"type": "object", "properties": {}}),
]


def _record(entry: dict[str, Any]) -> None:
    path = os.environ.get("AIRLOCK_DEMO_UPSTREAM_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({**entry, "pid": os.getpid()}) + "\n")


async def raw_call(ctx: ServerRequestContext[Any], call_next: Any) -> Any:
    if ctx.method != "tools/call":
        return await call_next(ctx)
    params = dict(ctx.params or {})
    arguments = params.get("arguments") or {}
    _record({"event": "call", "tool": params.get("name"), "arguments": arguments})
    if params.get("name") == "hang":
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            _record({"event": "call", "tool": "hang.cancelled", "arguments": {}})
            raise
    return arguments.get("result")


async def list_tools(
    ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    return types.ListToolsResult(tools=TOOLS)


async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
    raise AssertionError("answered by raw_call")


async def main() -> None:
    from mcp.server.stdio import stdio_server

    server: Server[Any] = Server("raw", on_list_tools=list_tools, on_call_tool=call_tool)
    server.middleware.append(raw_call)
    _record({"event": "started"})
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
