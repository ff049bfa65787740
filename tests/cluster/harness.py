"""Replicas as real processes (`airlock serve`), sharing one PostgreSQL database and one Redis, each with its own
child upstream; every upstream logs what it executed to one file, so "exactly once" is counted across replicas."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import yaml

from service.config import load_settings
from service.db.engine import unit_of_work
from service.grants.service import create_grant
from service.runtime import Runtime
from service.users.models import Role
from service.users.service import create_user
from tests.gateway.harness import SECRET, demo_upstream, free_port


@dataclass
class Cluster:
    urls: list[str]
    processes: list[subprocess.Popen[bytes]]
    config: Path
    upstream_log: Path
    tokens: dict[str, str] = field(default_factory=dict)
    user_tokens: dict[str, str] = field(default_factory=dict)

    def mcp_url(self, replica: int) -> str:
        return self.urls[replica] + "/mcp"

    def api(self, replica: int, user: str) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            base_url=self.urls[replica], headers={"Authorization": f"Bearer {self.user_tokens[user]}"}, timeout=30
        )

    def upstream_calls(self, tool: str) -> list[dict[str, Any]]:
        if not self.upstream_log.exists():
            return []
        entries = [json.loads(line) for line in self.upstream_log.read_text().splitlines() if line.strip()]
        return [e for e in entries if e.get("event") == "call" and e["tool"] == tool]


@contextmanager
def replicas(
    tmp_path: Path,
    *,
    count: int,
    database_url: str,
    policy: str,
    users: dict[str, str],
    redis_url: str | None = None,
    redis_prefix: str = "airlock:ctr:",
    **settings: Any,
) -> Iterator[Cluster]:
    (tmp_path / "policy.yaml").write_text(policy)
    log = tmp_path / "upstream.log"
    ports = [free_port() for _ in range(count)]
    config: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "database_url": database_url,
        "policy": str(tmp_path / "policy.yaml"),
        "upstreams": {"imagegen": demo_upstream(log)},
        "secret_key": SECRET,
        "log_level": "warning",
        "counters": {"redis_prefix": redis_prefix},
        **settings,
    }
    if redis_url:
        config["redis_url"] = redis_url
    path = tmp_path / "airlock.yaml"
    path.write_text(yaml.safe_dump(config))
    cluster = Cluster([f"http://127.0.0.1:{port}" for port in ports], [], path, log)
    runtime = Runtime.build(load_settings(path))
    with unit_of_work(runtime.engine) as session:
        create_user(session, runtime.hasher, username="owner", role=Role.VIEWER, actor="test")
        for username, role in users.items():
            cluster.user_tokens[username] = create_user(
                session, runtime.hasher, username=username, role=Role(role), actor="test"
            ).api_token
        cluster.tokens["agent"] = create_grant(session, runtime.hasher, name="agent", actor="test", owner="owner").token
    runtime.close()
    airlock = str(Path(sys.executable).parent / "airlock")
    try:
        for port in ports:
            per_replica = tmp_path / f"replica-{port}.yaml"
            per_replica.write_text(yaml.safe_dump({**config, "listen": {"host": "127.0.0.1", "port": port}}))
            cluster.processes.append(subprocess.Popen([airlock, "serve", "--config", str(per_replica)]))
        for url in cluster.urls:
            _wait_ready(url + "/readyz")
        yield cluster
    finally:
        for process in cluster.processes:
            process.terminate()
        for process in cluster.processes:
            process.wait(20)


def _wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx2.get(url, timeout=1).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready")
