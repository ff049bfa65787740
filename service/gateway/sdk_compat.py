"""Every use of the MCP SDK's private parts, in this one module, and a check that the SDK is the one it was written
for.

The gateway serves and relays `tools/call` beside the SDK (direct.py, relay.py) and answers each request in the
format it needs (JSON or SSE, chosen per request). Both lean on parts of the SDK that are not its public surface;
they are all here, so an SDK upgrade means reading this file against the new SDK, not the whole gateway. At import
the installed SDK's minor version is checked: another one fails loudly, naming what to re-check
(`PRIVATES_TO_RECHECK`). Keep `SDK_SERIES` and the `mcp` range in pyproject.toml in step (a test checks they agree).

The answer format: the SDK fixes JSON-or-SSE per session, and SSE costs about 1.5 ms of CPU per request on the
benchmark machine. A request that can carry no intermediate message (no progress token, a tool the policy can never
hold, a listing) is answered with plain JSON; anything that may stream progress or wait for a person keeps SSE.
Both are valid answers to every POST in either protocol era, and clients must accept both. The choice lives in a
context variable set by the entry for the request's own task (`answer_sdk_with_json`). The SDK reads the mode in
that task when it answers, and in its router task only for messages *related* to a request, which a JSON request by
construction never produces.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from contextvars import ContextVar
from importlib.metadata import version as installed_version
from typing import Any
from uuid import uuid4

import anyio
from mcp import Client
from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.dispatcher import CallOptions
from starlette.requests import Request

SDK_SERIES = (2, 3)
"""The mcp minor version this module was written and audited for (pyproject.toml: mcp>=2.3,<2.4)."""

PRIVATES_TO_RECHECK = (
    "StreamableHTTPSessionManager._server_instances, ._session_owners and ._admit_session (PerRequestSessionManager)",
    "StreamableHTTPServerTransport.is_json_response_enabled and StreamableHTTPSessionManager.json_response, read per"
    " request (the answer format)",
    "StreamableHTTPServerTransport._idle_timeout, ._requests_in_flight and .idle_scope, as handle_request uses them"
    " (hold_session_open)",
    "StreamableHTTPServerTransport._check_content_type (accepts_content_type)",
    "ClientSession._dispatcher.send_raw_request (raw_request)",
    "the dispatcher's read loop: it iterates the read stream and reads its last_context (stream_context, and"
    " relay.CallTap, which stands in for the read stream)",
)


class UnsupportedSdk(RuntimeError):
    """The installed MCP SDK is not the minor version this module was written for."""


def check_sdk_version(found: str) -> None:
    """Refuse any mcp outside SDK_SERIES, naming what to re-check before allowing it."""
    parts = found.split(".")
    try:
        series = (int(parts[0]), int(parts[1]))
    except (IndexError, ValueError):
        series = None
    if series != SDK_SERIES:
        wanted = ".".join(map(str, SDK_SERIES))
        raise UnsupportedSdk(
            f"Airlock's gateway was written for mcp {wanted}.x and found mcp {found}. Before allowing it, re-check"
            f" these SDK private parts in service/gateway/sdk_compat.py against the new SDK, then change SDK_SERIES"
            f" and the mcp range in pyproject.toml together: " + "; ".join(PRIVATES_TO_RECHECK)
        )


check_sdk_version(installed_version("mcp"))


# -- the answer format, chosen per request ------------------------------------------------------------------

_answer_with_json: ContextVar[bool] = ContextVar("answer_with_json", default=False)


def answer_sdk_with_json(at_once: bool) -> None:
    """Have the SDK answer the current request with plain JSON (True) or SSE (False)."""
    _answer_with_json.set(at_once)


class _PerRequestTransport(StreamableHTTPServerTransport):
    @property
    def is_json_response_enabled(self) -> bool:
        return _answer_with_json.get()

    @is_json_response_enabled.setter
    def is_json_response_enabled(self, value: bool) -> None:
        """Ignored: the mode is per request, not per session."""


class PerRequestSessionManager(StreamableHTTPSessionManager):
    session_prefix = ""
    """Session ids start with this replica's name and a dot, for a balancer that routes sessions by it."""

    def live_sessions(self) -> Collection[str]:
        return self._server_instances.keys()

    def accepts_content_type(self, session_id: str, request: Request) -> bool:
        """The SDK's own Content-Type rule for a POST, as the session's transport applies it."""
        transport = self._server_instances.get(session_id)
        return transport is not None and transport._check_content_type(request)

    @asynccontextmanager
    async def hold_session_open(self, session_id: str) -> AsyncIterator[bool]:
        """A request served outside the SDK (direct.py) still holds its session open, as the SDK's own
        transport does for the requests it serves (its idle accounting); False when the session is gone."""
        transport = self._server_instances.get(session_id)
        if transport is None or transport.is_terminated:
            yield False
            return
        idle = transport.idle_scope
        timeout = transport._idle_timeout
        if idle is None or timeout is None:
            yield True
            return
        if idle.cancel_called:
            yield False
            return
        transport._requests_in_flight += 1
        idle.deadline = math.inf
        try:
            yield True
        finally:
            transport._requests_in_flight -= 1
            if not transport._requests_in_flight:
                idle.deadline = anyio.current_time() + timeout

    @property
    def json_response(self) -> bool:
        return _answer_with_json.get()

    @json_response.setter
    def json_response(self, value: bool) -> None:
        """Ignored: the mode is per request, not per session."""

    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        # The SDK's own admission, with our transport class.
        if self.max_sessions is not None and len(self._server_instances) >= self.max_sessions:
            return None
        transport = _PerRequestTransport(
            mcp_session_id=self.session_prefix + uuid4().hex,
            event_store=self.event_store,
            security_settings=self.security_settings,
            retry_interval=self.retry_interval,
            idle_timeout=self.session_idle_timeout,
        )
        session_id = transport.mcp_session_id
        assert session_id is not None
        if requestor is not None:
            self._session_owners[session_id] = requestor
        self._server_instances[session_id] = transport
        return transport


# -- the client side ----------------------------------------------------------------------------------------


async def raw_request(
    client: Client,
    method: str,
    params: dict[str, Any] | None,
    *,
    timeout: float | None = None,
    cancel_on_abandon: bool = True,
) -> dict[str, Any]:
    """A request whose result is not validated against the negotiated revision: the dispatcher call that
    ClientSession.send_request itself makes before validating. `timeout`: seconds to wait for the result before
    raising; `cancel_on_abandon=False` then stops waiting without telling the server, as some clients do."""
    options: CallOptions = {"cancel_on_abandon": cancel_on_abandon}
    if timeout is not None:
        options["timeout"] = timeout
    raw: dict[str, Any] = await client.session._dispatcher.send_raw_request(method, params, options)
    return raw


def stream_context(read_stream: Any) -> Any:
    """The sender's context that the SDK's read streams keep beside each message, which its dispatcher reads; a
    stream that stands in for one (relay.CallTap) passes it on."""
    return getattr(read_stream, "last_context", None)
