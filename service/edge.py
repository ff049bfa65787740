"""The HTTP edge's rules, each in one place for every entry (the REST API, the MCP entry, Slack's endpoints): how a
bearer token is read, how a request body is held to its limit, and what an error answer looks like."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from starlette.types import Receive, Send

from service.errors import AirlockError, TooLarge

BEARER_CHALLENGE = 'Bearer realm="airlock"'
_BEARER_PREFIX = "bearer "


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None for a missing, empty or other scheme."""
    if authorization is None or authorization[:7].lower() != _BEARER_PREFIX:
        return None
    return authorization[7:].strip() or None


def error_body(message: str) -> dict[str, str]:
    """Every HTTP error answer's body: the reason, and nothing else."""
    return {"error": message}


def error_headers(error: AirlockError) -> dict[str, str]:
    """A 401 says which scheme would be accepted (RFC 9110 §11.6.1)."""
    return {"WWW-Authenticate": BEARER_CHALLENGE} if error.status_code == 401 else {}


async def send_json(send: Send, status: int, payload: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """A JSON answer written straight to ASGI (the MCP entry answers before any framework sees the request)."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def send_error(send: Send, error: AirlockError, challenge: str | None = None) -> None:
    """`challenge` replaces the default `WWW-Authenticate` of a 401 (OAuth's names where to discover a token)."""
    found = error_headers(error)
    if challenge is not None and error.status_code == 401:
        found["WWW-Authenticate"] = challenge
    headers = [(name.lower().encode(), value.encode()) for name, value in found.items()]
    await send_json(send, error.status_code, json.dumps(error_body(error.message)).encode(), headers)


async def read_at_most(chunks: AsyncIterator[bytes], limit: int, *, too_large: str | None = None) -> bytes:
    """The whole body, or TooLarge (with the `too_large` reason) as soon as it passes `limit`. A chunked body
    declares no length, so a sender could otherwise make us hold any amount of memory before anything is checked."""
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise TooLarge(too_large or f"request body larger than {limit} bytes")
    return bytes(body)


async def request_chunks(receive: Receive) -> AsyncIterator[bytes]:
    """An ASGI request's body, chunk by chunk, until its last one or a disconnect."""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return
