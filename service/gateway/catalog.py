"""The tools, resources and prompts an agent sees: every upstream's, under its prefix, filtered by the grant."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import fastjsonschema
import jsonschema
import mcp_types as types
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator

from service.errors import ConfigInvalid
from service.policy import ArgumentProblem

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


MAX_PROBLEMS = 10
_MESSAGE_CHARS = 300  # a message may quote a huge value back


@dataclass(frozen=True, slots=True)
class ArgumentValidator:
    """A tool's inputSchema, compiled twice: fastjsonschema answers "fits" in a few µs on every call the policy may
    hold (jsonschema takes about 25 µs for the demo's generate_image); jsonschema, the reference, explains a call
    that does not fit, and decides alone where fastjsonschema cannot compile the schema (a dialect or format it does
    not know)."""

    reference: Validator
    fast: Callable[[Any], Any] | None


def compile_validator(tool: str, schema: dict[str, Any]) -> ArgumentValidator | None:
    """The validator for a tool's inputSchema (its `$schema` dialect, else 2020-12), or None for a schema that is
    itself invalid: that is the upstream's fault, so it is logged and not enforced rather than refusing every call."""
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        log.warning("tool %r has an invalid inputSchema, its arguments are not checked: %s", tool, exc.message)
        return None
    reference: Validator = cls(schema)
    fast = None
    if _self_contained(schema):
        try:
            fast = fastjsonschema.compile(schema, use_default=False)  # never fill defaults into the agent's arguments
        except Exception:  # any schema it cannot compile: the reference validator alone decides
            fast = None
    return ArgumentValidator(reference, fast)


def _self_contained(schema: object) -> bool:
    """No `$id` and only local `$ref`s: fastjsonschema would fetch any other reference over the network while it
    compiles (the reference validator never does)."""
    if isinstance(schema, dict):
        if "$id" in schema or ("id" in schema and isinstance(schema["id"], str)):
            return False
        ref = schema.get("$ref")
        if ref is not None and not (isinstance(ref, str) and ref.startswith("#")):
            return False
        return all(_self_contained(value) for value in schema.values())
    if isinstance(schema, list):
        return all(_self_contained(value) for value in schema)
    return True


def _fits(fast: Callable[[Any], Any], arguments: Mapping[str, Any]) -> bool:
    try:
        fast(arguments)
    except Exception:  # a refusal, or anything odd: the reference validator decides, and says why
        return False
    return True


def problems_with(validator: ArgumentValidator, arguments: Mapping[str, Any]) -> list[ArgumentProblem]:
    if validator.fast is not None and _fits(validator.fast, arguments):
        return []
    out: list[ArgumentProblem] = []
    for error in validator.reference.iter_errors(dict(arguments)):
        message = error.message if len(error.message) <= _MESSAGE_CHARS else error.message[:_MESSAGE_CHARS] + "…"
        out.append(ArgumentProblem("/".join(map(str, error.absolute_path)), str(error.validator), message))
        if len(out) == MAX_PROBLEMS:
            break
    return out


class ToolCatalog:
    """Agent-visible tool name -> upstream and upstream name; rebuilt whenever an upstream's tools change."""

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}
        self._tools: dict[str, types.Tool] = {}
        self._by_upstream: dict[str, list[str]] = {}
        self._validators: dict[str, ArgumentValidator | None] = {}

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
        # Compiled once per listing, not per call; a tool whose schema did not change keeps its validator when
        # another upstream's listing changes (and an invalid schema is logged once).
        validators = {
            name: self._validators[name]
            if name in self._tools and self._tools[name].input_schema == tool.input_schema
            else compile_validator(name, tool.input_schema)
            for name, tool in tools.items()
        }
        self._routes, self._tools, self._by_upstream = routes, tools, by_upstream
        self._validators = validators

    def route(self, visible: str) -> Route | None:
        return self._routes.get(visible)

    def tool(self, visible: str) -> types.Tool | None:
        return self._tools.get(visible)

    def problems(self, visible: str, arguments: Mapping[str, Any]) -> list[ArgumentProblem]:
        """How the arguments break the tool's inputSchema; empty when they fit, when the schema is not enforced, or
        when no upstream offers the tool (the gateway refuses unknown tools on its own)."""
        validator = self._validators.get(visible)
        return problems_with(validator, arguments) if validator is not None else []

    def tools_for(self, upstreams: Iterable[str]) -> list[types.Tool]:
        out = []
        for upstream in upstreams:
            out += [self._tools[name] for name in self._by_upstream.get(upstream, [])]
        return out
