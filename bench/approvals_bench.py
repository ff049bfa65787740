"""Approvals benchmark: many calls held at once (memory and idle CPU of the Airlock process), the latency from a
decision to the agent's result, and decisions per second through the REST API. Airlock runs as its own process
(`airlock serve`, SQLite) with the echo server as its stdio upstream; the policy holds every echo call."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import httpx2
import yaml

from bench.gateway_bench import ECHO, Target, cpu_seconds, free_port, session, wait_http

AIRLOCK = str(Path(sys.executable).parent / "airlock")
POLICY = {"version": "1", "default": "deny", "tools": {"echo": {"require_approval": {"when": "true", "timeout": "1h"}}}}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def configure(
    workdir: Path, port: int, pending_cap: int, database_url: str | None = None
) -> tuple[Path, Callable[..., str], str]:
    """A config for Airlock with the echo server as upstream and a policy that holds every echo call, the
    `airlock` command bound to it, and a fresh agent grant's token."""
    (workdir / "policy.yaml").write_text(yaml.safe_dump(POLICY))
    config: dict[str, Any] = {
        "data_dir": str(workdir / "data"),
        "policy": str(workdir / "policy.yaml"),
        "listen": {"host": "127.0.0.1", "port": port},
        "upstreams": {"echo": {"command": sys.executable, "args": [str(ECHO)]}},
        "hold": {"max_wait": "10m", "pending_cap": pending_cap},
        "log_level": "warning",
    }
    if database_url:
        config["database_url"] = database_url
    path = workdir / "airlock.yaml"
    path.write_text(yaml.safe_dump(config))

    def airlock(*args: str) -> str:
        return subprocess.run(
            [AIRLOCK, *args, "--config", str(path)], capture_output=True, text=True, check=True
        ).stdout

    airlock("users", "create", "owner", "--role", "viewer")
    token = airlock("grants", "create", "bench", "--owner", "owner").strip().splitlines()[-1]
    return path, airlock, token


def serve(path: Path) -> subprocess.Popen[bytes]:
    """Airlock, its log in `airlock.log` beside the config (see `complaints`)."""
    with (path.parent / "airlock.log").open("wb") as log:
        return subprocess.Popen([AIRLOCK, "serve", "--config", str(path)], stderr=log)


def complaints(workdir: Path, limit: int = 5) -> None:
    """Print what Airlock warned about during a run, so no figure is quoted from a run that went wrong unseen."""
    log = workdir / "airlock.log"
    if not log.exists():  # Airlock never started: the error that says why is already on its way up
        return
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    if lines:
        print(f"  Airlock logged {len(lines)} warning or error lines during this run; the first {limit}:")
        for line in lines[:limit]:
            print(f"    {_gist(line)}")


def _gist(line: str) -> str:
    """A JSON log line as its level and message; a traceback as its last lines, where the error is named."""
    try:
        entry = json.loads(line)
        text = f"{entry.get('level')}: {entry.get('message')}"
    except (ValueError, AttributeError):
        text = line
    parts = [part.strip() for part in text.splitlines() if part.strip()]
    return " | ".join(parts if len(parts) <= 4 else [parts[0], "...", *parts[-3:]])[:600]


def start(workdir: Path, port: int, pending_cap: int) -> tuple[subprocess.Popen[bytes], str, str]:
    path, airlock, token = configure(workdir, port, pending_cap)
    api_token = json.loads(airlock("users", "create", "ana", "--role", "approver", "--json"))["api_token"]
    return serve(path), token, api_token


async def pending_ids(api: httpx2.AsyncClient, want: int, timeout: float = 600) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        ids: list[int] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"status": "pending", "limit": 200}
            if cursor:
                params["cursor"] = cursor
            page = (await api.get("/api/requests", params=params)).json()
            ids += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        if len(ids) >= want or time.monotonic() > deadline:
            return ids
        await anyio.sleep(0.5)


