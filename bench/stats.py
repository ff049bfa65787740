"""Timing helpers for a shared, noisy machine: interleave the cases, repeat rounds, report medians."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Summary:
    name: str
    p50_us: float
    p99_us: float
    per_second: float


def sample(fn: Callable[[], object], count: int) -> list[float]:
    """Latencies of `count` calls, in microseconds."""
    gc.collect()
    out = []
    clock = time.perf_counter_ns
    for _ in range(count):
        start = clock()
        fn()
        out.append((clock() - start) / 1000)
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_interleaved(cases: dict[str, Callable[[], object]], *, rounds: int, per_round: int) -> list[Summary]:
    """Each round runs every case once; a case's figures are the medians of its per-round p50 and p99."""
    p50s: dict[str, list[float]] = {name: [] for name in cases}
    p99s: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            latencies = sample(fn, per_round)
            p50s[name].append(percentile(latencies, 0.50))
            p99s[name].append(percentile(latencies, 0.99))
    out = []
    for name in cases:
        p50 = statistics.median(p50s[name])
        out.append(Summary(name, p50, statistics.median(p99s[name]), 1e6 / p50))
    return out


def print_table(title: str, rows: list[Summary], note: str = "") -> None:
    print(f"\n{title}")
    if note:
        print(note)
    width = max(len(r.name) for r in rows)
    print(f"  {'case'.ljust(width)}  {'p50 µs':>9}  {'p99 µs':>9}  {'decisions/s':>12}")
    for r in rows:
        print(f"  {r.name.ljust(width)}  {r.p50_us:9.1f}  {r.p99_us:9.1f}  {r.per_second:12,.0f}")
