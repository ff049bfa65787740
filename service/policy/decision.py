"""What goes into a decision and what comes out of it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

from service.policy.counters import Reservation


class Outcome(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    RATE_LIMITED = "rate_limited"
    HOLD = "hold"


@dataclass(frozen=True, slots=True)
class GrantInfo:
    """The agent's credential as the policy sees it (`grant.*` in conditions)."""

    id: str
    name: str
    owner: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    def as_context(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "owner": self.owner or "", "labels": dict(self.labels)}


@dataclass(slots=True)
class ToolCall:
    grant: GrantInfo
    tool: str
    arguments: Mapping[str, Any]
    upstream: str | None = None
    # None on the stateless 2026-07-28 revision: `session` scope then falls back to the grant.
    session_id: str | None = None


@dataclass(frozen=True, slots=True)
class Approvers:
    roles: tuple[str, ...] = ("approver",)
    users: tuple[str, ...] = ()
    slack_users: tuple[str, ...] = ()
    slack_groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ApprovalSpec:
    """How a held call is to be decided (require_approval with its defaults filled in)."""

    approvers: Approvers = field(default_factory=Approvers)
    timeout: timedelta = timedelta(minutes=15)
    on_timeout: str = "reject"
    quorum: int = 1
    self_approval: bool = False
    channel: str | None = None
    slack: bool = True


@dataclass(frozen=True, slots=True)
class ArgumentProblem:
    """One way a call's arguments break its tool's inputSchema."""

    where: str
    """The path into the arguments ("size", "images/0"), or "" for the arguments as a whole."""
    keyword: str
    """The schema keyword that failed (required, type, enum, ...): what the audit log keeps."""
    message: str
    """The validator's words, which may quote the agent's values: for the agent (and approvers), never the log."""

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


@dataclass(slots=True)  # not frozen: it is built on every call, and frozen init costs a microsecond
class Decision:
    outcome: Outcome
    rule: str
    """JSON Pointer into the policy document of the rule that decided."""
    reason: str | None = None
    cost_usd: float | None = None
    retry_after: float | None = None
    """Seconds until a rate-limited call may be tried again."""
    approval: ApprovalSpec | None = None
    reservation: Reservation | None = None
    """Counters this call holds; give them back through the counter store when the call fails or is refused."""
    errors: tuple[str, ...] = ()
    """Evaluation errors that pushed the decision toward the stricter outcome, for the audit log."""
    standing_approval: str | None = None
    invalid_arguments: tuple[ArgumentProblem, ...] = ()
    """Set on a denial because the arguments break the tool's inputSchema (checked for tools the policy may hold)."""

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOW
