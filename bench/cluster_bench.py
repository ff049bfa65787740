"""`make bench-cluster`: Airlock as one and as two replicas (processes on PostgreSQL and Redis, as deployed), next to
the direct upstream and two peers that install here (a minimal mcp-SDK proxy, and fastmcp's proxy from PyPI in
.venv-peers), all in front of the same echo upstream over streamable HTTP.

Prints, as medians of interleaved rounds: the added latency p50/p99 of sequential calls on one session; calls per
second with 8 and 32 concurrent sessions (spread over the replicas, as a balancer hashing on the session would),
as a ratio to direct; and the latency from a decision taken through one replica's REST API to the result of the
call held on the other, next to the same replica deciding.

    python -m bench.cluster_bench [ROUNDS] [CALLS] [SECONDS] [DECISIONS]
"""

from __future__ import annotations

import copy
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import yaml

from bench import gateway_bench
from bench.gateway_bench import (
    ECHO,
    Target,
    concurrent,
    free_port,
    open_session,
    percentile,
    sequential,
    start_direct,
    wait_http,
)
from bench.scratch import scratch_database
from tests.cluster.harness import Cluster, replicas

ROOT = Path(__file__).resolve().parents[1]
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
REDIS = "redis://127.0.0.1:6379/0"
HOLD_ME = {"text": "hold me"}
# The gateway benchmark's policy (a CEL deny_if and two limits), plus a hold for one text.
POLICY: dict[str, Any] = copy.deepcopy(gateway_bench.POLICY)
POLICY["tools"]["echo"]["require_approval"] = {"when": 'args.text == "hold me"', "timeout": "1h"}


@dataclass
class Row:
    """One line of the table: where its sequential calls go, and where its concurrent sessions go, in turn."""

    target: gateway_bench.Target
    urls: list[str] = field(default_factory=list)
    rates: dict[int, list[float]] = field(default_factory=lambda: {8: [], 32: []})
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.target.name


async def decision_to_release(cluster: Cluster, decide_on: int, samples: int) -> list[float]:
    """A call held on replica 0, approved through `decide_on`'s REST API: ms from the POST to the agent's result."""
    latencies: list[float] = []
    async with (
        open_session(cluster.mcp_url(0), cluster.tokens["agent"]) as agent,
        cluster.api(decide_on, "ana") as api,
    ):

        async def call(received: list[float]) -> None:
            result = await agent.call_tool("echo", HOLD_ME)
            received.append(time.perf_counter())
            assert not result.is_error, result

        for _ in range(samples):
            received: list[float] = []
            async with anyio.create_task_group() as group:
                group.start_soon(call, received)
                while True:
                    items = (await api.get("/api/requests", params={"status": "pending"})).json()["items"]
                    if items:
                        break
                    await anyio.sleep(0.01)
                await anyio.sleep(0.05)  # the agent's call is parked, not still on its way in
                decided = time.perf_counter()
                answer = await api.post(f"/api/requests/{items[0]['id']}/approve", json={})
                assert answer.status_code == 200, answer.text
            latencies.append((received[0] - decided) * 1000)
    return latencies


def start_peer(name: str, port: int) -> subprocess.Popen[bytes] | None:
    if name == "sdk proxy":
        command = [sys.executable, "-m", "bench.peers.sdk_proxy", str(port), str(ECHO)]
    elif PEERS_PYTHON.exists():
        command = [str(PEERS_PYTHON), str(ROOT / "bench/peers/fastmcp_proxy.py"), str(port), sys.executable, str(ECHO)]
    else:
        print("  (fastmcp proxy skipped: .venv-peers is missing; `make bench-cluster` creates it)")
        return None
    return subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL)


async def run(rounds: int, calls: int, seconds: float, decisions: int) -> None:
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with (
            scratch_database("airlock_bench_cluster") as (database, url),
            tempfile.TemporaryDirectory() as tmp,
            replicas(
                Path(tmp),
                count=2,
                database_url=url,
                policy=yaml.safe_dump(POLICY),
                users={"ana": "approver"},
                redis_url=REDIS,
                redis_prefix=f"bench:{database}:",
                upstreams={"echo": {"command": sys.executable, "args": [str(ECHO)]}},
                hold={"max_wait": "60s", "pending_cap": 1000},
            ) as cluster,
        ):
            token = cluster.tokens["agent"]
            direct_port = free_port()
            direct = start_direct(direct_port)
            processes.append(direct)
            first = cluster.processes[0]
            targets = [
                Row(Target("direct", f"http://127.0.0.1:{direct_port}/mcp", None, direct.pid)),
                Row(Target("Airlock, 1 replica", cluster.mcp_url(0), token, first.pid)),
                Row(
                    Target("Airlock, 2 replicas", cluster.mcp_url(0), token, first.pid),
                    [cluster.mcp_url(0), cluster.mcp_url(1)],
                ),
            ]
            for name in ("sdk proxy", "fastmcp proxy"):
                port = free_port()
                peer = start_peer(name, port)
                if peer is not None:
                    processes.append(peer)
                    targets.append(Row(Target(name, f"http://127.0.0.1:{port}/mcp", None, peer.pid)))
            for row in targets:
                wait_http(row.target.url)
            for _ in range(rounds):
                for row in targets:
                    if row.urls:  # one session is on one replica: the same as 1
                        continue
                    latencies, _cpu = await sequential(row.target, calls)
                    row.p50.append(statistics.median(latencies))
                    row.p99.append(percentile(latencies, 0.99))
                for level in (8, 32):
                    for row in targets:
                        row.rates[level].append(await concurrent(row.target, level, seconds, row.urls))
            same = await decision_to_release(cluster, 0, decisions)
            across = await decision_to_release(cluster, 1, decisions)
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
    report(targets, same, across, rounds, calls, seconds)


def report(targets: list[Row], same: list[float], across: list[float], rounds: int, calls: int, seconds: float) -> None:
    direct = targets[0]
    print("\nCluster: the echo upstream direct, through Airlock (PostgreSQL + Redis) and through peers")
    print(f"  rounds: {rounds}; sequential calls per round: {calls}; concurrent runs: {seconds:g} s each; medians")
    header = ("added p50", "added p99", "c=8 calls/s", "vs direct", "c=32 calls/s", "vs direct")
    print(f"  {'':22}" + "".join(f"{h:>13}" for h in header))
    for target in targets:
        if target.p50:
            added50 = statistics.median([a - d for a, d in zip(target.p50, direct.p50, strict=True)])
            added99 = statistics.median([a - d for a, d in zip(target.p99, direct.p99, strict=True)])
            cells = [f"{added50:+10.2f} ms", f"{added99:+10.2f} ms"]
        else:
            cells = [f"{'as 1':>13}", f"{'as 1':>13}"]
        for level in (8, 32):
            rate = statistics.median(target.rates[level])
            ratio = statistics.median([t / d for t, d in zip(target.rates[level], direct.rates[level], strict=True)])
            cells += [f"{rate:13.0f}", f"{ratio:13.0%}"]
        print(f"  {target.name:22}" + "".join(cells))
    for label, values in (("same replica", same), ("across replicas", across)):
        print(
            f"  decision -> result, {label:16} p50 {statistics.median(values):6.1f} ms"
            f"   p99 {percentile(values, 0.99):6.1f} ms   ({len(values)} held calls)"
        )


def main(rounds: int = 3, calls: int = 200, seconds: float = 3.0, decisions: int = 40) -> None:
    anyio.run(run, rounds, calls, seconds, decisions)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:5]))
