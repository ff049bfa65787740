"""The policy document, rendered readably: per tool what is hidden, denied, limited and held, each with the JSON
Pointer the audit log and the approval cards name, so links can land on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from service.policy.document import (
    ConditionSpec,
    DenyIfSpec,
    LimitSpec,
    PolicyDocument,
    RequireApprovalSpec,
    ToolRuleSpec,
)


@dataclass
class RuleLine:
    pointer: str
    kind: str  # deny, limit, hold, require, cost, allow
    text: str


@dataclass
class ToolSection:
    name: str
    pointer: str
    action: str
    description: str | None
    lines: list[RuleLine] = field(default_factory=list)


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _condition(spec: ConditionSpec) -> str:
    if spec.op == "exists":
        return f"{spec.path} is present"
    return f"{spec.path} {spec.op} {spec.value!r}"


def _test(when: str | None, conditions: list[ConditionSpec] | None) -> str:
    if when:
        return when
    if conditions:
        return " and ".join(_condition(c) for c in conditions)
    return "always"


def _limit(spec: LimitSpec) -> str:
    what = f"{spec.max:g} USD of {spec.increment_from}" if spec.increment_from else f"{spec.max:g} calls"
    window = spec.window if isinstance(spec.window, str) else f"{spec.window}s"
    over = ", then needs approval" if spec.over == "require_approval" else ""
    return f"at most {what} per {window} per {spec.scope} (counter {spec.counter}){over}"


def _approval(spec: RequireApprovalSpec) -> str:
    who = []
    approvers = spec.approvers
    who += [f"role {r}" for r in (approvers.roles if approvers.roles is not None else ["approver"])]
    who += [f"user {u}" for u in approvers.users]
    who += [f"Slack user {u}" for u in approvers.slack_users]
    who += [f"Slack group {g}" for g in approvers.slack_groups]
    parts = [f"held when {_test(spec.when, spec.conditions)}", f"approved by {', '.join(who)} (or an admin)"]
    parts.append(f"timeout {spec.timeout}, then rejected")
    if spec.quorum > 1:
        parts.append(f"{spec.quorum} approvers needed")
    if spec.self_approval:
        parts.append("the grant's owner may approve")
    if not spec.slack:
        parts.append("web only")
    return "; ".join(parts)


def _checks(
    prefix: str, deny_if: list[DenyIfSpec], require: list[ConditionSpec], limits: list[LimitSpec]
) -> list[RuleLine]:
    lines = []
    for i, spec in enumerate(deny_if):
        message = f" — “{spec.on_deny}”" if spec.on_deny else ""
        lines.append(
            RuleLine(f"{prefix}/deny_if/{i}", "deny", f"denied when {_test(spec.when, spec.conditions)}{message}")
        )
    for i, cond in enumerate(require):
        lines.append(RuleLine(f"{prefix}/require/{i}", "require", f"requires {_condition(cond)}"))
    for i, limit in enumerate(limits):
        lines.append(RuleLine(f"{prefix}/limits/{i}", "limit", _limit(limit)))
    return lines


def _summary(rule: ToolRuleSpec) -> str:
    """One word for the tool's card: what happens to its calls at most."""
    if rule.action in ("deny", "require_approval"):
        return "deny" if rule.action == "deny" else "hold"
    approval = rule.require_approval
    if approval is not None:
        always = not approval.conditions and (approval.when or "true").strip() == "true"
        return "hold" if always else "may_hold"
    return "may_deny" if rule.deny_if or rule.require or rule.limits else "allow"


def describe(document: PolicyDocument) -> dict[str, Any]:
    tools = []
    for name, rule in document.tools.items():
        pointer = f"/tools/{_escape(name)}"
        section = ToolSection(name, pointer, _summary(rule), rule.description)
        if rule.action == "deny":
            section.lines.append(RuleLine(pointer, "deny", f"always denied — “{rule.on_deny or 'denied by policy'}”"))
        section.lines += _checks(pointer, rule.deny_if, rule.require, rule.limits)
        if rule.cost is not None:
            source = f"estimator {rule.cost.estimator}" if rule.cost.estimator else f"expression {rule.cost.expr}"
            section.lines.append(RuleLine(f"{pointer}/cost", "cost", f"cost from {source}"))
        if rule.require_approval is not None:
            section.lines.append(RuleLine(f"{pointer}/require_approval", "hold", _approval(rule.require_approval)))
        elif rule.action == "require_approval":
            section.lines.append(RuleLine(pointer, "hold", "always held for approval (by an approver or an admin)"))
        tools.append(section)
    everywhere = _checks(
        "/all_tools", document.all_tools.deny_if, document.all_tools.require, document.all_tools.limits
    )
    hidden = [RuleLine(f"/hide/{i}", "hide", name) for i, name in enumerate(document.hide)]
    return {
        "default": document.default,
        "description": document.description,
        "hidden": hidden,
        "everywhere": everywhere,
        "tools": tools,
    }
