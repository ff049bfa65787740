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
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import mcp_types as types
from mcp.server.streamable_http import check_accept_headers
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp_types.methods import serialize_server_result
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from service.gateway.holds import HeldTask
from service.gateway.relay import RelayedResult
from service.gateway.service import CallContext, Gateway
from service.gateway.transport import PerRequestSessionManager
from service.gateway.upstreams import ProgressRelay
from service.grants.schemas import AuthenticatedGrant

log = logging.getLogger(__name__)

SESSION_HEADER = "mcp-session-id"
# A comment line on a held call's stream now and then keeps proxies and idle-timeouts from closing it; rarer
# than the SDK's 15 s, because 5,000 held calls each pinging is the whole idle cost of holding them.
KEEPALIVE_SECONDS = 25.0
REQUEST_CANCELLED = -32800
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
    result = _handshake_result(answer)
    version = result.get("protocolVersion") if result is not None else None
    if not isinstance(version, str) or version not in HANDSHAKE_PROTOCOL_VERSIONS:
        return None
    info = params.get("clientInfo") if isinstance(params, dict) else None
    name = info.get("name") if isinstance(info, dict) else None
    return SessionFacts(principal=principal, client_name=name if isinstance(name, str) else None, version=version)


def _handshake_result(answer: bytes) -> dict[str, Any] | None:
    """The `result` of the initialize answer, sent as JSON or as one SSE event."""
    text = answer.decode("utf-8", "replace").strip()
    if not text.startswith("{"):
        data = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
        text = data[-1] if data else ""
    try:
        message = json.loads(text)
    except ValueError:
        return None
    result = message.get("result") if isinstance(message, dict) and "error" not in message else None
    return result if isinstance(result, dict) else None


def is_direct_candidate(message: Mapping[str, Any] | None) -> bool:
    """A single, well-formed tools/call request that asks for nothing but a call (no task augmentation)."""
    if message is None or message.get("jsonrpc") != "2.0" or message.get("method") != "tools/call":
        return False
    request_id = message.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, int | str):
        return False
    params = message.get("params")
    if not isinstance(params, dict) or not isinstance(params.get("name"), str) or "task" in params:
        return False
    arguments = params.get("arguments")
    meta = params.get("_meta")
    return (arguments is None or isinstance(arguments, dict)) and (meta is None or isinstance(meta, dict))


class DirectCalls:
    def __init__(
        self, gateway: Gateway, manager: PerRequestSessionManager, security: TransportSecuritySettings
    ) -> None:
        self._gateway = gateway
        self._manager = manager
        self._security = TransportSecurityMiddleware(security)
        self._sessions: dict[str, SessionFacts] = {}
        self._in_flight: dict[tuple[str, str], tuple[str, anyio.CancelScope]] = {}
        self._header_verdicts: dict[tuple[str | None, ...], bool] = {}
        self._keep_alive = _KeepAlive()

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
        if facts is None or facts.principal != principal:
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
            verdict = await self._headers_pass(Request(scope, receive))
            if len(self._header_verdicts) >= _MAX_VERDICTS:
                self._header_verdicts.clear()
            self._header_verdicts[key] = verdict
        return facts if verdict else None

    async def _headers_pass(self, request: Request) -> bool:
        has_json, has_sse = check_accept_headers(request)
        if not (has_json and has_sse) or not _is_json(request):
            return False
        return await self._security.validate_request(request, is_post=True) is None

    async def cancel(self, scope: Scope, receive: Receive, message: Mapping[str, Any] | None, principal: str) -> bool:
        """notifications/cancelled for a call served here (the SDK would not know it), from the session's own
        grant and an allowed origin: True when it was ours and is now cancelled."""
        if message is None or message.get("method") != "notifications/cancelled" or "id" in message:
            return False
        params = message.get("params")
        request_id = params.get("requestId") if isinstance(params, dict) else None
        session_id = _header(scope, SESSION_HEADER)
        if session_id is None or isinstance(request_id, bool) or not isinstance(request_id, int | str):
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
        async with self._manager.serving(session_id) as alive:
            if not alive:  # the session timed out in the meantime: nothing was done
                await _respond_json(send, 404, _error(message["id"], types.INVALID_REQUEST, "Session not found"))
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
                await _respond_json(send, 200, _cancelled(message["id"]), headers)

    async def _stream(self, receive: Receive, send: Send, call: _Call) -> None:
        """An answer that may carry progress, or wait for a person: SSE, with the agent's hang-up noticed. A call
        cancelled by the agent ends with the same error the SDK sends; after a hang-up nothing is sent."""
        stream = _EventStream(send, [(SESSION_HEADER.encode(), call.session_id.encode())])
        await stream.open()
        answered = False
        self._keep_alive.add(stream)
        try:
            meta = call.message["params"].get("_meta") or {}
            async with anyio.create_task_group() as group:
                group.start_soon(stream.watch, receive, call.cancel_scope)
                await stream.event(await self._answer(call, stream.progress_relay(meta.get("progressToken"))))
                answered = True
                group.cancel_scope.cancel()
        finally:
            self._keep_alive.discard(stream)
            with anyio.CancelScope(shield=True):
                if not answered and not stream.hung_up:
                    await stream.event(_cancelled(call.message["id"]))
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
        except MCPError as exc:
            return _error(request_id, exc.error.code, exc.error.message)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception:  # an answer the agent can act on, and the details in our log, never a traceback
            log.exception("tools/call %s failed", params["name"])
            return _error(request_id, types.INTERNAL_ERROR, "Internal error")
        return {"jsonrpc": "2.0", "id": request_id, "result": result}


