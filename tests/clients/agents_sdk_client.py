"""An OpenAI Agents SDK agent's tool calls, without the model: run by .venv-agents' Python, not the test's.

`python agents_sdk_client.py URL TOKEN TOOL ARGUMENTS_JSON ATTEMPTS` connects the SDK's `MCPServerStreamableHttp`
with its defaults (the 5 s `client_session_timeout_seconds` included), lists the tools and calls TOOL as the agent
runner does. A call that fails is what a model sees as a tool error, and a model calls again; between attempts the
script waits for one line on stdin, which stands for the model's next turn and lets the test decide when that comes.
Everything it sees goes to stdout as one JSON object a line: `listed`, then `failed` per failed attempt, then
`result`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from typing import Any

from agents.mcp import MCPServerStreamableHttp

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def report(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def described(block: Any) -> dict[str, Any]:
    if block.type == "text":
        return {"type": "text", "text": block.text}
    if block.type == "image":
        return {"type": "image", "png": base64.b64decode(block.data).startswith(PNG_SIGNATURE)}
    return {"type": block.type}


async def main(url: str, token: str, tool: str, arguments: dict[str, Any], attempts: int) -> None:
    server = MCPServerStreamableHttp(params={"url": url, "headers": {"Authorization": f"Bearer {token}"}})
    async with server:
        tools = await server.list_tools()
        report("listed", tools=[t.name for t in tools], timeout_seconds=server.client_session_timeout_seconds)
        for attempt in range(1, attempts + 1):
            started = time.monotonic()
            try:
                result = await server.call_tool(tool, arguments)
            except Exception as error:  # what the runner turns into a tool error for the model
                report("failed", attempt=attempt, error=str(error), seconds=time.monotonic() - started)
                sys.stdin.readline()
                continue
            content = [described(block) for block in result.content]
            report("result", attempt=attempt, is_error=bool(result.is_error), content=content, meta=result.meta)
            return
    report("gave_up", attempts=attempts)


if __name__ == "__main__":
    url, token, tool, arguments, attempts = sys.argv[1:6]
    asyncio.run(main(url, token, tool, json.loads(arguments), int(attempts)))
