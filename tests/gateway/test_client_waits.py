"""How long a held call blocks for each client, and how long the status tool waits (service/gateway/client_waits.py)."""

from __future__ import annotations

from typing import Any

import pytest

from service.config import HoldConfig
from service.gateway.client_waits import client_budget, status_wait_seconds


def test_a_known_client_gets_its_budget_by_a_part_of_its_name_in_any_case() -> None:
    assert client_budget(HoldConfig(), "Claude-Code") == 110.0
    assert client_budget(HoldConfig(), "openai-agents-python") == 3.0


def test_configured_budgets_come_before_the_known_ones_and_max_wait_is_the_rest() -> None:
    config = HoldConfig(max_wait="20s", client_budgets={"Cursor": "5s"})

    assert client_budget(config, "cursor-vscode") == 5.0
    assert client_budget(config, "vscode") == 270.0
    assert client_budget(config, "some-new-client") == 20.0
    assert client_budget(config, None) == 20.0


@pytest.mark.parametrize(
    ("arguments", "seconds"),
    [
        ({}, 30.0),
        ({"wait_seconds": 5}, 5.0),
        ({"wait_seconds": 2.5}, 2.5),
        ({"wait_seconds": 600}, 30.0),
        ({"wait_seconds": -1}, 0.0),
        ({"wait_seconds": True}, 30.0),
        ({"wait_seconds": "10"}, 30.0),
    ],
)
def test_the_status_tool_waits_what_it_is_asked_within_the_clients_budget(
    arguments: dict[str, Any], seconds: float
) -> None:
    assert status_wait_seconds(arguments, 30.0) == seconds
