"""The demo image server with one parameter more on generate_image, `max_tokens` (as an upstream that rewrites
prompts with a language model has), run as a child process: the demo refuses arguments it does not declare, and a
deceiving agent's key whose name merely says "token" must reach the upstream and run."""

from __future__ import annotations

import anyio

from service.demo import upstream

MAX_TOKENS = {"type": "integer", "minimum": 1, "description": "Tokens for the prompt-rewriting step."}


def main() -> None:
    tool = next(t for t in upstream.TOOLS if t.name == "generate_image")
    properties = {**tool.input_schema["properties"], "max_tokens": MAX_TOKENS}
    tool.input_schema = {**tool.input_schema, "properties": properties}
    anyio.run(upstream.serve_stdio)


if __name__ == "__main__":
    main()
