"""A thin layer over slack-sdk's AsyncWebClient: the few Web API methods Airlock uses, and one error type that
says whether trying again can help (and when)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import anyio
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

# Slack's own "try again later" errors; anything else with a 2xx/4xx status will fail the same way again.
_TRANSIENT_ERRORS = {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
# Calls made while someone waits for an answer, outside the send queue, wait out one 429 when it is this short.
RETRY_AFTER_MAX_SECONDS = 3.0
# A trigger_id is good for views.open for 3 s after the click; the call itself needs some of that time.
_VIEWS_OPEN_MARGIN_SECONDS = 0.5


class SlackError(Exception):
    def __init__(self, method: str, error: str, *, transient: bool, retry_after: float | None = None) -> None:
        super().__init__(f"Slack {method}: {error}")
        self.method = method
        self.error = error
        self.transient = transient
        self.retry_after = retry_after


class SlackClient:
    def __init__(self, token: str, base_url: str, *, timeout_seconds: int = 10) -> None:
        # No SDK retry handlers: the send queue owns retries, so that a 429 also holds back the channel's queue.
        self._web = AsyncWebClient(token=token, base_url=base_url, timeout=timeout_seconds, retry_handlers=[])

    @property
    def web(self) -> AsyncWebClient:
        return self._web

    async def post_message(
        self, channel: str, text: str, blocks: list[dict[str, Any]] | None, thread_ts: str | None = None
    ) -> tuple[str, str]:
        """Returns the channel id and the message ts (a post to a user id lands in the app's DM with them)."""
        response = await _call(
            "chat.postMessage",
            self._web.chat_postMessage(channel=channel, text=text, blocks=blocks, thread_ts=thread_ts),
        )
        return str(response["channel"]), str(response["ts"])

    async def update_message(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        await _call("chat.update", self._web.chat_update(channel=channel, ts=ts, text=text, blocks=blocks))

    async def post_ephemeral(self, channel: str, user: str, text: str) -> None:
        await _once_more_if_throttled(
            "chat.postEphemeral",
            lambda: self._web.chat_postEphemeral(channel=channel, user=user, text=text),
            RETRY_AFTER_MAX_SECONDS,
        )

    async def open_view(self, trigger_id: str, view: dict[str, Any], *, expires_at: float | None = None) -> None:
        """`expires_at`: when the trigger_id expires, on anyio's clock; a 429 is waited out only if it is over in
        time for the modal to open before then."""
        budget = 0.0
        if expires_at is not None:
            budget = min(RETRY_AFTER_MAX_SECONDS, expires_at - anyio.current_time() - _VIEWS_OPEN_MARGIN_SECONDS)
        await _once_more_if_throttled(
            "views.open", lambda: self._web.views_open(trigger_id=trigger_id, view=view), budget
        )

    async def upload_file(self, channel: str, thread_ts: str, content: bytes, filename: str, title: str) -> None:
        """files upload v2: files.getUploadURLExternal, the upload itself, files.completeUploadExternal."""
        await _call(
            "files.uploadV2",
            self._web.files_upload_v2(
                channel=channel, thread_ts=thread_ts, content=content, filename=filename, title=title
            ),
        )

    async def usergroup_members(self, group_id: str) -> list[str]:
        response = await _once_more_if_throttled(
            "usergroups.users.list",
            lambda: self._web.usergroups_users_list(usergroup=group_id),
            RETRY_AFTER_MAX_SECONDS,
        )
        return [str(user) for user in response.get("users") or []]

    async def user_email(self, user_id: str) -> str | None:
        response = await _once_more_if_throttled(
            "users.info", lambda: self._web.users_info(user=user_id), RETRY_AFTER_MAX_SECONDS
        )
        profile = (response.get("user") or {}).get("profile") or {}
        email = profile.get("email")
        return str(email) if email else None


async def _call(method: str, call: Awaitable[AsyncSlackResponse]) -> AsyncSlackResponse:
    try:
        return await call
    except SlackApiError as exc:
        status = int(getattr(exc.response, "status_code", 0) or 0)
        data = getattr(exc.response, "data", None)
        error = str(data.get("error", f"HTTP {status}")) if isinstance(data, dict) else f"HTTP {status}"
        retry_after = _retry_after(getattr(exc.response, "headers", None))
        transient = status == 429 or status >= 500 or error in _TRANSIENT_ERRORS
        raise SlackError(method, error, transient=transient, retry_after=retry_after) from None
    except SlackRequestError as exc:
        raise SlackError(method, str(exc), transient=True) from None
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise SlackError(method, f"{type(exc).__name__}: {exc}", transient=True) from None


async def _once_more_if_throttled(
    method: str, call: Callable[[], Awaitable[AsyncSlackResponse]], budget_seconds: float
) -> AsyncSlackResponse:
    """Only the send queue retries in general; here one 429 is waited out when Slack's Retry-After fits the budget
    (someone is waiting for this answer, and the SDK's own retries are off)."""
    try:
        return await _call(method, call())
    except SlackError as exc:
        if exc.retry_after is None or exc.retry_after > budget_seconds:
            raise
        await anyio.sleep(exc.retry_after)
    return await _call(method, call())


def _retry_after(headers: Any) -> float | None:
    if not headers:
        return None
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
