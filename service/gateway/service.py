"""One tool call through the gateway: resolve, decide, commit the decision, then forward or answer.

The MCP handlers stay thin: they build a CallContext and call `Gateway.call_tool`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import mcp_types as types
from mcp.shared.exceptions import MCPError

from service.approvals.models import ToolCallRequest
from service.approvals.standing_cache import StandingCache
from service.arguments import MAX_ARGUMENT_DEPTH, TOO_DEEP, arguments_digest, nests_deeper_than, storable_text
from service.audit.schemas import AuditRecord, agent_actor
from service.audit.writer import AuditWriter
from service.errors import Unavailable
from service.gateway import answers
from service.gateway.catalog import Route
from service.gateway.client_waits import STATUS_TOOL, STATUS_TOOL_DEFINITION
from service.gateway.holds import Caller, HeldTask, HoldCoordinator
from service.gateway.pool import UpstreamPool
from service.gateway.relay import RelayedResult
from service.gateway.upstreams import ProgressRelay, UpstreamUnavailable
from service.grants.schemas import AuthenticatedGrant
from service.metrics import Metrics
from service.policy import Decision, GiveBack, Outcome, PolicyEngine, ToolCall
from service.policy_versions.holder import PolicyHolder

log = logging.getLogger(__name__)

_LISTINGS = frozenset({"tools/list", "resources/list", "resources/templates/list", "prompts/list", "ping"})

_ACTIONS = {
    Outcome.ALLOW: "call.allowed",
    Outcome.DENY: "call.denied",
    Outcome.RATE_LIMITED: "call.rate_limited",
    Outcome.HOLD: "call.held",
}


def _call_action(decision: Decision, replay: ToolCallRequest | None) -> str:
    if replay is not None:
        return "call.replayed"
    if decision.invalid_arguments:
        return "call.invalid_arguments"
    return _ACTIONS[decision.outcome]


@dataclass(frozen=True, slots=True)
class CallContext:
    grant: AuthenticatedGrant
    scope: str | None
    """The upstream named in the URL (/mcp/{upstream}), or None for every upstream the grant may reach."""
    session_id: str | None
    progress: ProgressRelay | None = None
    client_name: str | None = None
    wants_task: bool = False
    """The client speaks tasks (the 2026-07-28 extension, or a 2025-11-25 task-augmented call): a hold answers at
    once with the task instead of waiting."""
    present: Callable[[], bool] | None = None
    """Whether the agent is still there (known on the direct path); None: assume it is."""

    def caller(self) -> Caller:
        if self.present is None:
            return Caller(self.grant, self.session_id, self.client_name, self.progress)
        return Caller(self.grant, self.session_id, self.client_name, self.progress, self.present)


class Gateway:
    def __init__(
        self,
        pool: UpstreamPool,
        policy: PolicyHolder,
        writer: AuditWriter,
        metrics: Metrics,
        holds: HoldCoordinator,
        standing: StandingCache,
    ) -> None:
        self.standing = standing
        self.pool = pool
        self.policy = policy
        self.writer = writer
        self.metrics = metrics
        self.holds = holds

    def reachable(self, grant: AuthenticatedGrant, scope: str | None) -> list[str]:
        names = [scope] if scope is not None else self.pool.names()
        return [name for name in names if grant.may_reach(name)]

    def answers_at_once(self, message: Mapping[str, Any] | None) -> bool:
        """Whether a request can carry no intermediate message, so it may be answered with plain JSON: listings,
        and tool calls without a progress token to a tool the policy can never hold."""
        if message is None:
            return False
        method = message.get("method")
        if method in _LISTINGS:
            return True
        return method == "tools/call" and self._call_answers_at_once(message.get("params"))

    def _call_answers_at_once(self, params: Any) -> bool:
        if not isinstance(params, dict) or not isinstance(params.get("name"), str) or params["name"] == STATUS_TOOL:
            return False
        if _asks_for_progress(params):
            return False
        if isinstance(params.get("task"), dict):
            return True  # a 2025-11-25 task-augmented call is answered at once, held or not
        engine = self.policy.engine
        return engine is not None and not engine.may_hold(params["name"])

    def validate_arguments(self, tool: str, arguments: Mapping[str, Any]) -> list[str]:
        """Problems with (edited) arguments against the tool's inputSchema, for approvers who change a call."""
        if self.pool.catalog.tool(tool) is None:
            return [f"the tool {tool!r} is not offered by any connected upstream right now"]
        return [str(problem) for problem in self.pool.catalog.problems(tool, arguments)]

    def list_tools(self, grant: AuthenticatedGrant, scope: str | None, *, task_support: bool) -> list[types.Tool]:
        """`task_support`: the session's revision has task-augmented calls (tasks_2025.offers_core_tasks)."""
        engine = self.policy.current()
        tools = [
            _with_task_support(t, task_support and engine.may_hold(t.name))
            for t in self.pool.catalog.tools_for(self.reachable(grant, scope))
            if not engine.is_hidden(t.name)
        ]
        return [*tools, STATUS_TOOL_DEFINITION]

    async def call_tool(
        self, ctx: CallContext, name: str, arguments: dict[str, Any]
    ) -> types.CallToolResult | RelayedResult | HeldTask:
        """The answer to a call: the gateway's own result, an allowed call's upstream result as relayed, or (for a
        client that speaks tasks) the task a held call became."""
        started = time.perf_counter()
        try:
            digest = _checked_digest(arguments)
        except _Malformed as malformed:
            return await self._refuse_malformed(ctx, name, malformed.reason)
        if name == STATUS_TOOL:
            return await self._status(ctx, arguments)
        route = self.pool.catalog.route(name)
        if route is None or route.upstream not in self.reachable(ctx.grant, ctx.scope):
            return await self._refuse_unknown(ctx, name, arguments, digest)
        engine = self.policy.current()
        try:
            decision, replay = await self._admit(ctx, engine, name, route, arguments, digest, started)
        except Unavailable:
            return answers.not_recorded()
        if replay is not None:
            return answers.replayed(replay)
        return await self._answer(ctx, engine, name, route, arguments, decision, started)

    async def _status(self, ctx: CallContext, arguments: dict[str, Any]) -> types.CallToolResult:
        """The gateway's own tool skips the policy: it only ever delivers what a person already decided."""
        try:
            return await self.holds.status(ctx.caller(), arguments)
        except Unavailable:
            return answers.not_recorded()

    async def _admit(
        self,
        ctx: CallContext,
        engine: PolicyEngine,
        name: str,
        route: Route,
        arguments: dict[str, Any],
        digest: str,
        started: float,
    ) -> tuple[Decision, ToolCallRequest | None]:
        """The policy's decision, and for a held call the stored result that answers it again, if any; committed to
        the audit log. Raises Unavailable, with what the call reserved given back, when the database cannot tell or
        record it."""
        decision = await self._evaluate(ctx, engine, name, route, arguments)
        decided = time.perf_counter()
        replay = await self._replay(ctx, engine, name, arguments, decision)
        entry = self._decision_record(ctx, name, route.upstream, arguments, digest, decision, decided - started, replay)
        try:
            await self.writer.commit(entry)
        except Unavailable:
            if replay is None:  # a replay gave its budget back already; its count stays, erring toward less budget
                engine.release(decision.reservation, GiveBack.NOT_COUNTED)
            self.metrics.calls.labels(name, "unavailable").inc()
            raise
        self.metrics.decision_seconds.observe(time.perf_counter() - started)
        self.metrics.calls.labels(name, entry.outcome or decision.outcome.value).inc()
        return decision, replay

    async def _evaluate(
        self, ctx: CallContext, engine: PolicyEngine, name: str, route: Route, arguments: dict[str, Any]
    ) -> Decision:
        call = ToolCall(ctx.grant.info, name, arguments, upstream=route.upstream, session_id=ctx.session_id)
        if not engine.may_hold(name):
            return engine.evaluate(call)
        await self.standing.prefetch(ctx.grant.id)  # a standing approval turns a would-be hold into allow
        # A would-be hold asks the database whether the grant is at its cap on pending requests.
        return await anyio.to_thread.run_sync(engine.evaluate, call)

    async def _replay(
        self, ctx: CallContext, engine: PolicyEngine, name: str, arguments: dict[str, Any], decision: Decision
    ) -> ToolCallRequest | None:
        """The held call whose stored result answers this hold again (hold.replay_window), if any."""
        if decision.outcome is not Outcome.HOLD:
            return None
        try:
            replay = await self.holds.replayable(ctx.grant.id, name, arguments)
        except Unavailable:
            engine.release(decision.reservation, GiveBack.NOT_COUNTED)
            raise
        if replay is not None:  # it runs nothing: it stays counted (it passed the limits) but costs nothing
            engine.release(decision.reservation, GiveBack.RAN_NOTHING)
        return replay

    async def _answer(
        self,
        ctx: CallContext,
        engine: PolicyEngine,
        name: str,
        route: Route,
        arguments: dict[str, Any],
        decision: Decision,
        started: float,
    ) -> types.CallToolResult | RelayedResult | HeldTask:
        """What a recorded decision answers: a refusal, a hold, or the upstream's result."""
        if decision.outcome is Outcome.DENY:
            return answers.denied(decision)
        if decision.outcome is Outcome.RATE_LIMITED:
            return answers.rate_limited(decision)
        if decision.outcome is Outcome.HOLD:
            return await self._hold(ctx, name, route, arguments, decision)
        return await self._forward(ctx, engine, name, route.upstream, route.name, arguments, decision, started)

    async def _hold(
        self, ctx: CallContext, name: str, route: Route, arguments: dict[str, Any], decision: Decision
    ) -> types.CallToolResult | HeldTask:
        try:
            return await self.holds.hold(
                ctx.caller(), name, route.upstream, route.name, arguments, decision, as_task=ctx.wants_task
            )
        except Unavailable:  # the queue cannot be written or read: nothing runs now, and the agent is told
            # The counters stay spent: the request may already be in the queue, and may still be approved.
            return answers.not_recorded()

    async def _forward(
        self,
        ctx: CallContext,
        engine: PolicyEngine,
        name: str,
        upstream: str,
        upstream_name: str,
        arguments: dict[str, Any],
        decision: Decision,
        started: float,
    ) -> types.CallToolResult | RelayedResult:
        forwarded = time.perf_counter()
        try:
            result = await self.pool.get(upstream).relay_tool(upstream_name, arguments, progress=ctx.progress)
        except UpstreamUnavailable as exc:
            engine.release(decision.reservation, GiveBack.NOT_COUNTED)
            self._outcome(ctx, name, upstream, "upstream_error", started, forwarded, {"error": str(exc)})
            return answers.upstream_failed(str(exc))
        self.metrics.upstream_seconds.labels(upstream).observe(time.perf_counter() - forwarded)
        self._outcome(
            ctx,
            name,
            upstream,
            "error_result" if result.is_error else "succeeded",
            started,
            forwarded,
            answers.summarise(result.wire_view()),
        )
        return result

    def _decision_record(
        self,
        ctx: CallContext,
        name: str,
        upstream: str,
        arguments: dict[str, Any],
        digest: str,
        decision: Decision,
        decision_seconds: float,
        replay: ToolCallRequest | None = None,
    ) -> AuditRecord:
        """What the audit log keeps of a decision; a held call answered with a stored result is `call.replayed`."""
        details: dict[str, Any] = {
            "decision_us": round(decision_seconds * 1e6, 1),
            "policy_version": self.policy.version_id,
        }
        if decision.errors:
            details["errors"] = list(decision.errors)
        if decision.retry_after is not None:
            details["retry_after_s"] = decision.retry_after
        if decision.standing_approval is not None:
            details["standing_approval"] = decision.standing_approval
        if decision.invalid_arguments:  # where and which keyword only: the messages may quote secret values
            details["invalid_arguments"] = [
                f"{p.where or '(arguments)'}: {p.keyword}" for p in decision.invalid_arguments
            ]
        if ctx.session_id:
            details["session"] = ctx.session_id
        if replay is not None:
            details["replay_of"] = replay.public_id
        return _call_record(
            ctx,
            _call_action(decision, replay),
            name,
            decision.outcome.value if replay is None else "replayed",
            upstream=upstream,
            rule=decision.rule,
            reason=decision.reason,
            cost_micros=round(decision.cost_usd * 1_000_000) if decision.cost_usd is not None else None,
            argument_keys=sorted(arguments),
            arguments_digest=digest,
            details=details,
        )

    def _outcome(
        self,
        ctx: CallContext,
        name: str,
        upstream: str,
        outcome: str,
        started: float,
        forwarded: float,
        details: dict[str, Any],
    ) -> None:
        now = time.perf_counter()
        details = {
            **details,
            "latency_ms": round((now - started) * 1000, 3),
            "upstream_ms": round((now - forwarded) * 1000, 3),
        }
        self.writer.append(
            _call_record(
                ctx,
                "call.completed" if outcome in ("succeeded", "error_result") else "call.failed",
                name,
                outcome,
                upstream=upstream,
                details=details,
            )
        )

    # -- resources and prompts pass through, under the grant's upstream access ------------------------------

    def _with(self, grant: AuthenticatedGrant, scope: str | None, capability: str) -> list[str]:
        return [
            name
            for name in self.reachable(grant, scope)
            if self.pool.get(name).state.connected and getattr(self.pool.get(name).state, capability)
        ]

    async def list_resources(self, grant: AuthenticatedGrant, scope: str | None) -> list[types.Resource]:
        out: list[types.Resource] = []
        for name in self._with(grant, scope, "resources"):
            out += await self.pool.get(name).list_resources()
        return out

    async def list_resource_templates(
        self, grant: AuthenticatedGrant, scope: str | None
    ) -> list[types.ResourceTemplate]:
        out: list[types.ResourceTemplate] = []
        for name in self._with(grant, scope, "resources"):
            out += await self.pool.get(name).list_resource_templates()
        return out

    async def read_resource(self, grant: AuthenticatedGrant, scope: str | None, uri: str) -> types.ReadResourceResult:
        """The first reachable upstream that lists the URI answers it (URIs are not prefixed)."""
        for name in self._with(grant, scope, "resources"):
            upstream = self.pool.get(name)
            if any(str(r.uri) == uri for r in await upstream.list_resources()):
                return await upstream.read_resource(uri)
        raise MCPError(types.INVALID_PARAMS, f"Unknown resource: {uri}")

    async def list_prompts(self, grant: AuthenticatedGrant, scope: str | None) -> list[types.Prompt]:
        out: list[types.Prompt] = []
        for name in self._with(grant, scope, "prompts"):
            prefix = self.pool.get(name).config.prefix
            out += [p.model_copy(update={"name": prefix + p.name}) for p in await self.pool.get(name).list_prompts()]
        return out

    async def get_prompt(
        self, grant: AuthenticatedGrant, scope: str | None, name: str, arguments: dict[str, str] | None
    ) -> types.GetPromptResult:
        for upstream_name in self._with(grant, scope, "prompts"):
            upstream = self.pool.get(upstream_name)
            prefix = upstream.config.prefix
            if name.startswith(prefix) and any(p.name == name[len(prefix) :] for p in await upstream.list_prompts()):
                return await upstream.get_prompt(name[len(prefix) :], arguments)
        raise MCPError(types.INVALID_PARAMS, f"Unknown prompt: {name}")

    async def _refuse_malformed(self, ctx: CallContext, name: str, reason: str) -> types.CallToolResult:
        """Arguments that are no JSON values, or nest too deep: refused before the policy (nothing is counted or
        reserved), audited without their keys or digest, which cannot be written either."""
        entry = _call_record(ctx, "call.invalid_arguments", storable_text(name[:255]), "deny", reason=reason)
        try:
            await self.writer.commit(entry)
        except Unavailable:
            return answers.not_recorded()
        self.metrics.calls.labels("(malformed)", "invalid_arguments").inc()
        return answers.malformed_arguments(reason)

    async def _refuse_unknown(
        self, ctx: CallContext, name: str, arguments: dict[str, Any], digest: str
    ) -> types.CallToolResult:
        entry = _call_record(
            ctx,
            "call.unknown_tool",
            storable_text(name[:255]),
            "unknown_tool",
            argument_keys=sorted(arguments)[:50],
            arguments_digest=digest,
        )
        try:
            await self.writer.commit(entry)
        except Unavailable:
            return answers.not_recorded()
        self.metrics.calls.labels("(unknown)", "unknown_tool").inc()
        return answers.unknown_tool(name)


