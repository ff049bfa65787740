"""Streamable HTTP with the answer format chosen per request.

The SDK fixes JSON-or-SSE per session, and SSE costs about 1.5 ms of CPU per request on the benchmark machine.
A request that can carry no intermediate message (no progress token, a tool the policy can never hold, a
listing) is answered with plain JSON; anything that may stream progress or wait for a person keeps SSE.
Both are valid answers to every POST in either protocol era, and clients must accept both.

The choice lives in a context variable set by the entry for the request's own task. The SDK reads the mode
in that task when it answers, and in its router task only for messages *related* to a request, which a JSON
request by construction never produces.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from contextvars import ContextVar
from uuid import uuid4

import anyio
from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

answer_with_json: ContextVar[bool] = ContextVar("answer_with_json", default=False)


class _PerRequestTransport(StreamableHTTPServerTransport):
    @property
    def is_json_response_enabled(self) -> bool:
        return answer_with_json.get()

    @is_json_response_enabled.setter
    def is_json_response_enabled(self, value: bool) -> None:
        """Ignored: the mode is per request, not per session."""


class PerRequestSessionManager(StreamableHTTPSessionManager):
    session_prefix = ""
    """Session ids start with this replica's name and a dot, for a balancer that routes sessions by it."""

    def live_sessions(self) -> Collection[str]:
        return self._server_instances.keys()

    @asynccontextmanager
    async def serving(self, session_id: str) -> AsyncIterator[bool]:
        """A request served outside the SDK (direct.py) still holds its session open, as the SDK's own
        transport does for the requests it serves (mcp 2.3's idle accounting); False when the session is gone."""
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
        return answer_with_json.get()

    @json_response.setter
    def json_response(self, value: bool) -> None:
        """Ignored: the mode is per request, not per session."""

    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        # The SDK's own admission, with our transport class (mcp 2.3's StreamableHTTPSessionManager).
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
