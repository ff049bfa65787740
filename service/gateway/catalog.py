"""The tools, resources and prompts an agent sees: every upstream's, under its prefix, filtered by the grant."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import mcp_types as types

from service.errors import ConfigInvalid

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Route:
    upstream: str
    name: str
    """The tool's name at the upstream."""


def normalise_schema(schema: object) -> dict[str, object]:
    """Upstream schemas without `"type": "object"` would make our tools/list fail validation; mend them."""
    if not isinstance(schema, dict):
        return {"type": "object"}
    if schema.get("type") != "object":
        return {**schema, "type": "object"}
    return schema


class ToolCatalog:
    """Agent-visible tool name -> upstream and upstream name; rebuilt whenever an upstream's tools change."""

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}
        self._tools: dict[str, types.Tool] = {}
        self._by_upstream: dict[str, list[str]] = {}

    def rebuild(self, upstreams: Iterable[tuple[str, str, list[types.Tool]]], *, strict: bool) -> None:
        """(name, prefix, tools) in config order. A name two upstreams claim is an error when `strict`
        (at start-up it refuses to start); later, the upstream listed first keeps it and the clash is logged."""
        routes: dict[str, Route] = {}
        tools: dict[str, types.Tool] = {}
        by_upstream: dict[str, list[str]] = {}
        for upstream, prefix, upstream_tools in upstreams:
            names = by_upstream.setdefault(upstream, [])
            for tool in upstream_tools:
                visible = prefix + tool.name
                if visible in routes:
                    message = (
                        f"tool name {visible!r} is offered by upstreams {routes[visible].upstream!r} and {upstream!r};"
                        f" give one of them a prefix"
                    )
                    if strict:
                        raise ConfigInvalid(message)
                    log.error(message)
                    continue
                routes[visible] = Route(upstream, tool.name)
                tools[visible] = tool.model_copy(
                    update={"name": visible, "input_schema": normalise_schema(tool.input_schema)}
                )
                names.append(visible)
        self._routes, self._tools, self._by_upstream = routes, tools, by_upstream

    def route(self, visible: str) -> Route | None:
        return self._routes.get(visible)

    def tool(self, visible: str) -> types.Tool | None:
        return self._tools.get(visible)

    def tools_for(self, upstreams: Iterable[str]) -> list[types.Tool]:
        out = []
        for upstream in upstreams:
            out += [self._tools[name] for name in self._by_upstream.get(upstream, [])]
        return out
