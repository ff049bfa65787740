"""Socket Mode: the same interactions over a websocket that Airlock opens, so no public URL is needed.

Slack sends envelopes; each is acknowledged with its envelope_id, and the acknowledgement of a view_submission
carries the modal's validation errors, exactly as the HTTP response would.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.socket_mode.websockets import SocketModeClient
from slack_sdk.web.async_client import AsyncWebClient

from service.errors import AirlockError

log = logging.getLogger(__name__)

Handler = Callable[[Mapping[str, Any]], Awaitable[dict[str, Any] | None]]
RECONNECT_MAX_SECONDS = 60.0


async def run_socket_mode(app_token: str, web: AsyncWebClient, handle: Handler, *, ping_seconds: float = 10) -> None:
    """Connect (retrying with backoff while Slack cannot be reached) and serve envelopes until cancelled."""

    async def on_request(client: AsyncBaseSocketModeClient, request: SocketModeRequest) -> None:
        payload: dict[str, Any] | None = None
        if request.type == "interactive":
            try:
                payload = await handle(request.payload)
            except AirlockError as exc:  # no ack: Slack tells the person it did not work, as over HTTP (4xx/5xx)
                log.warning("Slack interaction over Socket Mode failed: %s", exc.message)
                return
        await client.send_socket_mode_response(SocketModeResponse(request.envelope_id, payload))

    sdk_log = logging.getLogger(f"{__name__}.sdk")
    closing = _AfterClose()
    sdk_log.addFilter(closing)
    client = SocketModeClient(app_token=app_token, web_client=web, ping_interval=ping_seconds, logger=sdk_log)
    client.socket_mode_request_listeners.append(on_request)
    try:
        delay = 1.0
        while True:
            try:
                await client.connect_to_new_endpoint(force=True)
                break
            except Exception as exc:  # apps.connections.open or the websocket failed: Slack may be down
                log.warning("Slack Socket Mode connection failed (%s); retrying in %.0fs", exc, delay)
                await anyio.sleep(delay)
                delay = min(RECONNECT_MAX_SECONDS, delay * 2)
        log.info("Slack Socket Mode connected")
        await anyio.sleep_forever()
    finally:
        closing.closed = True
        with anyio.CancelScope(shield=True):
            await client.close()  # type: ignore[no-untyped-call]
        sdk_log.removeFilter(closing)


class _AfterClose(logging.Filter):
    """The SDK's receive loop reports the close we asked for as an error; after our close it is not one."""

    closed = False

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.closed
