"""Who may decide a request: its rule's approval spec, as stored on the request, and the one rule over it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from service.approvals.models import ToolCallRequest
from service.approvals.schemas import Approver
from service.policy import ApprovalSpec, Approvers
from service.users.models import Role


def spec_to_json(spec: ApprovalSpec, owner: str | None) -> dict[str, Any]:
    a = spec.approvers
    return {
        "approvers": {
            "roles": list(a.roles),
            "users": list(a.users),
            "slack_users": list(a.slack_users),
            "slack_groups": list(a.slack_groups),
        },
        "timeout_s": spec.timeout.total_seconds(),
        "quorum": spec.quorum,
        "self_approval": spec.self_approval,
        "channel": spec.channel,
        "slack": spec.slack,
        "owner": owner,
    }


def spec_from_json(data: Mapping[str, Any]) -> ApprovalSpec:
    a = data.get("approvers", {})
    return ApprovalSpec(
        approvers=Approvers(
            roles=tuple(a.get("roles", ())),
            users=tuple(a.get("users", ())),
            slack_users=tuple(a.get("slack_users", ())),
            slack_groups=tuple(a.get("slack_groups", ())),
        ),
        timeout=timedelta(seconds=float(data.get("timeout_s", 900))),
        quorum=int(data.get("quorum", 1)),
        self_approval=bool(data.get("self_approval", False)),
        channel=data.get("channel"),
        slack=bool(data.get("slack", True)),
    )


def has_deciding_role(role: Role) -> bool:
    """The role check: whether a role may decide requests at all (viewers only read). Whether a person may decide a
    given request is the rule check, `decider_refusal`."""
    return role in (Role.ADMIN, Role.APPROVER)


def decider_refusal(request: ToolCallRequest, approver: Approver) -> str | None:
    """The rule check: None when `approver` may decide this request; otherwise why not (the rule lives here, nowhere
    else)."""
    return decider_refusal_under(request.approval, approver)


def decider_refusal_under(approval: Mapping[str, Any], approver: Approver) -> str | None:
    """The same, under a rule's stored approval spec (a request's, or the one an edit would move it under)."""
    spec = spec_from_json(approval)
    owner = approval.get("owner")
    if owner and owner == approver.username and not spec.self_approval:
        return "you own this agent's grant, and this rule does not allow self-approval"
    if approver.role is Role.ADMIN:
        return None
    if not has_deciding_role(approver.role):
        return "viewers may not decide requests"
    allowed = spec.approvers
    if (
        approver.role.value in allowed.roles
        or approver.username in allowed.users
        or (approver.slack_user_id is not None and approver.slack_user_id in allowed.slack_users)
        or bool(approver.slack_groups & set(allowed.slack_groups))
    ):
        return None
    return "you are not an approver for this rule"
