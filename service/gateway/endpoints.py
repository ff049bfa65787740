"""The MCP side of the gateway: SDK handlers (thin: they read who is asking and call the Gateway), and the ASGI
entry at /mcp and /mcp/{upstream} that authenticates the grant before the SDK sees the request."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError
from starlette.types import Message, Receive, Scope, Send

from service.edge import bearer_token, read_at_most, request_chunks, send_error
from service.errors import AirlockError, Forbidden, NotAuthenticated, NotFound, Unavailable
from service.gateway.direct import DirectCalls, facts_from_handshake
from service.gateway.holds import HeldTask, HoldCoordinator
from service.gateway.protocol import (
    ProgressRelay,
    failure_error,
    increasing_progress,
    is_direct_candidate,
    peek_message,
)
from service.gateway.relay import RelayedResult
from service.gateway.sdk_compat import PerRequestSessionManager, answer_sdk_with_json
from service.gateway.service import CallContext, Gateway
from service.gateway.tasks import TASKS_EXTENSION, TaskRunner, wants_task
from service.gateway.tasks_2025 import (
    CoreTasks,
    is_task_augmented,
    offers_core_tasks,
    shape_handshake,
    task_metadata_problem,
)
from service.grants.cache import GrantCache
from service.grants.schemas import AuthenticatedGrant
from service.oauth.gate import OAuthGate

log = logging.getLogger(__name__)

MCP_PATH = "/mcp"
SCOPE_KEY = "airlock.request"

INSTRUCTIONS = (
    "This is Airlock, a gateway in front of the tools listed here. Every tool call is checked against a policy. "
    "A result that starts with [POLICY DENIED] or [RATE LIMITED] was not executed: the text says why, and when a "
    "retry may succeed. Some calls need a person's approval: the call then waits (with progress notifications if "
    "you sent a progressToken), and if the decision takes longer than you can wait you get a normal result saying "
    "'Not executed yet: approval pending (R-123)'. Then call the tool airlock_approval_status with request_id R-123 "
    "to wait for the decision and receive the real result; calling the same tool again with the same arguments also "
    "waits on the same request instead of asking twice; airlock_approval_status without a request_id lists your "
    "recent requests and their states. If you gave up on a call that was then approved and ran, calling it again "
    "with the same arguments (within minutes) returns the stored result, marked '[REPLAY of R-123]' and in _meta "
    "airlock/replay_of: it is the same result, not a second run, and costs nothing. [REJECTED] gives the approver's "
    "reason; [EXPIRED] means nobody decided in time. A held call runs once, only after approval."
)


@dataclass(frozen=True, slots=True)
class RequestAuth:
    grant: AuthenticatedGrant
    scope: str | None


def _auth(ctx: ServerRequestContext[Any]) -> RequestAuth:
    request = ctx.request
    auth = request.scope.get(SCOPE_KEY) if request is not None else None
    if not isinstance(auth, RequestAuth):  # only reachable if the SDK is mounted without our entry in front
        raise NotAuthenticated("no grant on this request")
    return auth


def _session_id(ctx: ServerRequestContext[Any]) -> str | None:
    request = ctx.request
    if request is None:
        return None
    value = request.headers.get("mcp-session-id")
    return str(value) if value else None


def _client_name(ctx: ServerRequestContext[Any]) -> str | None:
    """The client's own name: from the handshake (2025 era) or the request's _meta (2026-07-28)."""
    meta = ctx.meta or {}
    info = meta.get("io.modelcontextprotocol/clientInfo")
    if isinstance(info, dict) and isinstance(info.get("name"), str):
        return str(info["name"])
    params = ctx.session.client_params
    if params is not None and params.client_info is not None:
        return params.client_info.name
    return None


def _progress_relay(ctx: ServerRequestContext[Any]) -> ProgressRelay | None:
    """Upstream progress, passed on to an agent that asked for progress (protocol.increasing_progress)."""
    if not ctx.meta or ctx.meta.get("progress_token") is None:
        return None
    return increasing_progress(ctx.session.report_progress)


def _modern(ctx: ServerRequestContext[Any]) -> bool:
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


async def _call_gateway(
    gateway: Gateway, call: CallContext, params: types.CallToolRequestParams
) -> types.CallToolResult | RelayedResult | HeldTask:
    """The gateway's answer to a tools/call; a failure answers as it does on the fast path (protocol.failure_error)."""
    try:
        return await gateway.call_tool(call, params.name, dict(params.arguments or {}))
    except Exception as exc:
        raise failure_error(params.name, exc) from None


