"""Prometheus metrics, on a registry of our own so that several apps in one process (tests) do not clash."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter(
            "airlock_tool_calls", "Tool calls by tool and outcome.", ["tool", "outcome"], registry=self.registry
        )
        self.decision_seconds = Histogram(
            "airlock_decision_seconds",
            "Time from a tools/call arriving to its decision being committed.",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0),
            registry=self.registry,
        )
        self.upstream_seconds = Histogram(
            "airlock_upstream_seconds",
            "Upstream tools/call latency.",
            ["upstream"],
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120),
            registry=self.registry,
        )
        self.upstream_up = Gauge(
            "airlock_upstream_up", "1 when the upstream is connected.", ["upstream"], registry=self.registry
        )
        self.upstream_restarts = Gauge(
            "airlock_upstream_restarts", "Reconnections since start.", ["upstream"], registry=self.registry
        )
