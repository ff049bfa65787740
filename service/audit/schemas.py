from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def agent_actor(grant_name: str) -> str:
    """The actor of what an agent's call caused, as the audit log names it."""
    return f"agent:{grant_name}"


def user_actor(username: str) -> str:
    """The actor of what a person did, as the audit log names it (the history's approver filter matches it)."""
    return f"user:{username}"


@dataclass
class AuditRecord:
    """What a caller knows about an event; the service adds time, sequence and hashes."""

    kind: str
    action: str
    actor: str
    grant_id: int | None = None
    grant_name: str | None = None
    upstream: str | None = None
    tool: str | None = None
    outcome: str | None = None
    rule: str | None = None
    reason: str | None = None
    cost_micros: int | None = None
    argument_keys: list[str] | None = None
    arguments_digest: str | None = None
    request_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    head_seq: int
    problem: str | None = None
    first_bad_seq: int | None = None


@dataclass(frozen=True)
class HistoryWhere:
    """The history's filters in database terms (names already resolved to ids, users to actors)."""

    since: datetime | None = None
    until: datetime | None = None
    tool: str | None = None
    grant_id: int | None = None
    outcome: str | None = None
    actor: str | None = None
    channel: str | None = None
    text: str | None = None
    min_seq: int | None = None
    max_seq: int | None = None
    """Bounds on seq, inclusive: the stretch of the log that a search too short for the text index reads."""
