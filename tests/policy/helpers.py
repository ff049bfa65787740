"""Building engines for policy tests: a document in, an engine with a clock the test controls out."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from service.counters import MemoryCounters
from service.policy import CounterStore, EstimatorRegistry, GrantInfo, PolicyEngine, ToolCall
from service.policy.compiler import load_policy
from service.policy.engine import PendingCap, StandingApprovals

FIXTURES = Path(__file__).parent / "fixtures"
GRANT = GrantInfo(id="7", name="agent-7", owner="dana", labels={"team": "design"})
# Half a minute into a minute window, at the start of a UTC day two days from now. It must lie in the future: Redis
# expires a window's key at the window's end (PEXPIREAT), and an end in the past would expire it at once.
T0 = float((int(time.time()) // 86400 + 2) * 86400 + 30)


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def engine_for(
    document: dict[str, Any] | str,
    *,
    counters: CounterStore | None = None,
    clock: Clock | None = None,
    standing: StandingApprovals | None = None,
    pending_cap: PendingCap | None = None,
    fail_open: bool = False,
) -> PolicyEngine:
    text = document if isinstance(document, str) else yaml.safe_dump(document)
    return PolicyEngine(
        load_policy(text, EstimatorRegistry.default()),
        counters if counters is not None else MemoryCounters(),
        clock=clock or Clock(),
        standing_approvals=standing,
        pending_cap=pending_cap,
        counters_fail_open=fail_open,
    )


def call(tool: str, *, grant: GrantInfo = GRANT, session_id: str | None = None, **arguments: Any) -> ToolCall:
    return ToolCall(grant=grant, tool=tool, arguments=arguments, session_id=session_id)


IMAGE: dict[str, Any] = {"prompt": "a lighthouse", "provider": "openai", "model": "gpt-image-1"}


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text("utf-8")
