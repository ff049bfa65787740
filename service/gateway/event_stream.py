"""The SSE answer of a call that may carry progress or wait for a person, and the one ticker that keeps the quiet
ones open.

A comment line on a held call's stream now and then keeps proxies and idle-timeouts from closing it. One ticker
writes it for every stream, not a timer per call: with thousands of calls held, a timer each was most of the CPU
that holding them cost. Quiet is measured on the injected clock (service/clock.py), so a test moves the clock and
runs one `tick` instead of waiting for the interval.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
from starlette.types import Receive, Send

from service.clock import SYSTEM_CLOCK, Clock
from service.gateway.protocol import ProgressRelay, increasing_progress, progress_notification

log = logging.getLogger(__name__)

# Rarer than the SDK's 15 s, because 5,000 held calls each pinging is the whole idle cost of holding them.
KEEPALIVE_SECONDS = 25.0
KEEP_ALIVE = b": keep-alive\n\n"
_COMPACT = json.JSONEncoder(separators=(",", ":"))


class EventStream:
    """One SSE response, written by the call, its progress and its keep-alive, one event at a time."""

    def __init__(self, send: Send, headers: list[tuple[bytes, bytes]], clock: Clock = SYSTEM_CLOCK) -> None:
        self._send = send
        self._headers = headers
        self._lock = anyio.Lock()
        self._monotonic = clock.monotonic  # read on every write: the function, not a lookup each time
        self._last_write = self._monotonic()
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
        """Nothing written since `moment` (on the stream's clock), and no write under way."""
        return self._last_write <= moment and not self._lock.locked()

    async def keep_alive(self) -> None:
        await self._write(KEEP_ALIVE)

    async def close(self) -> None:
        async with self._lock:
            self._closed = True
            await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    def progress_relay(self, token: int | str | None) -> ProgressRelay | None:
        if token is None:
            return None

        async def report(progress: float, total: float | None, message: str | None) -> None:
            await self.event(progress_notification(token, progress, total, message))

        return increasing_progress(report)

    async def _write(self, chunk: bytes) -> None:
        async with self._lock:
            # The ticker may pick a stream, then wait on another one's write while this response ends.
            if not self._closed:
                await self._send({"type": "http.response.body", "body": chunk, "more_body": True})
                self._last_write = self._monotonic()


class KeepAliveTicker:
    """A stream quiet for KEEPALIVE_SECONDS gets a comment line, so proxies and clients keep it open while its call
    waits for a person."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._streams: set[EventStream] = set()

    def stream(self, send: Send, headers: list[tuple[bytes, bytes]]) -> EventStream:
        """A new response's stream, on this ticker's clock (quiet is measured on one clock)."""
        return EventStream(send, headers, self._clock)

    def add(self, stream: EventStream) -> None:
        self._streams.add(stream)

    def discard(self, stream: EventStream) -> None:
        self._streams.discard(stream)

    async def run(self) -> None:
        while True:
            await anyio.sleep(KEEPALIVE_SECONDS / 5)
            await self.tick()

    async def tick(self) -> None:
        """One look: a keep-alive to every stream quiet for KEEPALIVE_SECONDS."""
        moment = self._clock.monotonic() - KEEPALIVE_SECONDS
        for stream in [s for s in self._streams if s.quiet_since(moment)]:
            try:
                with anyio.move_on_after(1):  # an agent that stopped reading holds up no other stream
                    await stream.keep_alive()
            except Exception:  # one broken stream must not end the ticker (nor, with it, the app)
                log.debug("keep-alive not written", exc_info=True)
