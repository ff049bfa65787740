"""Two real OpenID providers (two issuers) on loopback for the whole module, and an Airlock that trusts both: `corp`
(groups mapped to roles, viewer by default, links by verified e-mail, creates users) and `partner` (no default role)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.harness import RunningGateway, free_port, run_gateway
from tests.oidc.provider import LoopbackProvider, callback_of, running_provider
from tests.policy.helpers import fixture


@pytest.fixture(scope="module")
def corp() -> Iterator[LoopbackProvider]:
    with running_provider() as provider:
        yield provider


@pytest.fixture(scope="module")
def partner() -> Iterator[LoopbackProvider]:
    with running_provider() as provider:
        yield provider


@pytest.fixture
def gw(
    request: pytest.FixtureRequest, tmp_path: Path, corp: LoopbackProvider, partner: LoopbackProvider
) -> Iterator[RunningGateway]:
    """`oidc` settings beyond the providers come as an indirect parameter (passwords: false)."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    corp.setup([callback_of(base_url, "corp")], {})
    partner.setup([callback_of(base_url, "partner")], {})
    oidc = {
        "providers": {
            "corp": corp.settings(match_verified_email=True, create_users=True, display_name="Corp SSO"),
            "partner": partner.settings(match_verified_email=True, default_role=None),
        }
    } | getattr(request, "param", {})
    with run_gateway(
        tmp_path,
        database_url=f"sqlite:///{tmp_path}/airlock.db",
        policy=fixture("airlock-demo.yaml"),
        port=port,
        oidc=oidc,
    ) as running:
        yield running


# Real headless Chromium, as the web UI's own browser tests drive it.
from tests.webui.conftest import browser, page  # noqa: E402, F401
