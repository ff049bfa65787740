"""Counter stores for the policy engine's limits and budgets: in this process's memory, or in Redis for replicas.

The engine sees them only through `service.policy.CounterStore`; `policy/` itself does no I/O.

The `limits` package was measured first (its reference case is in bench/policy_bench.py): in memory one hit
costs about 5 µs, on Redis each limit is its own round trip, its windows start at the first hit instead of UTC
boundaries, and it cannot give a hit back or reserve several counters all-or-nothing. A call under the demo policy
needs two counters reserved together and released together, so these stores do that themselves: a dict in one
process, or one Lua script per decision on Redis.
"""

from service.counters.dry_run import DryRunCounters
from service.counters.memory import MemoryCounters
from service.counters.redis_store import RedisCounters

__all__ = ["DryRunCounters", "MemoryCounters", "RedisCounters"]
