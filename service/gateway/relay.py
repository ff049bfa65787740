"""`tools/call` to an upstream without the SDK's per-request client machinery, and its result passed on as sent.

Through `ClientSession.send_request`, one upstream call cost a request model built and dumped, an OpenTelemetry
span, a request clock, a memory stream per request, then the result validated for the upstream's protocol
version, parsed into a model, and (on the direct path) dumped and validated again for the agent's version: about
a fifth of the gateway's CPU per call. Here the call is one JSON-RPC request written to the transport the SDK's
session also uses, and its answer is taken off the transport's read stream before the SDK's dispatcher would see
it. Everything else on the connection (the handshake, listings, pings, resources, prompts, anything the upstream
asks of us) still goes through the SDK.

The result is relayed as the upstream sent it when it has the shape every handshake-era revision accepts and the
SDK's own check would have passed unchanged (`is_plain`); anything else takes the SDK's path (validate, parse,
reshape for the agent's version), so an unusual result gets exactly the treatment it always had.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import anyio
import mcp_types as types
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp.shared.message import ClientMessageMetadata, SessionMessage
from mcp_types.methods import serialize_server_result
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from service.gateway.protocol import ProgressRelay
from service.gateway.sdk_compat import stream_context

log = logging.getLogger(__name__)

_ID_PREFIX = "airlock-"
"""Our request ids: strings, so they never meet the integers the SDK's dispatcher mints on the same connection."""
_CANCEL_WRITE_SECONDS = 5.0

_TOP_KEYS = frozenset({"content", "structuredContent", "isError", "_meta"})
_TEXT_KEYS = frozenset({"type", "text", "_meta"})
_MEDIA_KEYS = frozenset({"type", "data", "mimeType", "_meta"})


class UpstreamUnavailable(Exception):
    """The upstream is down, restarting, or broke off the call; the message says how (the caller names it)."""


class UpstreamGone(UpstreamUnavailable):
    """The connection closed (or was never usable) while the call was outstanding."""


class UpstreamTimedOut(UpstreamUnavailable):
    """No answer within the call timeout."""


class UpstreamRefused(UpstreamUnavailable):
    """The upstream answered with a JSON-RPC error."""


def is_plain(result: Any) -> bool:
    """Whether the SDK's check passes a tools/call result unchanged for every handshake-era revision (mcp 2.3 checks
    them all against one model): text, image and audio blocks with nothing but their required fields and `_meta`,
    optional structured content, isError and `_meta`, and no nulls. Such a result reaches the agent the same either
    way, so the relay skips the SDK for it; apart from key order and an `isError: false` the SDK adds."""
    if not isinstance(result, dict) or not _TOP_KEYS.issuperset(result):
        return False
    content = result.get("content")
    if not isinstance(content, list):
        return False
    if "isError" in result and not isinstance(result["isError"], bool):
        return False
    if "structuredContent" in result and not isinstance(result["structuredContent"], dict):
        return False
    if "_meta" in result and not isinstance(result["_meta"], dict):
        return False
    return all(_is_plain_block(block) for block in content)


def _is_plain_block(block: Any) -> bool:
    if not isinstance(block, dict) or ("_meta" in block and not isinstance(block["_meta"], dict)):
        return False
    kind = block.get("type")
    if kind == "text":
        return _TEXT_KEYS.issuperset(block) and isinstance(block.get("text"), str)
    if kind in ("image", "audio"):
        media = block.get("data"), block.get("mimeType")
        return _MEDIA_KEYS.issuperset(block) and all(isinstance(value, str) for value in media)
    return False


