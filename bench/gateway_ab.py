"""A/B of the gateway's cost per allowed call: this checkout against an earlier commit, in one run.

`python -m bench.gateway_ab REV [ROUNDS] [CALLS]`: REV is checked out into a temporary git worktree and served by this
venv's interpreter with that tree first on the path; both Airlocks run the echo upstream of gateway_bench, and their
rounds interleave with the echo upstream called directly (direct, A, B, direct, A, B, ...), so the machine's noise falls
on all three. Prints each Airlock's median CPU per call, its p50/p99 and what it adds over direct in the same round, and
B/A. Each Airlock is measured on its own process (the upstream child excluded).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import anyio

from bench.gateway_bench import (
    ROOT,
    Target,
    free_port,
    median,
    percentile,
    sequential,
    start_airlock,
    start_direct,
    wait_http,
    write_config,
)

_RUN_CLI = "import sys; from service.cli.main import main; main()"


def start_at(tree: Path | None, workdir: Path, port: int) -> tuple[subprocess.Popen[bytes], str]:
    """This checkout's Airlock, or the one in `tree` (its source first on the path)."""
    if tree is None:
        return start_airlock(workdir, port)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    config = str(write_config(workdir, port))
    created = subprocess.run(
        [sys.executable, "-c", _RUN_CLI, "grants", "create", "bench", "--config", config],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    token = created.stdout.strip().splitlines()[-1]
    process = subprocess.Popen(
        [sys.executable, "-c", _RUN_CLI, "serve", "--config", config], env=env, stderr=subprocess.DEVNULL
    )
    return process, token


async def run(rev: str, rounds: int, calls: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(tree), rev], check=True)
        processes: list[subprocess.Popen[bytes]] = []
        try:
            direct_port = free_port()
            direct = start_direct(direct_port)
            processes.append(direct)
            wait_http(f"http://127.0.0.1:{direct_port}/mcp")
            targets = [Target("direct", f"http://127.0.0.1:{direct_port}/mcp", None, direct.pid)]
            for name, source in ((f"A {rev}", tree), ("B this checkout", None)):
                workdir = Path(tmp) / name.split()[0]
                workdir.mkdir()
                port = free_port()
                process, token = start_at(source, workdir, port)
                processes.append(process)
                wait_http(f"http://127.0.0.1:{port}/readyz")
                targets.append(Target(name, f"http://127.0.0.1:{port}/mcp", token, process.pid))
            figures: dict[str, dict[str, list[float]]] = {t.name: {"cpu": [], "p50": [], "p99": []} for t in targets}
            for _ in range(rounds):
                for target in targets:
                    latencies, cpu = await sequential(target, calls)
                    figures[target.name]["cpu"].append(cpu * 1e6)
                    figures[target.name]["p50"].append(median(latencies))
                    figures[target.name]["p99"].append(percentile(latencies, 0.99))
        finally:
            for process in processes:
                process.terminate()
                process.wait(10)
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    print(f"\nGateway A/B: {rounds} interleaved rounds of {calls} sequential echo calls; medians")
    direct_figures = figures.pop("direct")
    added: dict[str, dict[str, float]] = {}
    for name, f in figures.items():
        cpu, p50, p99 = median(f["cpu"]), median(f["p50"]), median(f["p99"])
        added[name] = {q: median([x - y for x, y in zip(f[q], direct_figures[q], strict=True)]) for q in ("p50", "p99")}
        print(
            f"  {name:<28} CPU per call {cpu:6,.0f} µs   p50 {p50:5.2f} ms   p99 {p99:5.2f} ms"
            f"   added over direct p50 {added[name]['p50']:+5.2f} ms  p99 {added[name]['p99']:+5.2f} ms"
        )
    print(f"  {'direct':<28} p50 {median(direct_figures['p50']):5.2f} ms   p99 {median(direct_figures['p99']):5.2f} ms")
    a, b = (figures[t.name]["cpu"] for t in targets[1:])
    ratio = median([y / x for x, y in zip(a, b, strict=True)])
    print(f"  B/A CPU per call, median of the rounds' ratios: {ratio:.3f} ({ratio - 1:+.1%})")
    added_a, added_b = added.values()
    for q in ("p50", "p99"):
        print(f"  B/A added {q} over direct: {added_b[q] / added_a[q]:.3f} ({added_b[q] / added_a[q] - 1:+.1%})")


def main(rev: str, rounds: int = 7, calls: int = 500) -> None:
    anyio.run(run, rev, rounds, calls)


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:4]))
