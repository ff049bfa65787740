"""Gateway benchmark: the same echo upstream called directly and through Airlock over streamable HTTP.

Airlock and the upstream run as their own processes; the gateway's CPU per call is read from /proc for the
Airlock process alone. Cases are interleaved round by round and each figure is the median over rounds.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import yaml
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parents[1]
ECHO = Path(__file__).with_name("echo_upstream.py")
POLICY = {
    "version": "1",
    "default": "deny",
    "tools": {
        "echo": {
            "limits": [
                {"counter": "echo_rate", "window": "minute", "max": 1_000_000, "scope": "grant"},
                {"counter": "echo_hourly", "window": "hour", "max": 10_000_000, "scope": "global"},
            ],
            "deny_if": [{"when": "size(args.text) > 10000", "on_deny": "Too long."}],
        }
    },
}
ARGS = {"text": "hello through the airlock"}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx2.get(url, timeout=1)
            return
        except httpx2.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


@dataclass
class Target:
    name: str
    url: str
    token: str | None
    pid: int


@asynccontextmanager
async def open_session(url: str, token: str | None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60.0))
    async with http, Client(streamable_http_client(url, http_client=http), mode="legacy", cache=None) as client:
        yield client


def session(target: Target) -> AbstractAsyncContextManager[Client]:
    return open_session(target.url, target.token)


async def sequential(target: Target, calls: int) -> tuple[list[float], float]:
    async with session(target) as client:
        for _ in range(20):
            await client.call_tool("echo", ARGS)
        cpu_before = cpu_seconds(target.pid)
        latencies = []
        for _ in range(calls):
            start = time.perf_counter()
            result = await client.call_tool("echo", ARGS)
            latencies.append((time.perf_counter() - start) * 1000)
            assert not result.is_error, result
        cpu = cpu_seconds(target.pid) - cpu_before
    return latencies, cpu / calls


async def concurrent(target: Target, sessions: int, seconds: float, urls: Sequence[str] = ()) -> float:
    """Calls per second from `sessions` busy sessions, opened on `urls` in turn (as a balancer hashing on the
    session spreads them over replicas), or all on the target's url."""
    where = list(urls) or [target.url]
    done = 0
    stop_at = 0.0

    async def worker(client: Client) -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            result = await client.call_tool("echo", ARGS)
            assert not result.is_error
            done += 1

    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(open_session(where[i % len(where)], target.token)) for i in range(sessions)
        ]
        for client in clients:
            await client.call_tool("echo", ARGS)
        started = time.perf_counter()
        stop_at = started + seconds
        async with anyio.create_task_group() as group:
            for client in clients:
                group.start_soon(worker, client)
        elapsed = time.perf_counter() - started
    return done / elapsed


def start_direct(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(ECHO), "--http", str(port)], stderr=subprocess.DEVNULL)


def write_config(workdir: Path, port: int, extra: dict[str, Any] | None = None) -> Path:
    (workdir / "policy.yaml").write_text(yaml.safe_dump(POLICY))
    config = {
        "data_dir": str(workdir / "data"),
        "policy": str(workdir / "policy.yaml"),
        "listen": {"host": "127.0.0.1", "port": port},
        "upstreams": {"echo": {"command": sys.executable, "args": [str(ECHO)]}},
        "log_level": "warning",
        **(extra or {}),
    }
    (workdir / "airlock.yaml").write_text(yaml.safe_dump(config))
    return workdir / "airlock.yaml"


def start_airlock(workdir: Path, port: int, extra: dict[str, Any] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """`extra`: more of the config file's sections (the OAuth benchmark's `oauth`)."""
    write_config(workdir, port, extra)
    airlock = str(Path(sys.executable).parent / "airlock")
    created = subprocess.run(
        [airlock, "grants", "create", "bench", "--config", str(workdir / "airlock.yaml")],
        capture_output=True,
        text=True,
        check=True,
    )
    token = created.stdout.strip().splitlines()[-1]
    process = subprocess.Popen([airlock, "serve", "--config", str(workdir / "airlock.yaml")], stderr=subprocess.DEVNULL)
    return process, token


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(rounds: int, calls: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        direct_port, airlock_port = free_port(), free_port()
        direct = start_direct(direct_port)
        airlock, token = start_airlock(Path(tmp), airlock_port)
        try:
            wait_http(f"http://127.0.0.1:{direct_port}/mcp")
            wait_http(f"http://127.0.0.1:{airlock_port}/readyz")
            targets = [
                Target("direct", f"http://127.0.0.1:{direct_port}/mcp", None, direct.pid),
                Target("airlock", f"http://127.0.0.1:{airlock_port}/mcp", token, airlock.pid),
            ]
            seq: dict[str, dict[str, list[float]]] = {t.name: {"p50": [], "p99": [], "cpu": []} for t in targets}
            rates: dict[str, dict[int, list[float]]] = {t.name: {8: [], 32: []} for t in targets}
            for _ in range(rounds):
                for target in targets:
                    latencies, cpu = await sequential(target, calls)
                    seq[target.name]["p50"].append(median(latencies))
                    seq[target.name]["p99"].append(percentile(latencies, 0.99))
                    seq[target.name]["cpu"].append(cpu * 1e6)
                for level in (8, 32):
                    for target in targets:
                        rates[target.name][level].append(await concurrent(target, level, seconds))
        finally:
            for process in (direct, airlock):
                process.terminate()
                process.wait(10)
    d, a = seq["direct"], seq["airlock"]
    print("\nGateway: echo upstream called directly vs through Airlock (streamable HTTP, mcp 2.3 client)")
    print(f"  rounds: {rounds}; sequential calls per round: {calls}; concurrent runs: {seconds:g} s each; medians")
    print(f"  direct            p50 {median(d['p50']):6.2f} ms   p99 {median(d['p99']):6.2f} ms")
    print(f"  through Airlock   p50 {median(a['p50']):6.2f} ms   p99 {median(a['p99']):6.2f} ms")
    added50 = median([x - y for x, y in zip(a["p50"], d["p50"], strict=True)])
    added99 = median([x - y for x, y in zip(a["p99"], d["p99"], strict=True)])
    print(f"  added latency     p50 {added50:+6.2f} ms   p99 {added99:+6.2f} ms   (targets +0.9 / +2.0)")
    print(f"  Airlock CPU per allowed call: {median(a['cpu']):,.0f} µs (target <= 1,200; excludes the upstream child)")
    print(f"  for scale: the direct SDK echo server's own CPU per call: {median(d['cpu']):,.0f} µs")
    for level in (8, 32):
        direct_rate, airlock_rate = median(rates["direct"][level]), median(rates["airlock"][level])
        ratio = median([x / y for x, y in zip(rates["airlock"][level], rates["direct"][level], strict=True)])
        print(
            f"  c={level:<3} direct {direct_rate:7.0f} calls/s   Airlock {airlock_rate:7.0f} calls/s"
            f"   ratio {ratio:5.0%} (target >= 85%)"
        )


def main(rounds: int = 5, calls: int = 300, seconds: float = 3.0) -> None:
    anyio.run(run, rounds, calls, seconds)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
