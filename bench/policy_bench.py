"""Policy micro-benchmark: what one evaluate() costs, on one core, with counters in memory and on Redis."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import redis
import yaml

from bench.stats import print_table, run_interleaved
from service.counters import MemoryCounters, RedisCounters
from service.policy import (
    CounterStore,
    Decision,
    EstimatorRegistry,
    GiveBack,
    GrantInfo,
    PolicyEngine,
    ToolCall,
    load_policy,
)

DEMO_POLICY = Path(__file__).resolve().parents[1] / "service" / "demo" / "policy.yaml"
REDIS_URL = os.environ.get("AIRLOCK_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
GRANT = GrantInfo(id="1", name="bench-agent", owner="bench", labels={"team": "bench"})

PLAIN = {"version": "1", "default": "deny", "tools": {"get_model_capabilities": {}}}
THREE_CONDITIONS = {
    "version": "1",
    "default": "deny",
    "tools": {
        "create_refund": {
            "deny_if": [
                {
                    "conditions": [
                        {"path": "args.amount", "op": "gt", "value": 500},
                        {"path": "args.currency", "op": "in", "value": ["EUR", "USD"]},
                        {"path": "args.note", "op": "regex", "value": "(?i)urgent|asap"},
                    ],
                    "on_deny": "Large urgent refunds need a manager.",
                }
            ]
        }
    },
}
IMAGE_ARGS = {
    "prompt": "a lighthouse on a cliff at dawn, watercolour, soft light",
    "provider": "openai",
    "model": "gpt-image-1",
    "quality": "draft",
    "n": 2,
}


def engine(document: Mapping[str, Any] | str, counters: CounterStore) -> PolicyEngine:
    text = document if isinstance(document, str) else yaml.safe_dump(document)
    return PolicyEngine(load_policy(text, EstimatorRegistry.default()), counters)


def evaluating(policy_engine: PolicyEngine, call: ToolCall) -> Callable[[], Decision]:
    """One admitted call; its counters are given back afterwards so the limits never trip during the run."""

    def run() -> Decision:
        decision = policy_engine.evaluate(call)
        if decision.reservation is not None:
            policy_engine.release(decision.reservation, GiveBack.NOT_COUNTED)
        return decision

    return run


def evaluate_only(policy_engine: PolicyEngine, call: ToolCall) -> Callable[[], Decision]:
    return lambda: policy_engine.evaluate(call)


def limits_reference() -> Callable[[], object]:
    """What the two demo limits would cost through the `limits` package alone (no policy, no CEL, no cost)."""
    from limits import RateLimitItemPerDay, RateLimitItemPerMinute, storage, strategies

    limiter = strategies.FixedWindowRateLimiter(storage.MemoryStorage())
    rate, spend = RateLimitItemPerMinute(10**9), RateLimitItemPerDay(10**12)
    return lambda: limiter.hit(rate, "grant", "1") and limiter.hit(spend, "grant", "1", cost=22_000)


def main() -> None:
    demo = DEMO_POLICY.read_text("utf-8")
    image_call = ToolCall(GRANT, "generate_image", IMAGE_ARGS)
    memory_demo = engine(demo, MemoryCounters())
    # The memory store's release is a dict update; time evaluate() alone and reset the counters between rounds.
    cases: dict[str, Callable[[], object]] = {
        "plain allow": evaluate_only(engine(PLAIN, MemoryCounters()), ToolCall(GRANT, "get_model_capabilities", {})),
        "deny_if, three conditions": evaluate_only(
            engine(THREE_CONDITIONS, MemoryCounters()),
            ToolCall(GRANT, "create_refund", {"amount": 900, "currency": "EUR", "note": "customer says urgent"}),
        ),
        "demo generate_image (CEL + cost + 2 limits, memory)": evaluating(memory_demo, image_call),
    }
    for outcome_check, fn in cases.items():
        result = fn()
        assert isinstance(result, Decision), outcome_check
    assert cases["deny_if, three conditions"]().outcome.value == "deny"  # type: ignore[attr-defined]
    assert cases["demo generate_image (CEL + cost + 2 limits, memory)"]().outcome.value == "allow"  # type: ignore[attr-defined]
    cases["reference: limits 5.8, two fixed-window hits in memory"] = limits_reference()
    rows = run_interleaved(cases, rounds=15, per_round=4000)

    redis_rows = []
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        client.ping()
    except redis.RedisError as exc:
        print(f"\n(Redis at {REDIS_URL} not reachable: {exc}; the Redis case is skipped)")
    else:
        prefix = f"airlock-bench:{secrets.token_hex(4)}:"
        redis_demo = engine(demo, RedisCounters(client, prefix=prefix))
        redis_rows = run_interleaved(
            {
                "demo generate_image, Redis counters (evaluate)": evaluate_only(redis_demo, image_call),
                "demo generate_image, Redis counters (evaluate + give back)": evaluating(redis_demo, image_call),
            },
            rounds=7,
            per_round=1500,
        )
        connection: Any = client.connection_pool.make_connection()

        def ping() -> object:
            connection.send_command("PING")
            return connection.read_response()

        redis_rows += run_interleaved({"Redis PING round trip alone (the floor)": ping}, rounds=7, per_round=1500)
        connection.disconnect()
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
    print_table(
        "Policy decisions (one core; median of interleaved rounds)",
        rows + redis_rows,
        "  targets: demo generate_image p50 <= 20 µs, p99 <= 60 µs in memory; p50 <= 150 µs with Redis",
    )


if __name__ == "__main__":
    main()
