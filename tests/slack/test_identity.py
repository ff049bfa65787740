"""Who the clicking Slack user is: a linked Airlock user, found by Slack id or (optionally) by e-mail, with the Slack
user groups a rule names. Whether they may decide is still approvals' answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.gateway.harness import mcp_client
from tests.gateway.test_holds import held_call
from tests.slack.fake_slack import fake_slack
from tests.slack.helpers import DEAR, click, has_buttons, slack_gateway

pytestmark = pytest.mark.anyio

GROUP_RULE = """
version: "1"
default: deny
tools:
  generate_image:
    cost: {estimator: image_gen_mcp}
    require_approval:
      when: "true"
      approvers: {slack_groups: [S0DESIGN], roles: [admin]}
"""
USERS = {"ana": "approver", "bea": "approver", "root": "admin"}
SLACK_IDS = {"ana": "U0ANA", "bea": "U0BEA", "root": "U0ROOT"}


async def test_a_slack_group_named_by_the_rule_lets_its_members_decide(tmp_path: Path) -> None:
    async with fake_slack() as fake:
        fake.groups["S0DESIGN"] = ["U0ANA", "U0CAROL"]
        with slack_gateway(
            tmp_path, fake, policy=GROUP_RULE, users=USERS, slack_ids={"ana": "U0ANA", "bea": "U0BEA"}
        ) as gw:
            async with mcp_client(gw.mcp_url, gw.token) as client:
                async with held_call(gw, client, "generate_image", DEAR) as (request_id, results):
                    await click(gw, fake, "U0BEA", "approve", request_id)  # an approver, but not in the group
                    told = (await fake.wait_for("chat.postEphemeral"))[0].args
                    assert (told["user"], "not an approver for this rule" in told["text"]) == ("U0BEA", True)
                    await click(gw, fake, "U0ANA", "approve", request_id)
            assert not results[0].is_error
            assert [c.args["usergroup"] for c in fake.called("usergroups.users.list")] == ["S0DESIGN"]  # cached


async def test_when_slack_cannot_list_a_group_only_the_explicit_lists_count(tmp_path: Path) -> None:
    async with fake_slack() as fake:  # no groups: usergroups.users.list answers an error, as on a free plan
        with slack_gateway(
            tmp_path, fake, policy=GROUP_RULE, users=USERS, slack_ids={"ana": "U0ANA", "root": "U0ROOT"}
        ) as gw:
            async with mcp_client(gw.mcp_url, gw.token) as client:
                async with held_call(gw, client, "generate_image", DEAR) as (request_id, results):
                    await click(gw, fake, "U0ANA", "approve", request_id)
                    told = (await fake.wait_for("chat.postEphemeral"))[0].args
                    assert "not an approver for this rule" in told["text"]
                    await click(gw, fake, "U0ROOT", "approve", request_id)  # roles: [admin] still applies
            assert not results[0].is_error


async def test_a_slack_user_can_be_matched_by_email_and_cards_go_to_named_approvers_dms(tmp_path: Path) -> None:
    dm_rule = GROUP_RULE.replace("slack_groups: [S0DESIGN], roles: [admin]", "slack_users: [U0ANA, U0BEA], roles: []")
    async with fake_slack() as fake:
        fake.emails["U0ANA"] = "Ana@Example.com"
        with slack_gateway(
            tmp_path,
            fake,
            policy=dm_rule,
            users=USERS,
            slack_ids={"ana": "ana@example.com"},
            slack_settings={"channel": None, "match_email": True},
        ) as gw:
            async with mcp_client(gw.mcp_url, gw.token) as client:
                async with held_call(gw, client, "generate_image", DEAR) as (request_id, results):
                    await fake.wait_for("chat.postMessage", count=2)
                    # no channel in the rule or the config: a card in each named approver's DM with the app
                    assert sorted(c.args["channel"] for c in fake.cards()) == ["U0ANA", "U0BEA"]
                    assert sorted(c.answer["channel"] for c in fake.cards()) == ["D0ANA", "D0BEA"]
                    await click(gw, fake, "U0ANA", "approve", request_id)
            assert not results[0].is_error
            assert [c.args["user"] for c in fake.called("users.info")] == ["U0ANA"]
            updates = await fake.wait_for("chat.update", count=2, contains="*Approved* by ana")
            assert {c.args["channel"] for c in updates} == {"D0ANA", "D0BEA"}  # both cards follow the decision


QUORUM_RULE = """
version: "1"
default: deny
tools:
  generate_image:
    cost: {estimator: image_gen_mcp}
    require_approval: {when: "true", quorum: 2}
"""


async def test_with_a_quorum_the_card_counts_the_votes_until_it_is_met(tmp_path: Path) -> None:
    async with fake_slack() as fake:
        with slack_gateway(tmp_path, fake, policy=QUORUM_RULE, users=USERS, slack_ids=SLACK_IDS) as gw:
            async with mcp_client(gw.mcp_url, gw.token) as client:
                async with held_call(gw, client, "generate_image", DEAR) as (request_id, results):
                    await click(gw, fake, "U0ANA", "approve", request_id)
                    vote = (await fake.wait_for("chat.update", contains="1 of 2 approvals"))[0]
                    assert "(ana)" in json.dumps(vote.args["blocks"]) and has_buttons(vote.args)
                    await click(gw, fake, "U0ANA", "approve", request_id)
                    told = (await fake.wait_for("chat.postEphemeral"))[0].args["text"]
                    assert "already approved" in told and "needs more approvers" in told
                    await click(gw, fake, "U0BEA", "approve", request_id)
            assert not results[0].is_error
            final = (await fake.wait_for("chat.update", contains="Ran: succeeded"))[-1]
            assert "*Approved* by bea" in json.dumps(final.args["blocks"])