def build_mcp_server(gateway: Gateway, tasks: TaskRunner, core_tasks: CoreTasks, *, version: str) -> Server[Any]:
    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        auth = _auth(ctx)
        task_support = offers_core_tasks(ctx.protocol_version)
        return types.ListToolsResult(tools=gateway.list_tools(auth.grant, auth.scope, task_support=task_support))

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> Any:
        # Any: a held call answers a client that speaks tasks with a task ({"resultType": "task", ...}), which the
        # SDK passes through unchecked on the 2026-07-28 wire.
        auth = _auth(ctx)
        wants = wants_task(ctx.protocol_version, dict(ctx.meta or {}), ctx.session.client_capabilities)
        call = CallContext(auth.grant, auth.scope, _session_id(ctx), _progress_relay(ctx), _client_name(ctx), wants)
        outcome = await _call_gateway(gateway, call, params)
        if isinstance(outcome, HeldTask):
            return tasks.created(_answering(outcome))
        return outcome.model() if isinstance(outcome, RelayedResult) else outcome

    async def task_augmented_call(ctx: ServerRequestContext[Any], call_next: CallNext) -> HandlerResult:
        """A 2025-11-25 tools/call with `params.task`, answered with a CreateTaskResult before the SDK's handler
        (whose result check only admits a CallToolResult)."""
        if not is_task_augmented(ctx.method, ctx.protocol_version, ctx.params, ctx.session.client_capabilities):
            return await call_next(ctx)
        auth = _auth(ctx)
        raw = dict(ctx.params or {})
        problem = task_metadata_problem(raw)
        if problem is not None:
            raise MCPError(types.INVALID_PARAMS, problem)
        try:
            params = types.CallToolRequestParams.model_validate(
                {k: v for k, v in raw.items() if k != "task"}, by_name=False
            )
        except ValidationError as exc:
            raise MCPError(types.INVALID_PARAMS, "Invalid request parameters", str(exc.errors()[:3])) from None
        call = CallContext(auth.grant, auth.scope, _session_id(ctx), _progress_relay(ctx), _client_name(ctx), True)
        outcome = await _call_gateway(gateway, call, params)
        _answering(outcome)
        return core_tasks.created(auth.grant, outcome.model() if isinstance(outcome, RelayedResult) else outcome)

    async def tasks_get(ctx: ServerRequestContext[Any], params: types.GetTaskRequestParams) -> dict[str, Any]:
        grant = _auth(ctx).grant
        return await (tasks.get(grant, params.task_id) if _modern(ctx) else core_tasks.get(grant, params.task_id))

    async def tasks_cancel(ctx: ServerRequestContext[Any], params: types.CancelTaskRequestParams) -> dict[str, Any]:
        grant = _auth(ctx).grant
        if _modern(ctx):
            return await tasks.cancel(grant, params.task_id)
        return await core_tasks.cancel(grant, params.task_id)

    async def tasks_result(ctx: ServerRequestContext[Any], params: types.GetTaskPayloadRequestParams) -> dict[str, Any]:
        return await core_tasks.result(_auth(ctx).grant, params.task_id)

    async def tasks_list(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams) -> dict[str, Any]:
        return await core_tasks.list(_auth(ctx).grant, params.cursor)

    async def list_resources(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        auth = _auth(ctx)
        return types.ListResourcesResult(resources=await gateway.list_resources(auth.grant, auth.scope))

    async def list_resource_templates(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        auth = _auth(ctx)
        return types.ListResourceTemplatesResult(
            resource_templates=await gateway.list_resource_templates(auth.grant, auth.scope)
        )

    async def read_resource(
        ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        auth = _auth(ctx)
        return await gateway.read_resource(auth.grant, auth.scope, str(params.uri))

    async def list_prompts(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        auth = _auth(ctx)
        return types.ListPromptsResult(prompts=await gateway.list_prompts(auth.grant, auth.scope))

    async def get_prompt(ctx: ServerRequestContext[Any], params: types.GetPromptRequestParams) -> types.GetPromptResult:
        auth = _auth(ctx)
        return await gateway.get_prompt(auth.grant, auth.scope, params.name, params.arguments)

    def tool_schema(name: str) -> Mapping[str, Any] | None:
        # Lets the SDK validate 2026 Mcp-Param headers without running tools/list on every call.
        tool = gateway.pool.catalog.tool(name)
        return tool.input_schema if tool is not None else None

    server = Server(
        "airlock",
        version=version,
        instructions=INSTRUCTIONS,
        get_tool_input_schema=tool_schema,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_resource_templates,
        on_read_resource=read_resource,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
    )
    server.extensions[TASKS_EXTENSION] = {}
    server.add_request_handler("tasks/get", types.GetTaskRequestParams, tasks_get)
    server.add_request_handler("tasks/cancel", types.CancelTaskRequestParams, tasks_cancel)
    server.add_request_handler("tasks/result", types.GetTaskPayloadRequestParams, tasks_result)
    server.add_request_handler("tasks/list", types.PaginatedRequestParams, tasks_list)
    server.middleware += [_era_handshake, _withdraw_unanswered(gateway.holds), task_augmented_call]
    return server


_Outcome = TypeVar("_Outcome")
_TASK_ANSWERS: ContextVar[list[int] | None] = ContextVar("airlock_task_answers", default=None)
"""The held requests the current tools/call is answering with a task (set by withdraw_unanswered)."""


def _answering(outcome: _Outcome) -> _Outcome:
    """Note a held call that is about to be answered with its task (withdrawn if that answer fails)."""
    answering = _TASK_ANSWERS.get()
    if isinstance(outcome, HeldTask) and answering is not None and outcome.request.id is not None:
        answering.append(outcome.request.id)
    return outcome


async def _era_handshake(ctx: ServerRequestContext[Any], call_next: CallNext) -> HandlerResult:
    answer = await call_next(ctx)
    return shape_handshake(answer) if ctx.method == "initialize" and isinstance(answer, dict) else answer


def _withdraw_unanswered(holds: HoldCoordinator) -> ServerMiddleware[Any]:
    """A held call answered with a task whose answer then fails (it cannot be encoded for the session, or the agent
    cancels first) is withdrawn: nobody knows its task id, so nothing may run or be charged for it."""

    async def middleware(ctx: ServerRequestContext[Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/call":
            return await call_next(ctx)
        held: list[int] = []
        token = _TASK_ANSWERS.set(held)
        try:
            return await call_next(ctx)
        except BaseException:
            with anyio.CancelScope(shield=True):
                for request_id in held:
                    try:
                        await holds.withdraw(request_id, "its task could not be handed to the agent")
                    except Unavailable:
                        log.warning("R-%s: its task answer failed and it could not be withdrawn", request_id)
            raise
        finally:
            _TASK_ANSWERS.reset(token)

    return middleware


@dataclass(frozen=True, slots=True)
class _Admitted:
    """A request whose grant was checked: who it is, and the principal the SDK binds its session to."""

    grant: AuthenticatedGrant
    upstream: str | None
    principal: str


class McpEntry:
    """ASGI for /mcp and /mcp/{upstream}: the grant is checked here, before the SDK parses anything, and before the
    upstream's name is looked up. A well-formed tools/call on a known session is served by the fast path
    (direct.py) unless `fast_path` is off; everything else goes to the SDK."""

    def __init__(
        self,
        manager: PerRequestSessionManager,
        grants: GrantCache,
        gateway: Gateway,
        direct: DirectCalls,
        *,
        max_body_bytes: int,
        fast_path: bool = True,
        oauth: OAuthGate | None = None,
    ) -> None:
        self._oauth = oauth
        self._direct = direct
        self._manager = manager
        self._grants = grants
        self._gateway = gateway
        self._upstreams = set(gateway.pool.names())
        self._max_body = max_body_bytes
        self._fast_path = fast_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            admitted = await self._admit(scope)
            if scope["method"] != "POST":
                await self._manager.handle_request(scope, receive, send)
                return
            body = await read_at_most(request_chunks(receive), self._max_body)
        except AirlockError as exc:
            await send_error(send, exc, self._challenge(scope))
            return
        message = peek_message(body)
        if self._fast_path and await self._served_directly(scope, receive, send, message, admitted):
            return
        answer_sdk_with_json(self._gateway.answers_at_once(message))
        await self._to_sdk(scope, _replay(body, receive), send, message, admitted.principal)

    async def _admit(self, scope: Scope) -> _Admitted:
        """The request's grant, and the upstream it may reach; marks the scope for the SDK and our handlers."""
        token = bearer_token(_authorization(scope))
        if token is None:
            raise NotAuthenticated("a grant token is required: Authorization: Bearer <token>")
        upstream = _upstream_of(scope)
        grant = await self._authenticate(token, upstream)
        if upstream is not None and (upstream not in self._upstreams or not grant.may_reach(upstream)):
            # One answer for a name that does not exist and one this grant may not reach: names are not told.
            raise NotFound(f"this grant reaches no upstream named {upstream!r}")
        scope[SCOPE_KEY] = RequestAuth(grant, upstream)
        # The SDK binds each session to the principal that opened it; include the path so a session opened for
        # one upstream cannot be replayed against the aggregate endpoint.
        principal = f"grant:{grant.id}:{upstream or '*'}"
        # No secret here: the grant was verified above, and the SDK only compares principals.
        scope["user"] = AuthenticatedUser(AccessToken(token="-", client_id=principal, scopes=[]))  # noqa: S106
        return _Admitted(grant, upstream, principal)

    def _challenge(self, scope: Scope) -> str | None:
        """With OAuth on, a 401 names where this endpoint's resource metadata is (RFC 9728 §5.1)."""
        if self._oauth is None:
            return None
        sent = bearer_token(_authorization(scope)) is not None
        return self._oauth.challenge(_upstream_of(scope), token_sent=sent)

    async def _authenticate(self, token: str, upstream: str | None) -> AuthenticatedGrant:
        try:
            if self._oauth is not None and self._oauth.owns(token):
                return await self._oauth.authenticate(token, upstream)
            return await self._grants.authenticate(token)
        except (NotAuthenticated, Forbidden):  # unknown or revoked (401); suspended with its owner (403)
            raise
        except Exception as exc:  # the grant store is down: fail closed with a clear answer
            # The first line only: a driver's error goes on with the statement and its parameters.
            log.warning("grant check failed: %s: %s", type(exc).__name__, (str(exc).splitlines() or [""])[0][:200])
            raise Unavailable("Airlock cannot check grants right now; try again shortly") from None

    async def _served_directly(
        self, scope: Scope, receive: Receive, send: Send, message: Mapping[str, Any] | None, admitted: _Admitted
    ) -> bool:
        """Serve a tools/call (or the cancellation of one) on the fast path; False leaves the request to the SDK."""
        if is_direct_candidate(message):
            assert message is not None
            facts = await self._direct.accepts(scope, receive, admitted.principal)
            if facts is None:
                return False
            await self._direct.serve(scope, receive, send, message, admitted.grant, admitted.upstream, facts)
            return True
        if not await self._direct.cancel(scope, receive, message, admitted.principal):
            return False
        await send({"type": "http.response.start", "status": 202, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
        return True

    async def _to_sdk(
        self, scope: Scope, receive: Receive, send: Send, message: Mapping[str, Any] | None, principal: str
    ) -> None:
        """Hand the request to the SDK; after a handshake, keep what the fast path needs to know of the session."""
        if not self._fast_path or message is None or message.get("method") != "initialize":
            await self._manager.handle_request(scope, receive, send)
            return
        opened: list[str] = []
        answer = bytearray()
        await self._manager.handle_request(scope, receive, _session_opened(send, opened, answer))
        facts = facts_from_handshake(principal, message.get("params"), bytes(answer)) if opened else None
        if facts is not None:
            self._direct.remember(opened[0], facts)


def _upstream_of(scope: Scope) -> str | None:
    return str(scope["path"])[len(MCP_PATH) + 1 :].strip("/") or None


def _authorization(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key == b"authorization":
            return str(value.decode("latin-1"))
    return None


_HANDSHAKE_ANSWER_LIMIT = 64 * 1024


def _session_opened(send: Send, opened: list[str], answer: bytearray) -> Send:
    """Pass the handshake's answer on, noting the session id it opened and (the start of) what it said."""

    async def watching(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] == 200:
            for key, value in message.get("headers", []):
                if key.lower() == b"mcp-session-id":
                    opened.append(value.decode("latin-1"))
        elif message["type"] == "http.response.body" and len(answer) < _HANDSHAKE_ANSWER_LIMIT:
            answer.extend(message.get("body", b""))
        await send(message)

    return watching


def _replay(body: bytes, receive: Receive) -> Receive:
    """Hand the SDK the body we already read, then the client's later messages (a disconnect)."""
    delivered = False

    async def replayed() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
