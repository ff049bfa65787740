"""The live queue: approval events of this process, fanned out to every open queue page over a WebSocket.

A message only says which request changed; the page then fetches that row as HTML rendered by the server (or
learns that it left the queue), so everything shown is still rendered and escaped in one place. A page that
cannot keep up loses messages rather than slowing the event bus, and catches up with a full refresh of its rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect

from service.approvals.events import EventBus
from service.approvals.schemas import ApprovalEvent
from webui.auth import load_user
from webui.sessions import SESSION_COOKIE

log = logging.getLogger(__name__)
router = APIRouter()
_BUFFER = 256
SESSION_ENDED = 4401
"""The close code of a socket whose session is missing or has ended."""


SESSION_RECHECK_SECONDS = 30.0
"""A session ended in this process closes its sockets at once; one ended elsewhere (the CLI, another replica)
within this long."""


@dataclass(eq=False)
class LivePage:
    """One open queue page: the events it receives, and whose session it shows."""

    username: str
    events: MemoryObjectReceiveStream[dict[str, Any]]
    recheck: anyio.Event = field(default_factory=anyio.Event)

    async def until_recheck(self) -> None:
        """Until this page's session should be checked again: told so, or SESSION_RECHECK_SECONDS passed."""
        with anyio.move_on_after(SESSION_RECHECK_SECONDS):
            await self.recheck.wait()
        self.recheck = anyio.Event()


class LiveHub:
    def __init__(self) -> None:
        """Made on the event loop at start-up; it keeps that loop for notices from other threads."""
        self._pages: dict[MemoryObjectSendStream[dict[str, Any]], LivePage] = {}
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # made outside any loop (a unit test feeding it by hand): no notice can come
            self._loop = None

    @classmethod
    def listening_to(cls, bus: EventBus) -> LiveHub:
        hub = cls()
        bus.subscribe(hub.publish)
        return hub

    def publish(self, event: ApprovalEvent) -> None:
        message = {"kind": event.kind, "request_id": event.request_id, "status": event.status}
        for page in list(self._pages):
            try:
                page.send_nowait(message)
            except anyio.WouldBlock:
                continue  # this page is behind: it catches up with its periodic full refresh of the rows
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._pages.pop(page, None)

    def sessions_ended_elsewhere(self, username: str) -> None:
        """sessions_changed, from any thread: a commit's listeners run in the committing thread, and other replicas'
        notices arrive on the loop (service/caches.py)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.sessions_changed, username)

    def sessions_changed(self, username: str) -> None:
        """The person's sessions may have ended (sign-out, a new role, a new password): their pages check now."""
        for page in self._pages.values():
            if page.username == username:
                page.recheck.set()

    @contextlib.contextmanager
    def attach(self, username: str) -> Iterator[LivePage]:
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](_BUFFER)
        self._pages[send] = page = LivePage(username, receive)
        try:
            yield page
        finally:
            self._pages.pop(send, None)
            send.close()
            receive.close()

    @property
    def pages(self) -> int:
        return len(self._pages)


def sessions_changed(request: Request, username: str) -> None:
    """What a page that may end someone's sessions calls once that is committed: their open sockets check at once."""
    hub: LiveHub | None = getattr(request.app.state, "live_hub", None)
    if hub is not None:
        hub.sessions_changed(username)


def same_origin(websocket: WebSocket) -> bool:
    """Browsers send Origin on every WebSocket; another site's page must not read our queue with our cookie."""
    origin = websocket.headers.get("origin")
    host = websocket.headers.get("host")
    return origin is not None and host is not None and urlsplit(origin).netloc == host


@router.websocket("/ws/queue")
async def queue_socket(websocket: WebSocket) -> None:
    state = websocket.app.state.airlock
    hub: LiveHub = websocket.app.state.live_hub
    cookie = websocket.cookies.get(SESSION_COOKIE)
    web_user = await load_user(state, cookie) if same_origin(websocket) else None
    if web_user is None:
        await websocket.close(code=SESSION_ENDED)
        return
    await websocket.accept()
    with hub.attach(web_user.username) as page:
        async with anyio.create_task_group() as group:

            async def drain_client() -> None:
                # The page sends nothing we need; reading notices a closed socket at once.
                with contextlib.suppress(WebSocketDisconnect):
                    while True:
                        await websocket.receive_text()
                group.cancel_scope.cancel()

            async def end_with_the_session() -> None:
                # A socket outliving its session would keep showing the queue to someone signed out.
                while True:
                    await page.until_recheck()
                    if await load_user(state, cookie) is None:
                        break
                with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                    await websocket.close(code=SESSION_ENDED)
                group.cancel_scope.cancel()

            group.start_soon(drain_client)
            group.start_soon(end_with_the_session)
            try:
                await websocket.send_json({"kind": "hello"})
                async for message in page.events:
                    await websocket.send_json(message)
            except (WebSocketDisconnect, RuntimeError):
                group.cancel_scope.cancel()