@dataclass(slots=True)
class RelayedResult:
    """An upstream's tools/call result: the wire form when it is plain, else the SDK's model of it."""

    wire: dict[str, Any] | None
    parsed: types.CallToolResult | None = None

    @classmethod
    def checked(cls, raw: Any, upstream_version: str) -> RelayedResult:
        """The result as the upstream sent it when plain; otherwise what the SDK makes of it for the upstream's
        version (its own validation, unknown fields dropped). Raises UpstreamUnavailable when the SDK refuses it."""
        if is_plain(raw):
            return cls(raw)
        try:
            shaped = serialize_server_result("tools/call", upstream_version, raw)
            return cls(None, types.CallToolResult.model_validate(shaped, by_name=False))
        except (ValueError, KeyError, TypeError):  # pydantic's ValidationError is a ValueError
            raise UpstreamUnavailable("returned a malformed result") from None

    @property
    def is_error(self) -> bool:
        if self.wire is not None:
            return self.wire.get("isError") is True
        assert self.parsed is not None
        return bool(self.parsed.is_error)

    def model(self) -> types.CallToolResult:
        """The SDK's model, for the paths that hand results to the SDK or store them."""
        if self.parsed is None:
            self.parsed = types.CallToolResult.model_validate(self.wire, by_name=False)
        return self.parsed

    def wire_view(self) -> dict[str, Any]:
        """The result in wire form (what the audit summary reads)."""
        if self.wire is not None:
            return self.wire
        return self.model().model_dump(mode="json", by_alias=True, exclude_none=True)

    def for_version(self, version: str) -> dict[str, Any]:
        """The result shaped for an agent's protocol version, as the SDK shapes what its handlers return."""
        if self.wire is not None and version not in MODERN_PROTOCOL_VERSIONS:
            return self.wire
        return serialize_server_result("tools/call", version, self.wire_view())


@dataclass(slots=True)
class _Waiter:
    outcome: asyncio.Future[dict[str, Any]]
    updates: asyncio.Queue[tuple[Any, ...]] | None = None
    """With a progress callback: progress and the outcome, in arrival order."""
    settled: bool = False

    def time_out(self, seconds: float) -> None:
        self.settle(None, UpstreamTimedOut(f"did not answer within {seconds:g} s"))

    def settle(self, value: dict[str, Any] | None, failure: Exception | None) -> None:
        if self.settled or self.outcome.done():  # a cancelled caller's future is done already
            return
        self.settled = True
        if self.updates is not None:
            self.updates.put_nowait(("done", value, failure))
        elif failure is not None:
            self.outcome.set_exception(failure)
        else:
            assert value is not None
            self.outcome.set_result(value)


