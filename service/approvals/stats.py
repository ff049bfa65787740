"""How the queue is doing, for the dashboard and the grants page: pending now, time to a decision, what is held,
and what the held calls that ran cost."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from service.approvals.repository import ApprovalStatsRepository


@dataclass(frozen=True)
class QueueStats:
    pending: int
    decided: int
    median_decision_s: float | None
    p90_decision_s: float | None
    held_tools: list[tuple[str, int]]


def queue_stats(session: Session, since: datetime) -> QueueStats:
    repo = ApprovalStatsRepository(session)
    waits = sorted((decided - created).total_seconds() for created, decided in repo.decision_times(since))
    p90 = None
    if waits:
        p90 = waits[0] if len(waits) == 1 else statistics.quantiles(waits, n=10, method="inclusive")[8]
    return QueueStats(
        pending=repo.pending_total(),
        decided=len(waits),
        median_decision_s=statistics.median(waits) if waits else None,
        p90_decision_s=p90,
        held_tools=repo.held_tools(since),
    )


def ran_cost_by_grant_day(session: Session, since: datetime) -> dict[int, dict[str, int]]:
    """Per grant and UTC day, the estimated cost (micro-USD) of held calls that were approved and ran."""
    costs: dict[int, dict[str, int]] = {}
    for grant_id, day, cost in ApprovalStatsRepository(session).ran_cost_per_grant_day(since):
        costs.setdefault(grant_id, {})[day] = cost
    return costs
