"""Shaping what the services return for the templates: no queries, no rules, only presentation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from service.approvals.schemas import RequestDetail
from service.audit.queries import DayUsage
from service.grants.schemas import GrantPublic

_ACTION_LABELS = {
    "request.created": "Held",
    "request.vote": "Approval vote",
    "request.edited": "Arguments edited",
    "request.approved": "Approved",
    "request.rejected": "Rejected",
    "request.expired": "Expired",
    "request.cancelled": "Withdrawn",
    "request.executed": "Executed",
    "request.reminder": "Reminder",
}


@dataclass
class TimelineEntry:
    at: datetime
    label: str
    who: str | None
    channel: str | None
    outcome: str | None
    reason: str | None
    summary: str | None
    details: dict[str, Any]

    @property
    def ran_edited_arguments(self) -> bool:
        """An approval whose call runs other arguments than the agent sent (approvals.service records both)."""
        original = self.details.get("original_digest")
        return bool(original) and self.details.get("executed_digest") != original


def _person(actor: str | None) -> str | None:
    if not actor:
        return None
    kind, _, name = actor.partition(":")
    if kind == "user":
        return name
    if kind == "agent":
        return f"agent {name}"
    return actor


def _result_summary(details: dict[str, Any]) -> str | None:
    result = details.get("result")
    if not isinstance(result, dict):
        return None
    parts = []
    for block in result.get("content", []):
        if block.get("type") in ("image", "audio"):
            parts.append(f"{block['type']} ({block.get('mime_type', '?')}, {block.get('base64_chars', 0):,} chars)")
        elif block.get("type") == "text":
            parts.append(f"text: {block.get('text', '')}")
        else:
            parts.append(str(block.get("type")))
    prefix = "error result: " if result.get("is_error") else ""
    return prefix + ("; ".join(parts) or "empty")


def _edit_summary(details: dict[str, Any]) -> str | None:
    """An edit moves a call under another rule when the policy, evaluated again, says so (approvals/edits.py)."""
    before, after = details.get("from_rule"), details.get("to_rule")
    if before and after and before != after:
        return f"now under {after} (was {before})"
    return None


def timeline(detail: RequestDetail) -> list[TimelineEntry]:
    """The request's audit events, as people read them: who did what, via which channel, and what came of it."""
    entries = []
    for event in detail.events:
        details = event.get("details") or {}
        entries.append(
            TimelineEntry(
                at=datetime.fromisoformat(event["at"]),
                label=_ACTION_LABELS.get(event["action"], event["action"]),
                who=_person(event.get("actor")),
                channel=details.get("channel"),
                outcome=event.get("outcome"),
                reason=event.get("reason"),
                summary=_result_summary(details) or _edit_summary(details),
                details=details,
            )
        )
    return entries


def decided_via(detail: RequestDetail) -> str | None:
    for event in detail.events:
        if event["action"] in ("request.approved", "request.rejected"):
            channel = (event.get("details") or {}).get("channel")
            return str(channel) if channel else None
    return None


def image_blocks(result: dict[str, Any] | None) -> list[dict[str, str]]:
    """The images of a stored tool result (the demo upstream returns PNGs), in order."""
    if not result:
        return []
    blocks = []
    for block in result.get("content", []):
        if isinstance(block, dict) and block.get("type") == "image" and isinstance(block.get("data"), str):
            blocks.append({"mime_type": str(block.get("mimeType", "")), "data": block["data"]})
    return blocks


@dataclass
class GrantRow:
    grant: GrantPublic
    calls: list[int]
    spend_micros: list[int]
    last_call: datetime | None
    bars: list[tuple[float, float, str]]  # (x, height, title) of the calls-per-day sparkline

    @property
    def total_calls(self) -> int:
        return sum(self.calls)

    @property
    def total_spend_micros(self) -> int:
        return sum(self.spend_micros)


def usage_rows(
    grants: list[GrantPublic],
    usage: dict[int, dict[str, DayUsage]],
    ran: dict[int, dict[str, int]],
    last: dict[int, datetime | None],
    since: datetime,
    days: int,
) -> list[GrantRow]:
    """Each grant with its calls and estimated spend per day (allowed at once, plus held calls that ran)."""
    day_keys = [(since + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(days)]
    rows = []
    for grant in grants:
        per_day = usage.get(grant.id, {})
        calls = [per_day[d].calls if d in per_day else 0 for d in day_keys]
        spend = [
            (per_day[d].allowed_cost_micros if d in per_day else 0) + ran.get(grant.id, {}).get(d, 0) for d in day_keys
        ]
        peak = max(calls) or 1
        bars = [
            (i * 10.0, round(20 * n / peak, 1), f"{d}: {n} calls")
            for i, (d, n) in enumerate(zip(day_keys, calls, strict=True))
        ]
        rows.append(GrantRow(grant, calls, spend, last.get(grant.id) or grant.last_used_at, bars))
    return rows