async def held_at_once(target: Target, api: httpx2.AsyncClient, total: int, sessions: int) -> None:
    before = rss_mib(target.pid)
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(session(target)) for _ in range(sessions)]
        with_sessions = rss_mib(target.pid)
        async with anyio.create_task_group() as group:
            for i in range(total):
                group.start_soon(clients[i % sessions].call_tool, "echo", {"text": f"held {i}"})
            ids = await pending_ids(api, total)
            await anyio.sleep(2)
            held_rss = rss_mib(target.pid)
            cpu_before = cpu_seconds(target.pid)
            await anyio.sleep(10)
            idle_cpu = (cpu_seconds(target.pid) - cpu_before) / 10
            # Let them all go: reject in bulk, so every agent gets its answer before the sessions close.
            started, cpu_started, own_started = time.perf_counter(), cpu_seconds(target.pid), time.process_time()
            async with anyio.create_task_group() as deciders:
                for chunk in range(8):
                    deciders.start_soon(_reject_all, api, ids[chunk::8])
            elapsed = time.perf_counter() - started
            decision_cpu = (cpu_seconds(target.pid) - cpu_started) / max(1, len(ids))
            # The agents and the REST clients run in this process, on the same two cores as Airlock.
            bench_cpu = (time.process_time() - own_started) / max(1, len(ids))
    per_call = (held_rss - with_sessions) * 1024 / max(1, len(ids))
    print(f"  {len(ids)} calls held at once over {sessions} sessions:")
    print(f"    Airlock RSS {before:.0f} MiB idle, {with_sessions:.0f} MiB with sessions, {held_rss:.0f} MiB holding")
    print(f"    memory per held call: {per_call:.1f} KiB (target <= 40 KB)")
    print(f"    CPU while holding them, idle agents: {idle_cpu * 100:.1f}% of one core (target ~0)")
    rate = len(ids) / elapsed
    print(
        f"    REST decisions: {len(ids)} rejections in {elapsed:.1f} s = {rate:.0f}/s (8 concurrent; target >= 300/s)"
    )
    print(
        f"      CPU per decision: Airlock {decision_cpu * 1e6:,.0f} µs (with the held call's answer), "
        f"the benchmark's agents and REST clients {bench_cpu * 1e6:,.0f} µs"
    )


async def _reject_all(api: httpx2.AsyncClient, ids: list[int]) -> None:
    for request_id in ids:
        response = await api.post(f"/api/requests/{request_id}/reject", json={"reason": "benchmark"})
        assert response.status_code == 200, response.text


async def decision_to_result(target: Target, api: httpx2.AsyncClient, rounds: int) -> None:
    latencies: list[float] = []
    async with session(target) as client:
        for i in range(rounds):
            received: list[float] = []

            async def agent(text: str = f"latency {i}", into: list[float] = received) -> None:
                result = await client.call_tool("echo", {"text": text})
                assert not result.is_error, result
                into.append(time.perf_counter())

            async with anyio.create_task_group() as group:
                group.start_soon(agent)
                [request_id] = await pending_ids(api, 1)
                decided = time.perf_counter()
                response = await api.post(f"/api/requests/{request_id}/approve", json={})
                assert response.status_code == 200
            latencies.append((received[0] - decided) * 1000)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    print(
        f"  decision to result (REST approve -> the waiting agent has the upstream's answer), {rounds} rounds: "
        f"p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms (target p99 <= 20 ms)"
    )


async def run(total: int, sessions: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        process, token, api_token = start(Path(tmp), port, pending_cap=total + 10)
        try:
            wait_http(f"http://127.0.0.1:{port}/readyz")
            target = Target("airlock", f"http://127.0.0.1:{port}/mcp", token, process.pid)
            headers = {"Authorization": f"Bearer {api_token}"}
            limits = httpx2.Limits(max_connections=16)
            async with httpx2.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60, limits=limits
            ) as api:
                print("\nApprovals (Airlock as its own process, SQLite, echo upstream)")
                await decision_to_result(target, api, rounds)
                await held_at_once(target, api, total, sessions)
        finally:
            process.terminate()
            process.wait(20)
            complaints(Path(tmp))


def main(total: int = 5000, sessions: int = 100, rounds: int = 50) -> None:
    anyio.run(run, total, sessions, rounds)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:4]))
