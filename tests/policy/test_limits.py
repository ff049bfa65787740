"""Counting windows, reservations and what is given back, on the in-memory store and on Redis."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from service.counters import MemoryCounters, RedisCounters
from service.policy import CounterStore, GiveBack, Outcome
from service.policy.counters import CounterStoreUnavailable
from service.policy.windows import parse_window
from tests.policy.helpers import IMAGE, T0, Clock, call, engine_for, fixture

LIMITED = {
    "version": "1",
    "tools": {"gen": {"limits": [{"counter": "gen_rate", "window": "minute", "max": 3, "scope": "grant"}]}},
}


@pytest.fixture(params=["memory", "redis"])
def counters(request: pytest.FixtureRequest) -> Iterator[CounterStore]:
    if request.param == "memory":
        yield MemoryCounters()
        return
    client: redis.Redis = request.getfixturevalue("redis_client")
    prefix: str = request.getfixturevalue("redis_prefix")
    store = RedisCounters(client, prefix=prefix)
    yield store
    store.close()


def test_named_windows_align_to_utc_boundaries() -> None:
    minute, day = parse_window("minute"), parse_window("day")
    assert minute.start(T0) == T0 - 30
    assert day.start(T0) % 86400 == 0
    assert day.end(T0) - day.start(T0) == 86400
    ninety = parse_window("90s")
    assert ninety.start(T0) % 90 == 0
    with pytest.raises(ValueError, match="unknown window"):
        parse_window("fortnight")
    with pytest.raises(ValueError, match="whole number"):
        parse_window("1.5s")


def test_count_limit_resets_at_the_window_boundary(counters: CounterStore) -> None:
    clock = Clock()
    engine = engine_for(LIMITED, counters=counters, clock=clock)
    outcomes = [engine.evaluate(call("gen")).outcome for _ in range(4)]
    assert outcomes == [Outcome.ALLOW] * 3 + [Outcome.RATE_LIMITED]
    limited = engine.evaluate(call("gen"))
    assert limited.rule == "/tools/gen/limits/0"
    assert limited.retry_after == 30  # the minute ends 30 s after T0
    assert "3 per minute" in (limited.reason or "")
    clock.now = T0 + 29.9
    assert engine.evaluate(call("gen")).outcome is Outcome.RATE_LIMITED
    clock.now = T0 + 30  # a new calendar minute, not 60 s after the first call
    assert engine.evaluate(call("gen")).outcome is Outcome.ALLOW


def test_rate_limited_calls_do_not_count(counters: CounterStore) -> None:
    clock = Clock()
    engine = engine_for(LIMITED, counters=counters, clock=clock)
    for _ in range(10):
        engine.evaluate(call("gen"))
    clock.now = T0 + 30
    assert [engine.evaluate(call("gen")).outcome for _ in range(4)].count(Outcome.ALLOW) == 3


def test_upstream_failure_gives_the_count_back_but_rejection_does_not(counters: CounterStore) -> None:
    engine = engine_for(LIMITED, counters=counters)
    first = engine.evaluate(call("gen"))
    engine.release(first.reservation, GiveBack.NOT_COUNTED)
    second = engine.evaluate(call("gen"))
    engine.release(second.reservation, GiveBack.RAN_NOTHING)  # a rejection keeps the count
    outcomes = [engine.evaluate(call("gen")).outcome for _ in range(3)]
    assert outcomes == [Outcome.ALLOW, Outcome.ALLOW, Outcome.RATE_LIMITED]


def test_scopes_separate_grants_sessions_and_tools(counters: CounterStore) -> None:
    from service.policy import GrantInfo

    other = GrantInfo(id="8", name="agent-8")
    doc = {
        "version": "1",
        "tools": {
            "by_grant": {"limits": [{"counter": "a", "window": "hour", "max": 1, "scope": "grant"}]},
            "by_session": {"limits": [{"counter": "b", "window": "hour", "max": 1, "scope": "session"}]},
            "by_tool": {"limits": [{"counter": "c", "window": "hour", "max": 1, "scope": "tool"}]},
            "by_all": {"limits": [{"counter": "d", "window": "hour", "max": 1, "scope": "global"}]},
        },
    }
    engine = engine_for(doc, counters=counters)
    assert engine.evaluate(call("by_grant")).outcome is Outcome.ALLOW
    assert engine.evaluate(call("by_grant", grant=other)).outcome is Outcome.ALLOW
    assert engine.evaluate(call("by_grant")).outcome is Outcome.RATE_LIMITED

    assert engine.evaluate(call("by_session", session_id="s1")).outcome is Outcome.ALLOW
    assert engine.evaluate(call("by_session", session_id="s2")).outcome is Outcome.ALLOW
    assert engine.evaluate(call("by_session", session_id="s1")).outcome is Outcome.RATE_LIMITED
    # Stateless 2026-07-28 calls have no session: they count against the grant.
    assert engine.evaluate(call("by_session")).outcome is Outcome.ALLOW
    assert engine.evaluate(call("by_session")).outcome is Outcome.RATE_LIMITED

    assert engine.evaluate(call("by_tool")).outcome is Outcome.ALLOW
    assert engine.evaluate(call("by_tool", grant=other)).outcome is Outcome.RATE_LIMITED
    assert engine.evaluate(call("by_all")).outcome is Outcome.ALLOW
    assert engine.evaluate(call("by_all", grant=other)).outcome is Outcome.RATE_LIMITED


def test_budget_reserves_cost_and_gives_it_back_on_rejection(counters: CounterStore) -> None:
    doc = {
        "version": "1",
        "tools": {
            "generate_image": {
                "cost": {"estimator": "image_gen_mcp"},
                "limits": [{"counter": "spend", "window": "day", "max": 1.0, "increment_from": "cost.usd"}],
                "require_approval": {"when": "cost.usd > 0.10"},
            }
        },
    }
    engine = engine_for(doc, counters=counters)
    big: dict[str, Any] = {**IMAGE, "n": 4, "orientation": "portrait"}  # exactly $1.00
    held = engine.evaluate(call("generate_image", **big))
    assert held.outcome is Outcome.HOLD
    # The whole day's budget is reserved by the held call...
    assert engine.evaluate(call("generate_image", **IMAGE, quality="draft")).outcome is Outcome.RATE_LIMITED
    # ...and a rejection gives it back.
    engine.release(held.reservation, GiveBack.RAN_NOTHING)
    cheap = engine.evaluate(call("generate_image", **IMAGE, quality="draft"))
    assert cheap.outcome is Outcome.ALLOW
    refused = engine.evaluate(call("generate_image", **big))
    assert refused.outcome is Outcome.RATE_LIMITED
    assert "Budget of $1.00 per day" in (refused.reason or "")


def test_budgets_count_in_exact_micro_dollars(counters: CounterStore) -> None:
    doc = {
        "version": "1",
        "tools": {
            "gen": {
                "cost": {"expr": "0.1"},
                "limits": [{"counter": "spend", "window": "day", "max": 0.3, "increment_from": "cost.usd"}],
            }
        },
    }
    engine = engine_for(doc, counters=counters)
    # 0.1 + 0.1 + 0.1 > 0.3 in floating point; in micro-dollars it is exactly 300000.
    assert [engine.evaluate(call("gen")).outcome for _ in range(4)] == [Outcome.ALLOW] * 3 + [Outcome.RATE_LIMITED]


def test_soft_limit_escalates_to_approval_instead_of_refusing(counters: CounterStore) -> None:
    doc = {
        "version": "1",
        "tools": {"gen": {"limits": [{"counter": "soft", "window": "hour", "max": 2, "over": "require_approval"}]}},
    }
    engine = engine_for(doc, counters=counters)
    decisions = [engine.evaluate(call("gen")) for _ in range(4)]
    assert [d.outcome for d in decisions] == [Outcome.ALLOW, Outcome.ALLOW, Outcome.HOLD, Outcome.HOLD]
    assert decisions[2].rule == "/tools/gen/limits/0"
    assert engine.may_hold("gen")


def test_hard_limit_rejects_before_queueing(counters: CounterStore) -> None:
    engine = engine_for(fixture("airlock-demo.yaml"), counters=counters)
    expensive: dict[str, Any] = {**IMAGE, "n": 2}
    outcomes = [engine.evaluate(call("generate_image", **expensive)).outcome for _ in range(31)]
    assert outcomes[:30] == [Outcome.HOLD] * 30
    assert outcomes[30] is Outcome.RATE_LIMITED


def test_the_policylayer_seed_caps_the_31st_call_in_a_minute(counters: CounterStore) -> None:
    engine = engine_for(fixture("policylayer-seed.json"), counters=counters)
    outcomes = [engine.evaluate(call("generate_image", **IMAGE)).outcome for _ in range(31)]
    assert outcomes.count(Outcome.ALLOW) == 30
    assert outcomes[-1] is Outcome.RATE_LIMITED
    assert engine.evaluate(call("edit_image")).outcome is Outcome.DENY


def test_several_limits_are_reserved_all_or_nothing(counters: CounterStore) -> None:
    doc = {
        "version": "1",
        "all_tools": {"limits": [{"counter": "all", "window": "hour", "max": 100}]},
        "tools": {"gen": {"limits": [{"counter": "gen", "window": "hour", "max": 1}]}},
    }
    engine = engine_for(doc, counters=counters)
    assert engine.evaluate(call("gen")).outcome is Outcome.ALLOW
    for _ in range(5):
        assert engine.evaluate(call("gen")).outcome is Outcome.RATE_LIMITED
    # The refused calls did not consume the shared all_tools counter.
    peek = engine.counters.peek([k.key for k in engine.evaluate(call("other")).reservation.items], T0)  # type: ignore[union-attr]
    assert peek == [2]


def test_counters_in_conditions_see_the_count_before_this_call(counters: CounterStore) -> None:
    doc = {
        "version": "1",
        "tools": {
            "gen": {
                "limits": [{"counter": "gen", "window": "hour", "max": 100}],
                "require_approval": {"when": "counters.gen >= 2"},
            }
        },
    }
    engine = engine_for(doc, counters=counters)
    assert [engine.evaluate(call("gen")).outcome for _ in range(3)] == [
        Outcome.ALLOW,
        Outcome.ALLOW,
        Outcome.HOLD,
    ]


class BrokenCounters(MemoryCounters):
    def reserve(self, items, now):  # type: ignore[no-untyped-def]
        raise CounterStoreUnavailable("rate-limit counters unavailable: connection refused")


def test_unreachable_counters_fail_closed_by_default() -> None:
    closed = engine_for(LIMITED, counters=BrokenCounters())
    decision = closed.evaluate(call("gen"))
    assert decision.outcome is Outcome.DENY
    assert "unavailable" in (decision.reason or "")
    opened = engine_for(LIMITED, counters=BrokenCounters(), fail_open=True)
    assert opened.evaluate(call("gen")).outcome is Outcome.ALLOW


def test_redis_outage_raises_unavailable() -> None:
    dead = RedisCounters.from_url("redis://127.0.0.1:1/0", timeout_seconds=0.2)
    engine = engine_for(LIMITED, counters=dead)
    decision = engine.evaluate(call("gen"))
    dead.close()
    assert decision.outcome is Outcome.DENY
    assert decision.errors
    assert "unavailable" in decision.errors[0]


def test_redis_counters_are_shared_between_engines(redis_client: redis.Redis, redis_prefix: str) -> None:
    """Two replicas: 30/min means 30 in total."""
    stores = [RedisCounters(redis_client, prefix=redis_prefix) for _ in range(2)]
    first, second = (engine_for(fixture("policylayer-seed.json"), counters=store) for store in stores)
    outcomes = [(first if i % 2 else second).evaluate(call("generate_image", **IMAGE)).outcome for i in range(60)]
    for store in stores:
        store.close()
    assert outcomes.count(Outcome.ALLOW) == 30


def test_redis_counters_survive_a_flushed_script_cache(redis_client: redis.Redis, redis_prefix: str) -> None:
    store = RedisCounters(redis_client, prefix=redis_prefix)
    engine = engine_for(LIMITED, counters=store)
    assert engine.evaluate(call("gen")).outcome is Outcome.ALLOW
    redis_client.script_flush()  # what a Redis restart does to EVALSHA
    assert [engine.evaluate(call("gen")).outcome for _ in range(3)] == [
        Outcome.ALLOW,
        Outcome.ALLOW,
        Outcome.RATE_LIMITED,
    ]
    store.close()
