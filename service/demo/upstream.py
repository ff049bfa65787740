"""The bundled offline image server: image-gen-mcp's three tools, names, parameters, enums and annotations,
drawing real PNGs locally instead of calling a provider.

It writes nothing to disk except, when AIRLOCK_DEMO_UPSTREAM_LOG names a file, one JSON line per executed call
(and one when it starts), which is how tests prove what the upstream did and did not see.
"""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp.server import Server, ServerRequestContext

from service.demo.images import render_png

PROVIDERS = ["openai", "openrouter", "azure", "gemini", "vertex"]
MODELS = [
    "gpt-image-1",
    "dall-e-3",
    "gemini-2.5-flash-image-preview",
    "google/gemini-2.5-flash-image-preview",
    "imagen-4.0-generate-001",
    "imagen-4.0-fast-generate-001",
    "imagen-4.0-ultra-generate-001",
    "imagen-3.0-generate-002",
    "imagen-3.0-capability-001",
]
SINGLE_IMAGE_MODELS = {"dall-e-3", "gemini-2.5-flash-image-preview"}
LOG_ENV = "AIRLOCK_DEMO_UPSTREAM_LOG"


def _nullable(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}], "default": None, "description": description}


_COMMON: dict[str, Any] = {
    "prompt": {"type": "string", "description": "What to draw."},
    "provider": {"type": "string", "enum": PROVIDERS, "description": "Which provider renders the image."},
    "model": {"type": "string", "enum": MODELS, "description": "The model to use."},
    "n": {**_nullable({"type": "integer", "minimum": 1}, "How many images (engines make 1 to 4)."), "default": 1},
    "size": _nullable({"type": "string", "enum": ["S", "M", "L"]}, "Accepted and ignored, as by every engine."),
    "orientation": _nullable({"type": "string", "enum": ["square", "portrait", "landscape"]}, "Pixel shape."),
    "quality": _nullable({"type": "string", "enum": ["draft", "standard", "high"]}, "Rendering quality."),
    "negative_prompt": _nullable({"type": "string"}, "What to avoid."),
    "background": _nullable({"type": "string", "enum": ["transparent", "opaque"]}, "Background handling."),
    "directory": _nullable({"type": "string"}, "A server folder to save into."),
}

TOOLS = [
    types.Tool(
        name="generate_image",
        description="Generate image(s) from a text prompt.",
        input_schema={"type": "object", "properties": _COMMON, "required": ["prompt", "provider", "model"]},
        annotations=types.ToolAnnotations(read_only_hint=False, idempotent_hint=False, open_world_hint=True),
    ),
    types.Tool(
        name="edit_image",
        description="Edit image(s) from a prompt and input images.",
        input_schema={
            "type": "object",
            "properties": {
                **_COMMON,
                "images": {"type": "array", "items": {"type": "string"}, "description": "URLs, data URLs or base64."},
                "mask": _nullable({"type": "string"}, "Where to edit."),
            },
            "required": ["prompt", "provider", "model", "images"],
        },
        annotations=types.ToolAnnotations(read_only_hint=False, idempotent_hint=False, open_world_hint=True),
    ),
    types.Tool(
        name="get_model_capabilities",
        description="List the enabled providers and what each model can do.",
        input_schema={
            "type": "object",
            "properties": {"provider": _nullable({"type": "string", "enum": PROVIDERS}, "Only this provider.")},
        },
        annotations=types.ToolAnnotations(read_only_hint=True, open_world_hint=False),
    ),
]
_TOOLS_BY_NAME = {tool.name: tool for tool in TOOLS}


def _record(entry: dict[str, Any]) -> None:
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    with Path(path).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"time": time.time(), "pid": os.getpid(), **entry}) + "\n")