@dataclass(frozen=True, slots=True)
class _Call:
    message: Mapping[str, Any]
    session_id: str
    facts: SessionFacts
    grant: AuthenticatedGrant
    upstream: str | None
    cancel_scope: anyio.CancelScope


class _KeepAlive:
    """One ticker for every open event stream: a stream quiet for KEEPALIVE_SECONDS gets a comment line, so proxies
    and clients keep it open while its call waits for a person. One timer for all of them, not one per call: with
    thousands of calls held, a timer each was most of the CPU that holding them cost."""

    def __init__(self) -> None:
        self._streams: set[_EventStream] = set()

    def add(self, stream: _EventStream) -> None:
        self._streams.add(stream)

    def discard(self, stream: _EventStream) -> None:
        self._streams.discard(stream)

    async def run(self) -> None:
        while True:
            await anyio.sleep(KEEPALIVE_SECONDS / 5)
            moment = time.monotonic() - KEEPALIVE_SECONDS
            for stream in [s for s in self._streams if s.quiet_since(moment)]:
                try:
                    with anyio.move_on_after(1):  # an agent that stopped reading holds up no other stream
                        await stream.keep_alive()
                except Exception:  # one broken stream must not end the ticker (nor, with it, the app)
                    log.debug("keep-alive not written", exc_info=True)


class _EventStream:
    """One SSE response, written by the call, its progress and its keep-alive, one event at a time."""

    def __init__(self, send: Send, headers: list[tuple[bytes, bytes]]) -> None:
        self._send = send
        self._headers = headers
        self._lock = anyio.Lock()
        self._last_write = time.monotonic()
        self._closed = False
        self.hung_up = False

    async def open(self) -> None:
        headers = [
            (b"content-type", b"text/event-stream"),
            (b"cache-control", b"no-cache, no-transform"),
            (b"x-accel-buffering", b"no"),
            *self._headers,
        ]
        await self._send({"type": "http.response.start", "status": 200, "headers": headers})

    async def event(self, body: dict[str, Any]) -> None:
        await self._write(b"event: message\ndata: " + _COMPACT.encode(body).encode() + b"\n\n")

    async def watch(self, receive: Receive, cancel_scope: anyio.CancelScope) -> None:
        """Cancel the call when the agent hangs up (a held one then marks its request "requester gone"). No timer:
        the keep-alive ticker writes to quiet streams."""
        while (await receive())["type"] != "http.disconnect":
            pass
        self.hung_up = True
        cancel_scope.cancel()

    def quiet_since(self, moment: float) -> bool:
        return self._last_write <= moment and not self._lock.locked()

    async def keep_alive(self) -> None:
        await self._write(b": keep-alive\n\n")

    async def close(self) -> None:
        async with self._lock:
            self._closed = True
            await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    def progress_relay(self, token: Any) -> ProgressRelay | None:
        if token is None or isinstance(token, bool) or not isinstance(token, int | str):
            return None
        last = -1.0

        async def relay(progress: float, total: float | None, message: str | None) -> None:
            nonlocal last
            value = max(progress, last + 1e-6)  # progress must increase, whatever the upstream sends
            last = value
            params: dict[str, Any] = {"progressToken": token, "progress": value}
            if total is not None:
                params["total"] = total
            if message is not None:
                params["message"] = message
            await self.event({"jsonrpc": "2.0", "method": "notifications/progress", "params": params})

        return relay

    async def _write(self, chunk: bytes) -> None:
        async with self._lock:
            # The ticker may pick a stream, then wait on another one's write while this response ends.
            if not self._closed:
                await self._send({"type": "http.response.body", "body": chunk, "more_body": True})
                self._last_write = time.monotonic()


def _call_key(session_id: str, request_id: int | str) -> tuple[str, str]:
    # JSON text keeps 1 and "1" apart, as JSON-RPC does.
    return session_id, json.dumps(request_id)


def _is_json(request: Request) -> bool:
    """The SDK's Content-Type rule: an exact application/json among the listed types."""
    declared = request.headers.get("content-type", "").split(";")[0]
    return any(part.strip() == "application/json" for part in declared.split(","))


def _cancelled(request_id: Any) -> dict[str, Any]:
    return _error(request_id, REQUEST_CANCELLED, "Request cancelled")


def _error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


async def _respond_json(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = _COMPACT.encode(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _header(scope: Scope, name: str) -> str | None:
    wanted = name.encode()
    for key, value in scope["headers"]:
        if key == wanted:
            return str(value.decode("latin-1"))
    return None
