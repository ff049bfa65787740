"""`make soak`: two replicas (processes) on PostgreSQL and Redis under a steady mixed load (allowed, denied,
rate-limited, and held calls that a person approves through the other replica's REST API), reporting each minute
the calls made, unexpected errors, p50/p99 latency and each replica's memory.

    python -m bench.soak [MINUTES] [CALLS_PER_SECOND]      # defaults: 30 minutes, 200 calls/s

Expected answers are counted, not errors: [POLICY DENIED] for the directory rule, [RATE LIMITED] past the limit.
Memory after the first minute (warm-up) should stay within 10%.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from bench.approvals_bench import rss_mib
from bench.scratch import scratch_database
from tests.cluster.harness import Cluster, replicas
from tests.gateway.harness import mcp_client

POLICY = """
version: "1"
default: deny
tools:
  get_model_capabilities:
    limits: [{counter: caps, window: minute, max: 6000, scope: global}]
  generate_image:
    deny_if:
      - conditions: [{path: args.directory, op: exists}]
        on_deny: "Saving images to server folders is not allowed."
    cost: {estimator: image_gen_mcp}
    require_approval: {when: "cost.usd > 0.10", approvers: {roles: [approver]}, timeout: 15m}
"""
CHEAP = {"prompt": "a pebble", "provider": "openai", "model": "gpt-image-1", "quality": "draft"}
DEAR = {"prompt": "four lighthouses", "provider": "openai", "model": "gpt-image-1", "n": 2}


def _mix(i: int) -> tuple[str, dict[str, Any], str]:
    """(tool, arguments, what we expect): per 100 calls, 2 held, 10 denied, 5 cheap images allowed at once, and 83
    capability reads, allowed or rate-limited. Images are few because the demo upstream draws each one (about 10 ms
    of CPU): at 200 calls/s on two cores, a third of them images would measure the drawing, not Airlock."""
    if i % 50 == 0:
        return "generate_image", {**DEAR, "prompt": f"held {i}"}, "held"
    if i % 10 == 0:
        return "generate_image", {**CHEAP, "directory": "/tmp"}, "denied"
    if i % 20 == 5:
        return "generate_image", CHEAP, "allowed"
    return "get_model_capabilities", {}, "allowed_or_limited"


async def _approver(cluster: Cluster, stop: anyio.Event) -> None:
    async with cluster.api(1, "ana") as api:
        while not stop.is_set():
            items = (await api.get("/api/requests", params={"status": "pending", "limit": 200})).json()["items"]
            for item in items:
                await api.post(f"/api/requests/{item['id']}/approve", json={})
            await anyio.sleep(0.2)


async def run(minutes: float, rate: float) -> None:
    with (
        scratch_database("airlock_soak") as (database, url),
        tempfile.TemporaryDirectory() as tmp,
        replicas(
            Path(tmp),
            count=2,
            database_url=url,
            policy=POLICY,
            users={"ana": "approver"},
            redis_url="redis://127.0.0.1:6379/0",
            redis_prefix=f"soak:{database}:",
            hold={"max_wait": "50s", "pending_cap": 10_000},
        ) as cluster,
    ):
        await _soak(cluster, minutes, rate)


async def _soak(cluster: Cluster, minutes: float, rate: float) -> None:
    stop = anyio.Event()
    window: list[float] = []  # the calls answered at once (allowed, denied, limited): what Airlock adds shows here
    held_window: list[float] = []  # held calls: mostly the time until the approver (polling every 0.2 s) decides
    counts: dict[str, int] = {}
    memory: list[list[float]] = []
    workers = max(32, int(rate // 3))  # enough that a slow (held) call does not hold the rate down
    interval = workers / rate

    async def worker(index: int) -> None:
        async with mcp_client(cluster.mcp_url(index % 2), cluster.tokens["agent"]) as client:
            i = index
            due = time.perf_counter() + interval * index / workers  # spread the agents over one interval
            while not stop.is_set():
                await anyio.sleep(max(0.0, due - time.perf_counter()))
                # A fixed schedule: a late call (a held one) is followed by the next at once, so the rate holds.
                due += interval
                started = time.perf_counter()
                tool, arguments, expected = _mix(i)
                try:
                    result = await client.call_tool(tool, arguments)
                    text = result.content[0].text if result.is_error and result.content else ""  # type: ignore[union-attr]
                    kind = (
                        "ok"
                        if not result.is_error
                        else "denied"
                        if text.startswith("[POLICY DENIED]")
                        else "limited"
                        if text.startswith("[RATE LIMITED]")
                        else "error"
                    )
                except Exception:
                    kind = "error"
                if expected == "held" and kind == "ok":
                    kind = "held_and_approved"
                counts[kind] = counts.get(kind, 0) + 1
                (held_window if expected == "held" else window).append((time.perf_counter() - started) * 1000)
                i += workers

    print(f"\nSoak: 2 replicas, {rate:g} calls/s target, {minutes:g} min")
    async with anyio.create_task_group() as group:
        group.start_soon(_approver, cluster, stop)
        for index in range(workers):
            group.start_soon(worker, index)
        end = time.monotonic() + minutes * 60
        minute = 0
        while time.monotonic() < end:
            slept = min(60.0, end - time.monotonic())
            await anyio.sleep(slept)
            minute += 1
            latencies, window[:] = sorted(window), []
            held, held_window[:] = sorted(held_window), []
            rss = [rss_mib(p.pid) for p in cluster.processes]
            memory.append(rss)
            sizes = " / ".join(f"{r:.0f}" for r in rss)
            print(
                f"  minute {minute:3d}: {(len(latencies) + len(held)) / slept:6.1f} calls/s"
                f"  at once p50 {_quantile(latencies, 0.5):5.1f} p99 {_quantile(latencies, 0.99):6.1f} ms"
                f"  held p50 {_quantile(held, 0.5):6.1f} ms"
                f"  RSS {sizes} MiB  {dict(sorted(counts.items()))}"
            )
        stop.set()
    if len(memory) > 2:
        growth = max(last / first - 1 for first, last in zip(memory[0], memory[-1], strict=True))
        print(f"  memory growth after the first minute: {growth:+.1%} (target <= 10%)")
    print(f"  unexpected errors: {counts.get('error', 0)}")


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[int(q * (len(ordered) - 1))] if ordered else 0.0


def main(minutes: float = 30, rate: float = 200) -> None:
    anyio.run(run, minutes, rate)


if __name__ == "__main__":
    main(*(float(a) for a in sys.argv[1:3]))
