"""A real gateway wired to the fake Slack, approvers linked to Slack users, and Slack's side of a click."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
from sqlmodel import select

from service.db.engine import unit_of_work
from service.users.models import User
from tests.gateway.harness import RunningGateway, run_gateway
from tests.policy.helpers import fixture
from tests.slack.fake_slack import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, FakeSlack, form_body

DEAR: dict[str, Any] = {"prompt": "four lighthouses", "provider": "openai", "model": "gpt-image-1", "n": 2}
USERS = {"ana": "approver", "root": "admin", "vic": "viewer"}
SLACK_IDS = {"ana": "U0ANA", "root": "U0ROOT", "vic": "U0VIC"}
CARD_CHANNEL = "#image-approvals"  # the demo policy's channel for generate_image


@contextmanager
def slack_gateway(
    tmp_path: Path,
    fake: FakeSlack,
    *,
    socket_mode: bool = False,
    policy: str | None = None,
    users: dict[str, str] | None = None,
    slack_ids: dict[str, str] | None = None,
    slack_settings: dict[str, Any] | None = None,
    **overrides: Any,
) -> Iterator[RunningGateway]:
    slack: dict[str, Any] = {"bot_token": BOT_TOKEN, "channel": "#airlock", "api_base_url": fake.api_url}
    slack.update(slack_settings or {})
    if socket_mode:
        slack["app_token"] = APP_TOKEN
    else:
        slack["signing_secret"] = SIGNING_SECRET
    with run_gateway(
        tmp_path,
        database_url=f"sqlite:///{tmp_path}/airlock.db",
        policy=policy if policy is not None else fixture("airlock-demo.yaml"),
        users=users or USERS,
        slack=slack,
        public_url="http://airlock.test:8080",
        **overrides,
    ) as gw:
        link_slack_users(gw, SLACK_IDS if slack_ids is None else slack_ids)
        yield gw


def link_slack_users(gw: RunningGateway, slack_ids: dict[str, str]) -> None:
    """Slack ids as `airlock users create --slack-user` sets them; a value with an @ is an e-mail instead."""
    with unit_of_work(gw.state.runtime.engine) as session:
        for username, slack_id in slack_ids.items():
            user = session.exec(select(User).where(User.username == username)).one()
            if "@" in slack_id:
                user.email = slack_id
            else:
                user.slack_user_id = slack_id
            session.add(user)


async def post_signed(gw: RunningGateway, fake: FakeSlack, payload: dict[str, Any], **signing: Any) -> httpx2.Response:
    body = form_body(payload)
    headers = {"Content-Type": "application/x-www-form-urlencoded", **fake.signed(body, **signing)}
    async with httpx2.AsyncClient(base_url=gw.base_url, timeout=10) as http:
        return await http.post("/slack/interactions", content=body, headers=headers)


async def card_of(fake: FakeSlack, request_id: int) -> tuple[str, str]:
    """The channel id and ts of the request's card, once Slack has it."""
    return await fake.card(request_id)


async def click(
    gw: RunningGateway, fake: FakeSlack, user: str, action: str, request_id: int, **signing: Any
) -> httpx2.Response:
    """`user` presses a button on the newest version of the request's card, signed as Slack signs it."""
    return await post_signed(gw, fake, await fake.press(user, action, request_id), **signing)


def blocks_of(call_args: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = call_args.get("blocks", [])
    return json.loads(blocks) if isinstance(blocks, str) else list(blocks)


def has_buttons(call_args: dict[str, Any]) -> bool:
    return any(block.get("type") == "actions" for block in blocks_of(call_args))
