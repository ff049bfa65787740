"""The deployment files (no Docker engine runs here): they parse, they agree with each other and with the config,
and the balancer's routing sends a session to the replica whose name starts its id, which a real replica mints."""

from __future__ import annotations

import re
from pathlib import Path

import httpx2
import pytest
import yaml
from sqlalchemy import Engine

from service.config import load_settings
from tests.cluster.harness import replicas
from tests.gateway.test_edges import HEADERS, INIT
from tests.policy.helpers import fixture

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def nginx_routes() -> dict[str, str]:
    """The balancer's map from a session-id pattern to an upstream block, and each block's servers."""
    text = (DEPLOY / "nginx.conf").read_text()
    block = re.search(r"map \$http_mcp_session_id \$airlock_backend \{(.*?)\}", text, re.S)
    assert block is not None
    return dict(re.findall(r"(\S+)\s+(\S+);", block.group(1)))


def test_compose_runs_two_named_replicas_behind_the_balancer_on_postgresql_and_redis() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "airlock-a", "airlock-b", "balancer"} <= set(services)
    names = {services[s]["environment"]["AIRLOCK_REPLICA_NAME"] for s in ("airlock-a", "airlock-b")}
    assert names == {"a", "b"}
    for replica in ("airlock-a", "airlock-b"):
        assert services[replica]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert "AIRLOCK_SECRET_KEY" in services[replica]["environment"]  # one pepper for every replica's tokens
    assert services["migrate"]["command"][:3] == ["airlock", "db", "upgrade"]
    settings = load_settings(DEPLOY / "airlock.yaml")
    assert settings.effective_database_url.startswith("postgresql://") and settings.redis_url
    assert settings.listen.host == "0.0.0.0"  # inside a container, behind the balancer
    # The balancer's word for the client's address is believed, and it gives its own view, not the client's claim.
    assert settings.listen.forwarded_allow_ips == ["*"]
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in (DEPLOY / "nginx.conf").read_text()


def test_the_balancer_sends_each_session_to_the_replica_that_holds_it() -> None:
    routes = nginx_routes()
    text = (DEPLOY / "nginx.conf").read_text()

    def backend(session_id: str) -> str:
        for pattern, target in routes.items():
            if pattern != "default" and re.match(pattern.removeprefix("~"), session_id):
                return target
        return routes["default"]

    assert backend("a.3f9c0d") == "airlock_a" and backend("b.77aa01") == "airlock_b"
    assert backend("") == "airlock_any"  # a new session (initialize) or a 2026-07-28 request: any replica
    assert re.search(r"upstream airlock_a \{\s*server airlock-a:8080;", text)
    assert re.search(r"upstream airlock_b \{\s*server airlock-b:8080;", text)
    assert "proxy_buffering off" in text  # held calls stream


@pytest.mark.anyio
@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
async def test_a_replica_mints_session_ids_that_start_with_its_name(engine: Engine, tmp_path: Path) -> None:
    url = engine.url.render_as_string(hide_password=False)
    with replicas(
        tmp_path, count=1, database_url=url, policy=fixture("airlock-demo.yaml"), users={}, replica_name="a"
    ) as cluster:
        async with httpx2.AsyncClient(timeout=10) as http:
            opened = await http.post(
                cluster.mcp_url(0), json=INIT, headers={**HEADERS, "Authorization": f"Bearer {cluster.tokens['agent']}"}
            )
        assert opened.status_code == 200
        assert opened.headers["mcp-session-id"].startswith("a.")
