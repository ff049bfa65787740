"""The OpenAI Agents SDK (PyPI openai-agents) at its default timeout: it gives up on a held call after 5 s, and
neither cancels nor closes (issue 13). The person approves later; the call runs once, for the stream the SDK left
open, and the agent's retry of the same call gets those images as a replay, with no second request and no second
run. The SDK runs from its own venv (.venv-agents), in a child process (tests/clients/agents_sdk_client.py)."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from tests.clients.conftest import AGENTS_CLIENT
from tests.demo_process import RunningDemo

HELD = {"prompt": "a lighthouse, by an agent", "provider": "openai", "model": "gpt-image-1", "quality": "high", "n": 2}
ATTEMPTS = 3
AGENT_SECONDS = 120  # the whole agent run, so that a hung agent fails the test rather than blocking it


@contextmanager
def agent_calling(python: Path, demo: RunningDemo, arguments: dict[str, Any]) -> Iterator[subprocess.Popen[str]]:
    command = [
        str(python), str(AGENTS_CLIENT), demo.mcp_url, demo.grant_token, "generate_image", json.dumps(arguments),
        str(ATTEMPTS),
    ]  # fmt: skip
    agent = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(AGENT_SECONDS, agent.kill)
    watchdog.start()
    try:
        yield agent
    finally:
        watchdog.cancel()
        if agent.poll() is None:
            agent.kill()
        agent.communicate()


def next_event(agent: subprocess.Popen[str]) -> dict[str, Any]:
    stdout: IO[str] | None = agent.stdout
    assert stdout is not None
    line = stdout.readline()  # bounded by the SDK's own 5 s timeout, and by the watchdog
    assert line, f"the agent exited ({agent.wait()}) early:\n{agent.stderr.read() if agent.stderr else ''}"
    event: dict[str, Any] = json.loads(line)
    return event


def next_turn(agent: subprocess.Popen[str]) -> None:
    assert agent.stdin is not None
    agent.stdin.write("\n")
    agent.stdin.flush()


def test_an_agent_that_gave_up_at_its_default_timeout_gets_the_images_by_retrying(
    agents_python: Path, demo: RunningDemo
) -> None:
    with agent_calling(agents_python, demo, HELD) as agent:
        listed = next_event(agent)
        assert "generate_image" in listed["tools"]
        assert listed["timeout_seconds"] == 5  # the SDK's default, which the test leaves alone

        gave_up = next_event(agent)
        assert gave_up["event"] == "failed" and "timed out" in gave_up["error"], gave_up
        (request,) = demo.requests(status="pending")
        assert request["arguments"] == HELD

        demo.approve(request)
        demo.wait_for_status(request["id"], "succeeded")
        next_turn(agent)
        answered = next_event(agent)

    assert answered["event"] == "result" and answered["attempt"] == 2, answered
    assert not answered["is_error"], answered
    text, *images = answered["content"]
    assert text["text"].startswith(f"[REPLAY of {request['public_id']}]"), text
    assert answered["meta"]["airlock/replay_of"] == request["public_id"]
    assert images == [{"type": "image", "png": True}] * 2

    assert [r["public_id"] for r in demo.requests()] == [request["public_id"]], "the retry opened a new request"
    after = demo.wait_for_status(request["id"], "succeeded")
    assert [event["action"] for event in after["events"]].count("request.executed") == 1, "the replay ran again"
