"""The one keep-alive ticker behind every waiting call's event stream (service/gateway/direct.py), against an ASGI
`send` that refuses what uvicorn refuses: a body after the response has ended."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import anyio
import pytest

from service.gateway import direct

pytestmark = pytest.mark.anyio

KEEP_ALIVE = b": keep-alive\n\n"


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


async def test_a_stream_that_ends_while_the_ticker_waits_on_another_gets_nothing_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(direct, "KEEPALIVE_SECONDS", 0.05)
    release = anyio.Event()
    responses = [Response(hold_keep_alives=release), Response(hold_keep_alives=release)]
    ticker = direct._KeepAlive()
    streams = [direct._EventStream(r.send, []) for r in responses]
    for stream in streams:
        await stream.open()
        ticker.add(stream)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(ticker.run)
        with anyio.fail_after(5):
            while not any(r.keep_alive_started.is_set() for r in responses):
                await anyio.sleep(0.01)
        waiting_on = 0 if responses[0].keep_alive_started.is_set() else 1
        ended = 1 - waiting_on
        ticker.discard(streams[ended])  # what a finished call does: leave the ticker, then end its response
        await streams[ended].close()
        release.set()
        with anyio.fail_after(5):  # several more ticks, each of which passed the ended stream by
            while responses[waiting_on].keep_alives() < 3:
                await anyio.sleep(0.01)
        tasks.cancel_scope.cancel()
    assert responses[ended].messages[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert responses[ended].keep_alives() == 0 and responses[ended].refused == 0
    assert responses[waiting_on].keep_alives() >= 3  # the ticker lived on


async def test_a_broken_stream_does_not_stop_the_ticker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(direct, "KEEPALIVE_SECONDS", 0.05)
    broken, healthy = Response(broken=True), Response()
    ticker = direct._KeepAlive()
    for response in (broken, healthy):
        stream = direct._EventStream(response.send, [])
        await stream.open()
        ticker.add(stream)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(ticker.run)
        with anyio.fail_after(5):
            while healthy.keep_alives() < 3:
                await anyio.sleep(0.01)
        tasks.cancel_scope.cancel()
    assert broken.keep_alive_started.is_set() and broken.keep_alives() == 0
