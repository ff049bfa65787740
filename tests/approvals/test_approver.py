"""Approver.of_user is the one way a stored user becomes an approver (REST, web, CLI and Slack use it)."""

from __future__ import annotations

from service.approvals.schemas import Approver
from service.users.models import Role, User


def _user(slack_user_id: str | None) -> User:
    return User(username="ana", role=Role.APPROVER, slack_user_id=slack_user_id, password_hash="x")


def test_an_approver_of_a_user_carries_their_name_role_channel_and_linked_slack_id() -> None:
    approver = Approver.of_user(_user("U0ANA"), "api")

    assert approver == Approver("ana", Role.APPROVER, "api", slack_user_id="U0ANA")


def test_the_clicking_slack_users_id_and_groups_are_used_for_a_user_matched_by_email() -> None:
    approver = Approver.of_user(_user(None), "slack", slack_user_id="U0CLICK", slack_groups=frozenset({"S0OPS"}))

    assert approver.slack_user_id == "U0CLICK"
    assert approver.slack_groups == frozenset({"S0OPS"})
    assert approver.channel == "slack"
