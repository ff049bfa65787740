"""The live queue: approval events of this process, fanned out to every open queue page over a WebSocket.

A message only says which request changed; the page then fetches that row as HTML rendered by the server (or
learns that it left the queue), so everything shown is still rendered and escaped in one place. A page that
cannot keep up loses messages rather than slowing the event bus, and catches up with a full refresh of its rows.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from service.approvals.events import EventBus
from service.approvals.schemas import ApprovalEvent
from webui.auth import load_user
from webui.sessions import SESSION_COOKIE

log = logging.getLogger(__name__)
router = APIRouter()
_BUFFER = 256


class LiveHub:
    def __init__(self) -> None:
        self._pages: set[MemoryObjectSendStream[dict[str, Any]]] = set()

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
                self._pages.discard(page)

    @contextlib.contextmanager
    def attach(self) -> Iterator[MemoryObjectReceiveStream[dict[str, Any]]]:
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](_BUFFER)
        self._pages.add(send)
        try:
            yield receive
        finally:
            self._pages.discard(send)
            send.close()
            receive.close()

    @property
    def pages(self) -> int:
        return len(self._pages)


def same_origin(websocket: WebSocket) -> bool:
    """Browsers send Origin on every WebSocket; another site's page must not read our queue with our cookie."""
    origin = websocket.headers.get("origin")
    host = websocket.headers.get("host")
    return origin is not None and host is not None and urlsplit(origin).netloc == host


@router.websocket("/ws/queue")
async def queue_socket(websocket: WebSocket) -> None:
    state = websocket.app.state.airlock
    hub: LiveHub = websocket.app.state.live_hub
    if not same_origin(websocket) or await load_user(state, websocket.cookies.get(SESSION_COOKIE)) is None:
        await websocket.close(code=4401)
        return
    await websocket.accept()
    with hub.attach() as events:
        async with anyio.create_task_group() as group:

            async def drain_client() -> None:
                # The page sends nothing we need; reading notices a closed socket at once.
                with contextlib.suppress(WebSocketDisconnect):
                    while True:
                        await websocket.receive_text()
                group.cancel_scope.cancel()

            group.start_soon(drain_client)
            try:
                await websocket.send_json({"kind": "hello"})
                async for message in events:
                    await websocket.send_json(message)
            except (WebSocketDisconnect, RuntimeError):
                group.cancel_scope.cancel()
