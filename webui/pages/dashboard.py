"""The dashboard: calls per outcome over the last day, pending now, time to a decision, spend per grant per day,
the most held tools."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import Session

from service.api.deps import StateDep
from service.approvals import stats
from service.audit import queries as audit_queries
from service.grants import service as grants
from webui.auth import Viewer
from webui.charts import PALETTE, horizontal_bars, stacked_columns
from webui.rendering import render_html
from webui.work import in_session

router = APIRouter()
OUTCOMES = ("allow", "hold", "deny", "rate_limited")
DAYS = 7


@router.get("/dashboard")
async def dashboard(request: Request, state: StateDep, user: Viewer) -> Response:
    now = datetime.now(UTC)
    day_start = (now - timedelta(hours=23)).replace(minute=0, second=0, microsecond=0)
    week_start = (now - timedelta(days=DAYS - 1)).replace(hour=0, minute=0, second=0, microsecond=0)

    def load(session: Session) -> dict[str, Any]:
        return {
            "hours": audit_queries.calls_by_outcome_per_hour(session, day_start),
            "queue": stats.queue_stats(session, week_start),
            "usage": audit_queries.usage_by_grant(session, week_start),
            "ran": stats.ran_cost_by_grant_day(session, week_start),
            "names": {g.id: g.name for g in grants.list_grants(session, include_revoked=True)},
        }

    data = await in_session(state, load)
    hour_keys = [(day_start + timedelta(hours=i)).strftime("%Y-%m-%d %H:00") for i in range(24)]
    outcome_series = {o: [float(data["hours"].get(h, {}).get(o, 0)) for h in hour_keys] for o in OUTCOMES}
    calls_chart = stacked_columns(
        hour_keys, outcome_series, colours=PALETTE, width=1160, label_every=2, category_label=lambda h: h[11:16]
    )
    day_keys = [(week_start + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(DAYS)]
    spend_series: dict[str, list[float]] = {}
    for grant_id in sorted(set(data["usage"]) | set(data["ran"])):
        per_day = data["usage"].get(grant_id, {})
        ran = data["ran"].get(grant_id, {})
        values = [
            ((per_day[d].allowed_cost_micros if d in per_day else 0) + ran.get(d, 0)) / 1_000_000 for d in day_keys
        ]
        if any(values):
            spend_series[data["names"].get(grant_id, f"grant {grant_id}")] = values
    spend_chart = stacked_columns(
        day_keys, spend_series, width=600, category_label=lambda d: d[5:], value_label=lambda v: f"${v:,.2f}"
    )
    held_chart = horizontal_bars([(tool, float(n)) for tool, n in data["queue"].held_tools])
    context = {
        "title": "Dashboard",
        "queue": data["queue"],
        "calls_24h": int(sum(sum(v) for v in outcome_series.values())),
        "held_24h": int(sum(outcome_series["hold"])),
        "calls_chart": calls_chart,
        "spend_chart": spend_chart,
        "held_chart": held_chart,
    }
    return render_html(request, "dashboard.html", context)
