"""Redis counter store A/B: one connection under a lock (what RedisCounters does) against the client's pool.

Both run the same Lua reservation of two counters (a call count and a budget, as the demo policy reserves) and give
it back, sequentially and from a few threads at once; rounds alternate which side goes first, and the figures are
medians over rounds. Run: `python -m bench.counters_bench [--ops N] [--threads T] [--rounds R]`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis

from bench.stats import print_table, run_interleaved
from service.counters import RedisCounters
from service.policy.counters import CounterItem

REDIS_URL = os.environ.get("AIRLOCK_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


class PooledRedisCounters(RedisCounters):
    """The B side: the same scripts through redis-py's command path (pool checkout, retries, EVALSHA fallback)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        super().__init__(client, prefix)
        self._registered: dict[str, Any] = {}

    def _run(self, script: str, keys: Sequence[str], args: Sequence[int]) -> Any:
        registered = self._registered.get(script)
        if registered is None:
            registered = self._registered[script] = self._client.register_script(script)
        return registered(keys=keys, args=args)


def reserve_and_give_back(store: RedisCounters, worker: int) -> Callable[[], object]:
    window_end = int(time.time()) + 3600
    items = [
        CounterItem(f"rate|g={worker}", 1, False, 10**9, window_end),
        CounterItem(f"spend|g={worker}", 22_000, True, 10**15, window_end),
    ]

    def run() -> object:
        result = store.reserve(items, time.time())
        store.release(items)
        return result

    return run


def threaded_ops_per_second(store: RedisCounters, threads: int, ops: int) -> float:
    per_thread = ops // threads
    barrier = threading.Barrier(threads + 1)

    def work(worker: int) -> None:
        run = reserve_and_give_back(store, worker)
        barrier.wait()
        for _ in range(per_thread):
            run()

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    barrier.wait()
    start = time.perf_counter()
    for w in workers:
        w.join()
    return per_thread * threads / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=2000, help="reservations per case and round")
    parser.add_argument("--threads", type=int, default=4, help="threads in the concurrent case")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (the median is reported)")
    options = parser.parse_args()

    prefix = f"airlock-bench:{secrets.token_hex(4)}:"
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)
    client.ping()
    stores = {
        "one connection under a lock": RedisCounters(client, prefix=prefix),
        "client pool (register_script)": PooledRedisCounters(client, prefix=prefix),
    }
    try:
        sequential = run_interleaved(
            {f"sequential, {name}": reserve_and_give_back(store, 0) for name, store in stores.items()},
            rounds=options.rounds,
            per_round=options.ops,
        )
        print_table("Redis counters: reserve + give back, one thread (µs per pair of round trips)", sequential)
        rates: dict[str, list[float]] = {name: [] for name in stores}
        for round_index in range(options.rounds):
            order = list(stores.items()) if round_index % 2 == 0 else list(reversed(stores.items()))
            for name, store in order:
                rates[name].append(threaded_ops_per_second(store, options.threads, options.ops))
        print(f"\nRedis counters: reserve + give back, {options.threads} threads (median of {options.rounds} rounds)")
        for name, values in rates.items():
            print(f"  {name.ljust(32)}  {statistics.median(values):10,.0f} pairs/s")
    finally:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        for store in stores.values():
            store.close()


if __name__ == "__main__":
    main()
