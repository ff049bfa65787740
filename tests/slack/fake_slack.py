"""A fake of Slack's servers on loopback, speaking their wire format: the Web API methods Airlock calls (recorded),
the file upload URL of files upload v2, and a Socket Mode websocket. It can answer 429 with Retry-After, or be down.

It also signs interaction payloads the way Slack does, with its own HMAC code (not Airlock's), so a test proves
that Airlock accepts what Slack really sends.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import anyio
from aiohttp import WSMsgType, web

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-test-bot-token"
APP_TOKEN = "xapp-1-test-app-token"
TEAM = {"id": "T0AIRLOCK", "domain": "airlock-test"}


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    token: str | None
    at: float
    answer: dict[str, Any] = field(default_factory=dict)


@dataclass
class FakeSlack:
    base_url: str = ""
    calls: list[Call] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    emails: dict[str, str] = field(default_factory=dict)
    down: bool = False
    broken: set[str] = field(default_factory=set)
    slow: dict[str, float] = field(default_factory=dict)
    """Seconds a method takes to answer: a slow Slack, so that two senders overlap."""
    _rate_limited: dict[str, list[float]] = field(default_factory=dict)
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(100))
    _files: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _socket: web.WebSocketResponse | None = None
    _acks: dict[str, dict[str, Any]] = field(default_factory=dict)
    _loop: asyncio.AbstractEventLoop | None = None

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    # -- what a test sets up -----------------------------------------------------------------------------------

    def rate_limit(self, method: str, times: int, retry_after: float = 1) -> None:
        """The next `times` calls of `method` get HTTP 429 with this Retry-After."""
        self._rate_limited.setdefault(method, []).extend([retry_after] * times)

    def break_method(self, method: str) -> None:
        """Every call of `method` from now on fails as a Slack outage would (HTTP 503), while the others work."""
        self.broken.add(method)

    # -- what a test reads -------------------------------------------------------------------------------------

    def called(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def posts(self) -> list[Call]:
        return self.called("chat.postMessage")

    def cards(self) -> list[Call]:
        """Posts that are cards (not thread replies)."""
        return [c for c in self.posts() if "thread_ts" not in c.args]

    def last_card_text(self) -> str:
        """Everything the newest version of the newest card shows, as one string."""
        versions = [c for c in self.calls if c.method in ("chat.postMessage", "chat.update") and "blocks" in c.args]
        return json.dumps(versions[-1].args["blocks"], ensure_ascii=False) if versions else ""

    async def card(self, request_id: int, timeout: float = 30) -> tuple[str, str]:
        """The channel id and ts of the request's card, once Slack has it."""
        with anyio.fail_after(timeout):
            while True:
                for call in self.cards():
                    if call.answer.get("ok") and f"R-{request_id}: " in str(call.args.get("text")):
                        return str(call.answer["channel"]), str(call.answer["ts"])
                await anyio.sleep(0.05)

    def card_versions(self, channel: str, ts: str) -> list[list[dict[str, Any]]]:
        """The blocks of every version of the card at (channel, ts) that Slack accepted, oldest first."""
        versions = []
        for call in self.calls:
            if not call.answer.get("ok"):
                continue
            if call.method == "chat.postMessage":
                where = (call.answer.get("channel"), call.answer.get("ts"))
            elif call.method == "chat.update":
                where = (call.args.get("channel"), call.args.get("ts"))
            else:
                continue
            if where == (channel, ts):
                versions.append(call.args.get("blocks"))
        return [json.loads(b) if isinstance(b, str) else list(b or []) for b in versions]

    async def press(self, user_id: str, action_id: str, request_id: int, *, as_posted: bool = False) -> dict[str, Any]:
        """Slack's block_actions payload for `user_id` pressing the button `action_id` on the request's card: its
        block id and value are the ones Airlock put on the card, as Slack sends them. The newest version of the card,
        or with `as_posted` the card as first posted (a person whose Slack has not shown an update yet)."""
        channel, ts = await self.card(request_id)
        versions = self.card_versions(channel, ts)
        blocks = versions[0] if as_posted else versions[-1]
        for block in blocks:
            for element in block.get("elements", []) if block.get("type") == "actions" else []:
                if element.get("action_id") == action_id and "value" in element:
                    return block_actions(user_id, action_id, element["value"], channel, ts, block["block_id"])
        raise AssertionError(f"R-{request_id}'s card has no {action_id!r} button to press")

    async def wait_for(self, method: str, count: int = 1, timeout: float = 20, contains: str = "") -> list[Call]:
        with anyio.fail_after(timeout):
            while True:
                found = [c for c in self.called(method) if contains in json.dumps(c.args, ensure_ascii=False)]
                if len(found) >= count:
                    return found
                await anyio.sleep(0.05)

    # -- Slack's side of an interaction ------------------------------------------------------------------------

    def signed(self, body: bytes, *, timestamp: int | None = None, secret: str = SIGNING_SECRET) -> dict[str, str]:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        digest = hmac.new(secret.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
        return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}

    async def send_envelope(self, payload: dict[str, Any], kind: str = "interactive") -> dict[str, Any]:
        """Push a Socket Mode envelope and wait for Airlock's acknowledgement."""
        with anyio.fail_after(20):
            while self._socket is None:
                await anyio.sleep(0.02)
        assert self._loop is not None
        envelope_id = f"env-{next(self._ts)}"
        envelope = {"envelope_id": envelope_id, "type": kind, "payload": payload, "accepts_response_payload": True}
        sent = asyncio.run_coroutine_threadsafe(self._socket.send_str(json.dumps(envelope)), self._loop)
        await asyncio.wrap_future(sent)
        with anyio.fail_after(10):
            while envelope_id not in self._acks:
                await anyio.sleep(0.02)
        return self._acks.pop(envelope_id)

    # -- the server --------------------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            args.update(await request.json())
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            args.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else None
        call = Call(method, args, token, time.monotonic())
        self.calls.append(call)
        if self.down or method in self.broken:
            return web.json_response({"ok": False, "error": "service_unavailable"}, status=503)
        waits = self._rate_limited.get(method)
        if waits:
            retry_after = waits.pop(0)
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": f"{retry_after:g}"}
            )
        expected = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if token != expected:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if method in self.slow:
            await asyncio.sleep(self.slow[method])
        call.answer = self._answer(method, args)
        return web.json_response(call.answer)

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "chat.postMessage":
            if args["channel"] == "#missing":
                return {"ok": False, "error": "channel_not_found"}
            channel = _channel_id(str(args["channel"]))
            return {"ok": True, "channel": channel, "ts": f"1795514400.{next(self._ts):06d}", "message": {}}
        if method == "chat.update":
            return {"ok": True, "channel": args["channel"], "ts": args["ts"], "text": args.get("text", "")}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"1795514400.{next(self._ts):06d}"}
        if method == "views.open":
            return {"ok": True, "view": {"id": "V0MODAL", **args.get("view", {})}}
        if method == "files.getUploadURLExternal":
            file_id = f"F{next(self._files):08d}"
            return {"ok": True, "upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}
        if method == "files.completeUploadExternal":
            files = json.loads(args.get("files", "[]"))
            return {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in files]}
        if method == "usergroups.users.list":
            group = str(args.get("usergroup"))
            if group not in self.groups:
                return {"ok": False, "error": "no_such_subteam"}
            return {"ok": True, "users": self.groups[group]}
        if method == "users.info":
            user = str(args.get("user"))
            return {"ok": True, "user": {"id": user, "profile": {"email": self.emails.get(user)}}}
        if method == "apps.connections.open":
            return {"ok": True, "url": f"{self.base_url.replace('http://', 'ws://')}/socket"}
        return {"ok": False, "error": "unknown_method"}

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        if self.down:
            return web.Response(status=503, text="down")
        self.uploads[request.match_info["file_id"]] = await request.read()
        return web.Response(text=f"OK - {len(self.uploads[request.match_info['file_id']])}")

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.send_str(json.dumps({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A1"}}))
        self._socket = socket
        async for message in socket:
            if message.type is WSMsgType.TEXT:
                ack = json.loads(message.data)
                self._acks[ack["envelope_id"]] = ack
        return socket


def _channel_id(channel: str) -> str:
    if channel.startswith("#"):
        return "C" + hashlib.sha256(channel.encode()).hexdigest()[:8].upper()
    if channel.startswith(("U", "W")):
        return "D" + channel[1:]  # a post to a user id lands in the app's DM with them
    return channel


@asynccontextmanager
async def fake_slack() -> AsyncIterator[FakeSlack]:
    """The fake runs on an event loop in a thread of its own: the gateway's shutdown blocks the test's thread
    (it joins the server thread), and Slack must still answer then, as the real one would (a websocket close)."""
    fake = FakeSlack()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-slack", daemon=True)
    thread.start()
    fake._loop = loop
    app = web.Application()
    app.router.add_post("/api/{method}", fake._api)
    app.router.add_get("/api/{method}", fake._api)
    app.router.add_post("/upload/{file_id}", fake._upload)
    app.router.add_get("/socket", fake._websocket)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)

    async def start() -> str:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    async def stop() -> None:
        if fake._socket is not None:
            await fake._socket.close()
        await runner.cleanup()

    try:
        fake.base_url = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(start(), loop))
        yield fake
    finally:
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(stop(), loop))
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def channel_id(channel: str) -> str:
    return _channel_id(channel)


