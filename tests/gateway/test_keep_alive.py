"""The one keep-alive ticker behind every waiting call's event stream (service/gateway/event_stream.py), on a clock
the test moves, against an ASGI `send` that refuses what uvicorn refuses: a body after the response has ended."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import anyio
import pytest

from service.gateway.event_stream import KEEP_ALIVE, KEEPALIVE_SECONDS, EventStream, KeepAliveTicker
from tests.clock import MovableClock

pytestmark = pytest.mark.anyio

END = {"type": "http.response.body", "body": b"", "more_body": False}


class Response:
    """What one response was sent, with uvicorn's rule; keep-alives can be made to wait or to fail."""

    def __init__(self, *, hold_keep_alives: anyio.Event | None = None, broken: bool = False) -> None:
        self.messages: list[MutableMapping[str, Any]] = []
        self.refused = 0
        self.keep_alive_started = anyio.Event()
        self._hold = hold_keep_alives
        self._broken = broken

    async def send(self, message: MutableMapping[str, Any]) -> None:
        if self.messages and self.messages[-1].get("more_body") is False:
            self.refused += 1  # counted here: the ticker logs and swallows the error
            raise RuntimeError("Unexpected ASGI message sent, after response already completed.")
        if message.get("body") == KEEP_ALIVE:
            self.keep_alive_started.set()
            if self._broken:
                raise OSError("connection reset")
            if self._hold is not None:
                await self._hold.wait()
        self.messages.append(message)

    def keep_alives(self) -> int:
        return sum(1 for m in self.messages if m.get("body") == KEEP_ALIVE)


async def opened(ticker: KeepAliveTicker, response: Response) -> EventStream:
    stream = ticker.stream(response.send, [])
    await stream.open()
    ticker.add(stream)
    return stream


async def test_a_stream_gets_a_keep_alive_once_it_has_been_quiet_for_the_interval_and_not_before() -> None:
    clock, response = MovableClock(), Response()
    ticker = KeepAliveTicker(clock)
    stream = await opened(ticker, response)
    clock.advance(KEEPALIVE_SECONDS - 1)
    await ticker.tick()
    assert response.keep_alives() == 0
    clock.advance(1)
    await ticker.tick()
    assert response.keep_alives() == 1
    await ticker.tick()
    assert response.keep_alives() == 1  # it was just written to: quiet again only an interval later
    clock.advance(KEEPALIVE_SECONDS)
    await ticker.tick()
    assert response.keep_alives() == 2
    await stream.close()


async def test_an_event_written_meanwhile_puts_the_keep_alive_off() -> None:
    clock, response = MovableClock(), Response()
    ticker = KeepAliveTicker(clock)
    stream = await opened(ticker, response)
    clock.advance(KEEPALIVE_SECONDS - 1)
    await stream.event({"jsonrpc": "2.0", "method": "notifications/progress"})  # a heartbeat, say
    clock.advance(1)
    await ticker.tick()
    assert response.keep_alives() == 0  # quiet for one second only
    clock.advance(KEEPALIVE_SECONDS - 1)
    await ticker.tick()
    assert response.keep_alives() == 1


async def test_a_stream_that_left_the_ticker_gets_nothing() -> None:
    clock, response = MovableClock(), Response()
    ticker = KeepAliveTicker(clock)
    stream = await opened(ticker, response)
    ticker.discard(stream)
    clock.advance(KEEPALIVE_SECONDS)
    await ticker.tick()
    assert response.keep_alives() == 0


async def test_a_stream_that_ends_while_the_ticker_waits_on_another_gets_nothing_more() -> None:
    clock, release = MovableClock(), anyio.Event()
    ticker = KeepAliveTicker(clock)
    responses = [Response(hold_keep_alives=release), Response(hold_keep_alives=release)]
    streams = [await opened(ticker, r) for r in responses]
    clock.advance(KEEPALIVE_SECONDS)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(ticker.tick)  # picks both as quiet, then waits on the first one it writes to
        with anyio.fail_after(5):
            while not any(r.keep_alive_started.is_set() for r in responses):
                await anyio.sleep(0.01)
        waiting_on = 0 if responses[0].keep_alive_started.is_set() else 1
        ended = 1 - waiting_on
        ticker.discard(streams[ended])  # what a finished call does: leave the ticker, then end its response
        await streams[ended].close()
        release.set()
    assert responses[ended].messages[-1] == END
    assert responses[ended].keep_alives() == 0 and responses[ended].refused == 0
    assert responses[waiting_on].keep_alives() == 1


async def test_a_broken_stream_does_not_stop_the_ticker() -> None:
    clock, broken, healthy = MovableClock(), Response(broken=True), Response()
    ticker = KeepAliveTicker(clock)
    for response in (broken, healthy):
        await opened(ticker, response)
    for _ in range(3):
        clock.advance(KEEPALIVE_SECONDS)
        await ticker.tick()  # would raise if one broken stream could end it
    assert broken.keep_alive_started.is_set() and broken.keep_alives() == 0
    assert healthy.keep_alives() == 3