def _call_record(ctx: CallContext, action: str, tool: str, outcome: str, **fields: Any) -> AuditRecord:
    """What the audit log keeps of an agent's tool call: the agent is the actor, and its grant what the event is about.
    `fields`: the rest of the record (AuditRecord's names), as far as this step of the call knows it."""
    name = ctx.grant.info.name
    return AuditRecord(
        kind="call",
        action=action,
        actor=agent_actor(name),
        grant_id=ctx.grant.id,
        grant_name=name,
        tool=tool,
        outcome=outcome,
        **fields,
    )


class _Malformed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _checked_digest(arguments: dict[str, Any]) -> str:
    """The arguments' digest, for the audit row; raises _Malformed for what no person could be shown nor any upstream
    run (arguments nested too deep, or that are no JSON values)."""
    if nests_deeper_than(arguments, MAX_ARGUMENT_DEPTH):  # first: the digest recurses
        raise _Malformed(TOO_DEEP)
    try:
        return arguments_digest(arguments)
    except (ValueError, UnicodeError):
        raise _Malformed(answers.MALFORMED_ARGUMENTS) from None


def _asks_for_progress(params: Mapping[str, Any]) -> bool:
    meta = params.get("_meta")
    return isinstance(meta, dict) and meta.get("progressToken") is not None


_TASK_OPTIONAL = types.ToolExecution(task_support="optional")


def _with_task_support(tool: types.Tool, may_hold: bool) -> types.Tool:
    """Tools the policy may hold accept 2025-11-25 task-augmented calls ("optional", never "required": clients that
    do not speak tasks must still call them). What an upstream declared is not passed on: the gateway calls
    upstreams plainly."""
    wanted = _TASK_OPTIONAL if may_hold else None
    if tool.execution == wanted:
        return tool
    return tool.model_copy(update={"execution": wanted})
