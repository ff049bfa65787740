"""The audit history: every call and decision, filtered, newest first by keyset; exports of the same filter; and
the chain's verification status."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from service.api.deps import StateDep
from service.audit import queries
from service.audit import service as audit
from service.db.engine import unit_of_work
from service.errors import InvalidInput
from service.times import parse_instant
from webui.auth import Viewer
from webui.rendering import redirect_with_flash, render_html
from webui.work import in_session

router = APIRouter()
FILTER_NAMES = ("since", "until", "tool", "grant", "outcome", "approver", "channel", "q")
OUTCOMES = (
    "allow", "deny", "rate_limited", "hold", "pending", "approved", "rejected", "expired", "cancelled",
    "succeeded", "failed", "error_result", "upstream_error", "unknown_tool",
)  # fmt: skip
CHANNELS = ("web", "slack", "api", "cli")
PAGE_SIZE = 50


def parse_filters(params: Any) -> tuple[queries.HistoryFilter, dict[str, str]]:
    raw = {name: str(params.get(name) or "").strip()[:200] for name in FILTER_NAMES}
    filters = queries.HistoryFilter(
        since=parse_instant(raw["since"], "from"),
        until=parse_instant(raw["until"], "until"),
        tool=raw["tool"] or None,
        grant=raw["grant"] or None,
        outcome=raw["outcome"] or None,
        approver=raw["approver"] or None,
        channel=raw["channel"] or None,
        text=raw["q"] or None,
    )
    return filters, {k: v for k, v in raw.items() if v}


@router.get("/history")
async def history_page(request: Request, state: StateDep, user: Viewer) -> Response:
    filters, raw = parse_filters(request.query_params)
    cursor = request.query_params.get("cursor") or None
    started = time.perf_counter()
    page = await in_session(state, lambda s: queries.history_page(s, filters, cursor=cursor, limit=PAGE_SIZE))
    query_ms = (time.perf_counter() - started) * 1000
    context = {
        "title": "History",
        "events": page.events,
        "searched": page.searched,
        "short_search_window": queries.SHORT_SEARCH_WINDOW,
        "filters": raw,
        "outcomes": OUTCOMES,
        "channels": CHANNELS,
        "next_url": f"/history?{urlencode({**raw, 'cursor': page.next_cursor})}" if page.next_cursor else None,
        "first_url": f"/history?{urlencode(raw)}" if cursor else None,
        "csv_url": f"/history/export?{urlencode({**raw, 'format': 'csv'})}",
        "jsonl_url": f"/history/export?{urlencode({**raw, 'format': 'jsonl'})}",
        "verification": getattr(request.app.state, "chain_verification", None),
        "query_ms": query_ms,
    }
    response = render_html(request, "history.html", context)
    response.headers["Server-Timing"] = f"db;dur={query_ms:.1f}"
    return response


@router.get("/history/export")
async def export(request: Request, state: StateDep, user: Viewer) -> Response:
    filters, _raw = parse_filters(request.query_params)
    fmt = request.query_params.get("format", "csv")
    if fmt not in queries.EXPORT_FORMATS:
        raise InvalidInput("export as csv or jsonl")

    def chunks() -> Iterator[str]:
        # One short transaction per batch (run in a worker thread by the response): see queries.history_after.
        after: int | None = 0
        header = fmt == "csv"
        while after is not None:
            with unit_of_work(state.runtime.engine) as session:
                batch = queries.history_after(session, filters, after_seq=after)
            yield from queries.export_chunks(batch.events, fmt, header=header)
            header, after = False, batch.resume_after

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson"
    headers = {"Content-Disposition": f'attachment; filename="airlock-audit-{stamp}.{fmt}"'}
    return StreamingResponse(chunks(), media_type=media, headers=headers)


@router.get("/history/verify")
async def verify_chain(request: Request, state: StateDep, user: Viewer) -> Response:
    """Walk the whole chain (it reads every event, so it runs when asked, not on every page view)."""
    report = await in_session(state, audit.verify)
    request.app.state.chain_verification = {"report": report, "at": datetime.now(UTC)}
    if report.ok:
        return redirect_with_flash("/history", f"The audit chain verifies: {report.checked:,} events intact.")
    return redirect_with_flash("/history", f"The audit chain does NOT verify: {report.problem}.")