def _problem(tool: types.Tool, arguments: dict[str, Any]) -> str | None:
    """The first way the arguments break the tool's schema, or None."""
    schema = tool.input_schema
    properties: dict[str, Any] = schema.get("properties", {})
    for name in schema.get("required", []):
        if arguments.get(name) is None:
            return f"missing required argument: {name}"
    for name, value in arguments.items():
        spec = properties.get(name)
        if spec is None:
            return f"unexpected argument: {name}"
        problem = _value_problem(name, spec, value) if value is not None else None
        if problem is not None:
            return problem
    return None


def _value_problem(name: str, spec: dict[str, Any], value: Any) -> str | None:
    options = spec.get("anyOf", [spec])
    base = next((o for o in options if o.get("type") != "null"), spec)
    kind = base.get("type")
    if kind == "string" and not isinstance(value, str):
        return f"{name} must be a string"
    if kind == "integer" and (
        isinstance(value, bool) or not isinstance(value, int) or value < base.get("minimum", value)
    ):
        return f"{name} must be an integer of at least {base.get('minimum', 0)}"
    if kind == "array" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        return f"{name} must be a list of strings"
    if "enum" in base and value not in base["enum"]:
        return f"{name} must be one of {', '.join(base['enum'])}"
    return None


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)


async def _images(ctx: ServerRequestContext[Any], tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
    model = arguments["model"]
    requested = arguments.get("n") or 1
    count = 1 if model in SINGLE_IMAGE_MODELS else max(1, min(4, requested))
    orientation = arguments.get("orientation") or "square"
    content: list[types.ContentBlock] = []
    images = []
    for index in range(count):
        await ctx.session.report_progress(index, count, f"rendering image {index + 1} of {count}")
        png = await anyio.to_thread.run_sync(render_png, arguments["prompt"], orientation, index)
        content.append(
            types.ImageContent(type="image", data=base64.b64encode(png).decode("ascii"), mime_type="image/png")
        )
        images.append(
            {
                "uri": f"demo://images/{index}.png",
                "name": f"image-{index + 1}.png",
                "mimeType": "image/png",
                "file_path": None,
            }
        )
    structured = {
        "model": model,
        "image_count": count,
        "images": images,
        "meta": {"provider": arguments["provider"], "orientation": orientation, "offline_demo": True, "tool": tool},
        "error": None,
    }
    return types.CallToolResult(content=content, structured_content=structured)


def _capabilities(arguments: dict[str, Any]) -> types.CallToolResult:
    providers = [arguments["provider"]] if arguments.get("provider") else PROVIDERS
    models = {
        model: {
            "max_images": 1 if model in SINGLE_IMAGE_MODELS else 4,
            "orientations": ["square", "portrait", "landscape"],
        }
        for model in MODELS
    }
    data = {"enabled_providers": providers, "models": models, "offline_demo": True}
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(data))], structured_content=data
    )


async def list_tools(
    ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    return types.ListToolsResult(tools=TOOLS)


async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
    tool = _TOOLS_BY_NAME.get(params.name)
    if tool is None:
        return _error(f"Unknown tool: {params.name}")
    arguments = dict(params.arguments or {})
    problem = _problem(tool, arguments)
    if problem is not None:
        return _error(problem)
    _record({"event": "call", "tool": params.name, "arguments": arguments})
    if params.name == "get_model_capabilities":
        return _capabilities(arguments)
    return await _images(ctx, params.name, arguments)


def build_server() -> Server[Any]:
    return Server(
        "image-gen-mcp (Airlock offline demo)",
        version="1.4.0-demo",
        instructions="Generates images offline for the Airlock demo; same tools as image-gen-mcp.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


async def serve_stdio() -> None:
    from mcp.server.stdio import stdio_server

    server = build_server()
    _record({"event": "started"})
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def serve_http(host: str, port: int) -> None:
    import uvicorn

    server = build_server()
    _record({"event": "started"})
    app = server.streamable_http_app(host=host)
    uvicorn.run(app, host=host, port=port, log_level="warning")


if __name__ == "__main__":
    anyio.run(serve_stdio)
