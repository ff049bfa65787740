"""A second upstream for gateway tests, run as a real child process: an echo tool, a tool whose schema lacks
"type": "object", a resource and a prompt. Every call it executes is appended to the file named by
AIRLOCK_DEMO_UPSTREAM_LOG."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import anyio
import mcp_types as types
from mcp.server import Server, ServerRequestContext


def _record(tool: str, arguments: dict[str, Any]) -> None:
    path = os.environ.get("AIRLOCK_DEMO_UPSTREAM_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"event": "call", "tool": tool, "arguments": arguments, "pid": os.getpid()}) + "\n")


TOOLS = [
    {"name": "echo", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}},
    # What some servers send: no "type": "object". The SDK's own server would refuse to emit it, so the
    # middleware below answers tools/list with raw JSON, as a server built on something else would.
    {"name": "sloppy", "inputSchema": {"properties": {"x": {"type": "integer"}}}},
    {"name": "slow", "inputSchema": {"type": "object", "properties": {}}},
    # A schema that is itself invalid ("minimum" must be a number): the gateway logs it and does not enforce it.
    {"name": "odd", "inputSchema": {"type": "object", "properties": {"x": {"minimum": "zero"}}, "required": ["x"]}},
]


async def raw_tools_list(ctx: ServerRequestContext[Any], call_next: Any) -> Any:
    if ctx.method == "tools/list":
        return {"tools": TOOLS}
    return await call_next(ctx)


async def list_tools(
    ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    raise AssertionError("answered by raw_tools_list")


async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
    arguments = dict(params.arguments or {})
    _record(params.name, arguments)
    if params.name == "slow":
        try:
            await anyio.sleep(float(arguments.get("seconds", 30)))
        except anyio.get_cancelled_exc_class():
            _record("slow.cancelled", arguments)
            raise
        return types.CallToolResult(content=[types.TextContent(type="text", text="finished")])
    if params.name == "echo":
        await ctx.session.report_progress(1, 2, "halfway")
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=str(arguments.get("text", "")))],
            structured_content={"echo": arguments.get("text")},
            meta={"fixture/trace": "kept"},
        )
    return types.CallToolResult(content=[types.TextContent(type="text", text="sloppy ok")])


async def list_resources(
    ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
) -> types.ListResourcesResult:
    return types.ListResourcesResult(
        resources=[types.Resource(uri="fixture://greeting", name="greeting", mime_type="text/plain")]
    )


async def read_resource(
    ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
) -> types.ReadResourceResult:
    return types.ReadResourceResult(
        contents=[
            types.TextResourceContents(uri=str(params.uri), mime_type="text/plain", text="hello from the fixture")
        ]
    )


async def list_prompts(
    ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
) -> types.ListPromptsResult:
    return types.ListPromptsResult(prompts=[types.Prompt(name="haiku", description="A haiku about a topic")])


async def get_prompt(ctx: ServerRequestContext[Any], params: types.GetPromptRequestParams) -> types.GetPromptResult:
    topic = (params.arguments or {}).get("topic", "gateways")
    return types.GetPromptResult(
        messages=[
            types.PromptMessage(
                role="user", content=types.TextContent(type="text", text=f"Write a haiku about {topic}")
            )
        ]
    )


def build() -> Server[Any]:
    server: Server[Any] = Server(
        "fixture",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_read_resource=read_resource,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
    )
    server.middleware.append(raw_tools_list)
    return server


async def main() -> None:
    from mcp.server.stdio import stdio_server

    server = build()
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--http":
        import uvicorn

        uvicorn.run(build().streamable_http_app(), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
    else:
        anyio.run(main)