def block_actions(
    user_id: str, action_id: str, value: str, channel: str, message_ts: str, block_id: str = "decide"
) -> dict[str, Any]:
    """A button click, shaped like Slack's block_actions payload: `value` is the pressed button's value (see
    `FakeSlack.press`, which reads it from the card)."""
    return {
        "type": "block_actions",
        "team": TEAM,
        "user": {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": TEAM["id"]},
        "api_app_id": "A0AIRLOCK",
        "token": "verification-token-not-used",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": False},
        "trigger_id": f"{int(time.time())}.1234.abcdef",
        "channel": {"id": channel, "name": "image-approvals"},
        "message": {"type": "message", "ts": message_ts, "text": "card"},
        "response_url": "https://hooks.slack.com/actions/T0AIRLOCK/1/abc",
        "actions": [
            {
                "action_id": action_id,
                "block_id": block_id,
                "text": {"type": "plain_text", "text": action_id},
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def view_submission(user_id: str, view: dict[str, Any], values: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A modal submitted: the view Airlock opened, with what the person typed in its input blocks."""
    return {
        "type": "view_submission",
        "team": TEAM,
        "user": {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": TEAM["id"]},
        "api_app_id": "A0AIRLOCK",
        "token": "verification-token-not-used",
        "trigger_id": f"{int(time.time())}.5678.fedcba",
        "view": {
            "id": "V0MODAL",
            "team_id": TEAM["id"],
            "type": "modal",
            "callback_id": view["callback_id"],
            "private_metadata": view["private_metadata"],
            "blocks": view["blocks"],
            "state": {"values": values},
            "hash": "1700000000.abc",
        },
        "response_urls": [],
    }


def typed(text: str) -> dict[str, Any]:
    return {"value": {"type": "plain_text_input", "value": text}}


def chosen(value: str) -> dict[str, Any]:
    return {
        "value": {
            "type": "static_select",
            "selected_option": {"text": {"type": "plain_text", "text": value}, "value": value},
        }
    }


def form_body(payload: dict[str, Any]) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()