class CallTap:
    """The read side of an upstream transport as the SDK's dispatcher sees it, minus the answers to our own calls.

    The dispatcher reads this stream in its receive loop, so taking our answers off costs no task of its own.
    When the stream ends, or the dispatcher stops reading, our outstanding calls fail at once.
    """

    def __init__(self, read_stream: Any, write_stream: Any, on_close: Callable[[], None] = lambda: None) -> None:
        self._read = read_stream
        self._write = write_stream
        self._on_close = on_close
        self._waiters: dict[str, _Waiter] = {}
        self._next_id = 0
        self._closed = False

    # -- the stream the SDK's dispatcher reads -----------------------------------------------------------

    @property
    def last_context(self) -> Any:
        return stream_context(self._read)

    async def receive(self) -> Any:
        try:
            while True:
                item = await self._read.receive()
                if not self._took(item):
                    return item
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self.close("the connection closed")
            raise

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        self.close("the connection closed")
        await self._read.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def _took(self, item: Any) -> bool:
        """Settle our call if this is its answer, pass on its progress; False for anything else."""
        if not self._waiters or not isinstance(item, SessionMessage):
            return False
        message = item.message
        if isinstance(message, types.JSONRPCResponse | types.JSONRPCError):
            waiter = self._waiters.get(message.id) if isinstance(message.id, str) else None
            if waiter is None:
                return False
            if isinstance(message, types.JSONRPCResponse):
                waiter.settle(message.result, None)
            else:
                waiter.settle(None, UpstreamRefused(f"failed: {message.error.message}"))
            return True
        if isinstance(message, types.JSONRPCNotification) and message.method == "notifications/progress":
            return self._progress(message.params)
        return False

    def _progress(self, params: Mapping[str, Any] | None) -> bool:
        token = params.get("progressToken") if params else None
        waiter = self._waiters.get(token) if isinstance(token, str) else None
        if waiter is None or waiter.updates is None or params is None:
            return False
        progress, total, text = params.get("progress"), params.get("total"), params.get("message")
        if isinstance(progress, int | float) and not isinstance(progress, bool):
            waiter.updates.put_nowait(
                (
                    "progress",
                    float(progress),
                    float(total) if isinstance(total, int | float) and not isinstance(total, bool) else None,
                    text if isinstance(text, str) else None,
                )
            )
        return True

    def close(self, reason: str) -> None:
        """Fail every outstanding call; later calls fail at once."""
        if not self._closed:
            self._on_close()
        self._closed = True
        waiters, self._waiters = self._waiters, {}
        for waiter in waiters.values():
            waiter.settle(None, UpstreamGone(f"went away during the call ({reason})"))

    # -- our calls ---------------------------------------------------------------------------------------

    async def call(
        self, method: str, params: dict[str, Any], *, version: str, progress: ProgressRelay | None, timeout: float
    ) -> dict[str, Any]:
        """Send one request and wait for its result (a plain dict, unchecked)."""
        if self._closed:
            raise UpstreamGone("is not connected")
        self._next_id += 1
        request_id = f"{_ID_PREFIX}{self._next_id}"
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop.create_future(), asyncio.Queue() if progress is not None else None)
        if progress is not None:
            params = {**params, "_meta": {**(params.get("_meta") or {}), "progressToken": request_id}}
        message = SessionMessage(
            types.JSONRPCRequest(jsonrpc="2.0", id=request_id, method=method, params=params),
            metadata=ClientMessageMetadata(headers={MCP_PROTOCOL_VERSION_HEADER: version}),
        )
        self._waiters[request_id] = waiter
        timer = loop.call_later(timeout, waiter.time_out, timeout)
        sent = False
        try:
            await self._send(message)
            sent = True
            if waiter.updates is None or progress is None:
                return await waiter.outcome
            return await _with_progress(waiter.updates, progress)
        except UpstreamTimedOut:
            await self._cancel_upstream(request_id, "timed out", shield=False)
            raise
        except anyio.get_cancelled_exc_class():
            if sent:  # the upstream may be working on it: ask it to stop, as the SDK does for a cancelled caller
                await self._cancel_upstream(request_id, "caller cancelled", shield=True)
            raise
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise UpstreamGone("went away during the call") from None
        finally:
            timer.cancel()
            self._waiters.pop(request_id, None)

    async def _send(self, message: SessionMessage) -> None:
        # A stdio transport's writer is normally parked on its stream: hand the message over without a wait.
        send_nowait = getattr(self._write, "send_nowait", None)
        if send_nowait is not None:
            with contextlib.suppress(anyio.WouldBlock):
                send_nowait(message)
                return
        await self._write.send(message)

    async def _cancel_upstream(self, request_id: str, reason: str, *, shield: bool) -> None:
        notice = types.JSONRPCNotification(
            jsonrpc="2.0", method="notifications/cancelled", params={"requestId": request_id, "reason": reason}
        )
        with anyio.move_on_after(_CANCEL_WRITE_SECONDS, shield=shield):
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await self._write.send(SessionMessage(notice))


async def _with_progress(updates: asyncio.Queue[tuple[Any, ...]], progress: ProgressRelay) -> dict[str, Any]:
    while True:
        update = await updates.get()
        if update[0] == "done":
            _, value, failure = update
            if failure is not None:
                raise failure
            return value  # type: ignore[no-any-return]
        try:
            await progress(*update[1:])
        except Exception:  # the agent's side of a progress message must not end the upstream call
            log.exception("progress relay failed")
