"""The HTTP edge's rules (service/edge.py): one reading of bearer tokens, one body limit, one error answer."""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest

from service.app import create_app
from service.config import load_settings
from service.edge import bearer_token, read_at_most, request_chunks, send_error
from service.errors import NotAuthenticated, NotFound, TooLarge
from service.gateway.endpoints import MCP_PATH

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer alk_abc", "alk_abc"),
        ("bearer alk_abc", "alk_abc"),
        ("BEARER   alk_abc  ", "alk_abc"),
        ("Bearer ", None),
        ("Bearer", None),
        ("Basic dXNlcjpwYXNz", None),
        ("", None),
        (None, None),
    ],
)
def test_a_bearer_token_is_read_one_way(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def asgi_body(*chunks: bytes, disconnect: bool = False) -> Any:
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1 or disconnect}
        for i, chunk in enumerate(chunks)
    ]
    if disconnect:
        messages.append({"type": "http.disconnect"})
    pulled: list[int] = []

    async def receive() -> dict[str, Any]:
        pulled.append(1)
        return messages.pop(0)

    return receive, pulled


async def test_a_body_within_its_limit_is_read_whole() -> None:
    receive, _ = asgi_body(b"ab", b"cd", b"e")
    assert await read_at_most(request_chunks(receive), 5) == b"abcde"
    receive, _ = asgi_body(b"ab", disconnect=True)
    assert await read_at_most(request_chunks(receive), 5) == b"ab"  # a hang-up ends the body


async def test_a_body_over_its_limit_is_refused_before_it_is_all_read() -> None:
    receive, pulled = asgi_body(b"x" * 4, b"x" * 4, b"x" * 4, b"x" * 4)
    with pytest.raises(TooLarge) as refused:
        await read_at_most(request_chunks(receive), 6)
    assert len(pulled) == 2
    assert refused.value.message == "request body larger than 6 bytes"
    receive, _ = asgi_body(b"x" * 10)
    with pytest.raises(TooLarge, match="at most 1 MiB"):
        await read_at_most(request_chunks(receive), 6, too_large="at most 1 MiB")


async def test_errors_are_json_with_the_reason_and_a_challenge_on_401() -> None:
    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await send_error(send, NotAuthenticated("a grant token is required"))
    await send_error(send, NotFound("no such upstream"))
    first, second = dict(sent[0]["headers"]), dict(sent[2]["headers"])
    assert sent[0]["status"] == 401 and first[b"www-authenticate"].startswith(b"Bearer")
    assert json.loads(sent[1]["body"]) == {"error": "a grant token is required"}
    assert int(first[b"content-length"]) == len(sent[1]["body"])
    assert sent[2]["status"] == 404 and b"www-authenticate" not in second
    assert second[b"content-type"] == b"application/json"
    assert json.loads(sent[3]["body"]) == {"error": "no such upstream"}


async def test_an_mcp_request_before_start_up_is_a_503_json_error(tmp_path: Path) -> None:
    settings = load_settings(None, data_dir=str(tmp_path), secret_key="test-secret-key-0123456789abcdef")
    app = create_app(settings)  # not started: no lifespan has run
    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    receive, _ = asgi_body(b"{}")
    await app({"type": "http", "path": MCP_PATH, "method": "POST", "headers": []}, receive, send)

    assert sent[0]["status"] == 503
    assert dict(sent[0]["headers"])[b"content-type"] == b"application/json"
    assert json.loads(sent[1]["body"]) == {"error": "Airlock is starting"}
