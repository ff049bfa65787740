"""An upstream that misbehaves on purpose, speaking raw JSON-RPC over stdio (an SDK server could not send garbage):
`hang` never answers, `garbage` answers with a line that is not JSON, `bad_shape` with a result that is not a
tool result, `crash` exits mid-call, and `echo` works, to show the connection is still good afterwards."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

TOOLS = [
    {"name": name, "inputSchema": {"type": "object"}} for name in ("echo", "hang", "garbage", "bad_shape", "crash")
]


def send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def answer(request: dict[str, Any]) -> dict[str, Any] | None:
    method, params = request.get("method"), request.get("params") or {}
    if method == "initialize":
        return {
            "protocolVersion": params.get("protocolVersion", "2025-11-25"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "misbehaving", "version": "1"},
        }
    if method == "tools/list":
        return {"tools": TOOLS}
    if method == "ping":
        return {}
    if method != "tools/call":
        return None
    name = params.get("name")
    if name == "hang":
        return None  # never answered
    if name == "garbage":
        sys.stdout.write("this is not JSON {\n")
        sys.stdout.flush()
        return None
    if name == "bad_shape":
        return {"content": "not a list of blocks", "isError": "perhaps"}
    if name == "crash":
        os._exit(3)
    return {"content": [{"type": "text", "text": json.dumps(params.get("arguments") or {})}]}


def main() -> None:
    for line in sys.stdin:
        try:
            request = json.loads(line)
        except ValueError:
            continue
        if "id" not in request:
            continue  # a notification (initialized, cancelled): nothing to say
        result = answer(request)
        if result is not None:
            send({"jsonrpc": "2.0", "id": request["id"], "result": result})


if __name__ == "__main__":
    main()
