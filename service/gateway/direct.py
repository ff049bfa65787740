"""`tools/call` on an established 2025-era session, answered without the SDK's per-request machinery.

Through the SDK, one tool call costs a parse and a validation of the message, memory streams between the HTTP
request, the session's router and the handler, a task group with an SSE writer per request, and the handler's
result check: about 2.5 ms of CPU on the benchmark machine, and about 80 KB for each call that is held open for
a person. This path serves the same call from the request itself: the gateway decides it, and the answer goes
out as plain JSON, or as SSE when it may carry progress or wait. A held call is then one coroutine on an open
HTTP response.

Only what the SDK would have accepted comes here: a well-formed `tools/call` on a live session opened by the
same grant, with valid Host/Origin, Content-Type and Accept headers and a handshake-era protocol version.
Everything else (the handshake, listings, tasks, the 2026-07-28 revision, anything unusual) goes to the SDK,
which stays the reference for what is valid.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import mcp_types as types
from mcp.server.streamable_http import check_accept_headers
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from mcp_types.methods import serialize_server_result
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from service.clock import SYSTEM_CLOCK, Clock
from service.edge import send_json
from service.gateway.event_stream import KeepAliveTicker
from service.gateway.holds import HeldTask
from service.gateway.protocol import (
    ProgressRelay,
    cancelled_envelope,
    cancelled_request_id,
    error_envelope,
    failure_error,
    handshake_result,
    progress_token,
    result_envelope,
)
from service.gateway.relay import RelayedResult
from service.gateway.sdk_compat import PerRequestSessionManager
from service.gateway.service import CallContext, Gateway
from service.grants.schemas import AuthenticatedGrant

log = logging.getLogger(__name__)

SESSION_HEADER = "mcp-session-id"
_CHECKED_HEADERS = ("accept", "content-type", "host", "origin")
_MAX_VERDICTS = 256
_COMPACT = json.JSONEncoder(separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """What the handshake told us about a session, kept by the entry (the SDK keeps it out of reach)."""

    principal: str
    client_name: str | None
    version: str
    """The protocol version the handshake settled on: results are shaped for it, as the SDK would."""


def facts_from_handshake(principal: str, params: Any, answer: bytes) -> SessionFacts | None:
    """The session's facts from its initialize request and the SDK's answer; None unless the handshake succeeded
    (a refused initialize still opens a session, which the SDK then keeps closed to everything but initialize)."""
    result = handshake_result(answer)
    version = result.get("protocolVersion") if result is not None else None
    if not isinstance(version, str) or version not in HANDSHAKE_PROTOCOL_VERSIONS:
        return None
    info = params.get("clientInfo") if isinstance(params, dict) else None
    name = info.get("name") if isinstance(info, dict) else None
    return SessionFacts(principal=principal, client_name=name if isinstance(name, str) else None, version=version)


class DirectCalls:
    def __init__(
        self,
        gateway: Gateway,
        manager: PerRequestSessionManager,
        security: TransportSecuritySettings,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._gateway = gateway
        self._manager = manager
        self._security = TransportSecurityMiddleware(security)
        self._sessions: dict[str, SessionFacts] = {}
        self._in_flight: dict[tuple[str, str], tuple[str, anyio.CancelScope]] = {}
        self._header_verdicts: dict[tuple[str | None, ...], bool] = {}
        self._keep_alive = KeepAliveTicker(clock)

    async def keep_streams_alive(self) -> None:
        """Run for as long as calls are served: the keep-alive of every waiting call's stream."""
        await self._keep_alive.run()

    # -- sessions -------------------------------------------------------------------------------------------

    def remember(self, session_id: str, facts: SessionFacts) -> None:
        live = self._manager.live_sessions()
        for gone in [sid for sid in self._sessions if sid not in live]:
            del self._sessions[gone]
        self._sessions[session_id] = facts

    async def accepts(self, scope: Scope, receive: Receive, principal: str) -> SessionFacts | None:
        """The session's facts when the SDK would accept this request as it is; None sends it to the SDK."""
        session_id = _header(scope, SESSION_HEADER)
        facts = self._sessions.get(session_id) if session_id else None
        if session_id is None or facts is None or facts.principal != principal:
            return None
        if session_id not in self._manager.live_sessions():
            return None
        version = _header(scope, "mcp-protocol-version")
        if version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS:
            return None
        # The SDK's header checks read nothing but these four headers (their first values), and an agent sends the
        # same ones on every call: their verdict is kept instead of parsing them again.
        key = tuple(_header(scope, name) for name in _CHECKED_HEADERS)
        verdict = self._header_verdicts.get(key)
        if verdict is None:
            verdict = await self._headers_pass(session_id, Request(scope, receive))
            if len(self._header_verdicts) >= _MAX_VERDICTS:
                self._header_verdicts.clear()
            self._header_verdicts[key] = verdict
        return facts if verdict else None

    async def _headers_pass(self, session_id: str, request: Request) -> bool:
        has_json, has_sse = check_accept_headers(request)
        if not (has_json and has_sse) or not self._manager.accepts_content_type(session_id, request):
            return False
        return await self._security.validate_request(request, is_post=True) is None

    async def cancel(self, scope: Scope, receive: Receive, message: Mapping[str, Any] | None, principal: str) -> bool:
        """notifications/cancelled for a call served here (the SDK would not know it), from the session's own
        grant and an allowed origin: True when it was ours and is now cancelled."""
        request_id = cancelled_request_id(message)
        session_id = _header(scope, SESSION_HEADER)
        if session_id is None or request_id is None:
            return False
        in_flight = self._in_flight.get(_call_key(session_id, request_id))
        if in_flight is None or in_flight[0] != principal:
            return False
        if await self._security.validate_request(Request(scope, receive), is_post=True) is not None:
            return False
        in_flight[1].cancel()
        return True

    # -- serving a call -------------------------------------------------------------------------------------

    async def serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        message: Mapping[str, Any],
        grant: AuthenticatedGrant,
        upstream: str | None,
        facts: SessionFacts,
    ) -> None:
        session_id = _header(scope, SESSION_HEADER)
        assert session_id is not None
        headers = [(SESSION_HEADER.encode(), session_id.encode())]
        async with self._manager.hold_session_open(session_id) as alive:
            if not alive:  # the session timed out in the meantime: nothing was done
                await _respond_json(
                    send, 404, error_envelope(message["id"], types.INVALID_REQUEST, "Session not found")
                )
                return
            key = _call_key(session_id, message["id"])
            streaming = not self._gateway.answers_at_once(message)
            with anyio.CancelScope() as cancel_scope:
                self._in_flight[key] = (facts.principal, cancel_scope)  # notifications/cancelled finds it here
                try:
                    call = _Call(message, session_id, facts, grant, upstream, cancel_scope)
                    if streaming:
                        await self._stream(receive, send, call)
                    else:
                        await _respond_json(send, 200, await self._answer(call, None), headers)
                    return
                finally:
                    if self._in_flight.get(key, (None, None))[1] is cancel_scope:
                        del self._in_flight[key]
            if not streaming:  # cancelled by the agent: nobody reads this, but the request gets its response
                await _respond_json(send, 200, cancelled_envelope(message["id"]), headers)

    async def _stream(self, receive: Receive, send: Send, call: _Call) -> None:
        """An answer that may carry progress, or wait for a person: SSE, with the agent's hang-up noticed. A call
        cancelled by the agent ends with the same error the SDK sends; after a hang-up nothing is sent."""
        stream = self._keep_alive.stream(send, [(SESSION_HEADER.encode(), call.session_id.encode())])
        await stream.open()
        answered = False
        self._keep_alive.add(stream)
        try:
            token = progress_token(call.message["params"].get("_meta"))
            async with anyio.create_task_group() as group:
                group.start_soon(stream.watch, receive, call.cancel_scope)
                await stream.event(await self._answer(call, stream.progress_relay(token)))
                answered = True
                group.cancel_scope.cancel()
        finally:
            self._keep_alive.discard(stream)
            with anyio.CancelScope(shield=True):
                if not answered and not stream.hung_up:
                    await stream.event(cancelled_envelope(call.message["id"]))
                await stream.close()

    async def _answer(self, call: _Call, progress: ProgressRelay | None) -> dict[str, Any]:
        params: dict[str, Any] = call.message["params"]
        request_id = call.message["id"]
        context = CallContext(
            call.grant,
            call.upstream,
            call.session_id,
            progress,
            call.facts.client_name,
            False,
            present=lambda: not call.cancel_scope.cancel_called,
        )
        try:
            outcome = await self._gateway.call_tool(context, params["name"], dict(params.get("arguments") or {}))
            # A handshake-era session's tasks are task-augmented calls, which never come here (tasks.wants_task).
            assert not isinstance(outcome, HeldTask)
            # Shaped for the session's protocol version, as the SDK does for what its handlers return; an upstream's
            # plain result goes out as it came (relay.py).
            if isinstance(outcome, RelayedResult):
                result = outcome.for_version(call.facts.version)
            else:
                dumped = outcome.model_dump(mode="json", by_alias=True, exclude_none=True)
                result = serialize_server_result("tools/call", call.facts.version, dumped)
        except Exception as exc:  # the same answer the SDK's handler gives (protocol.failure_error)
            error = failure_error(params["name"], exc).error
            return error_envelope(request_id, error.code, error.message)
        return result_envelope(request_id, result)


@dataclass(frozen=True, slots=True)
class _Call:
    message: Mapping[str, Any]
    session_id: str
    facts: SessionFacts
    grant: AuthenticatedGrant
    upstream: str | None
    cancel_scope: anyio.CancelScope


def _call_key(session_id: str, request_id: int | str) -> tuple[str, str]:
    # JSON text keeps 1 and "1" apart, as JSON-RPC does.
    return session_id, json.dumps(request_id)


async def _respond_json(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send_json(send, status, _COMPACT.encode(body).encode(), headers)


def _header(scope: Scope, name: str) -> str | None:
    wanted = name.encode()
    for key, value in scope["headers"]:
        if key == wanted:
            return str(value.decode("latin-1"))
    return None
