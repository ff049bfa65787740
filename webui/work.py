"""How pages call the services: one unit of work per call, off the event loop; and the web's path to decide()."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from sqlmodel import Session

from service.approvals import queries
from service.approvals.schemas import Approver, Remember, RequestPublic, Verdict
from service.db.engine import unit_of_work
from service.state import AppState
from webui.auth import WebUser

T = TypeVar("T")

WEB_CHANNEL = "web"


async def in_session(state: AppState, work: Callable[[Session], T]) -> T:
    """Run `work` in one transaction (committed when it returns, rolled back when it raises), in a worker thread."""

    def run() -> T:
        with unit_of_work(state.runtime.engine) as session:
            return work(session)

    return await anyio.to_thread.run_sync(run)


def approver_of(web_user: WebUser) -> Approver:
    return Approver.of_user(web_user.user, WEB_CHANNEL)


async def decide_from_web(
    state: AppState,
    web_user: WebUser,
    request_id: int,
    verdict: Verdict,
    *,
    reason: str | None = None,
    patch: dict[str, Any] | None = None,
    remember: Remember | None = None,
    seen_digest: str | None = None,
) -> RequestPublic:
    """The same decision point as every other channel (approvals.service.apply_verdict); events after the commit."""
    public: RequestPublic = await state.verdicts.submit(
        request_id,
        approver_of(web_user),
        verdict,
        queries.public,
        reason=reason or None,
        patch=patch,
        remember=remember,
        seen_digest=seen_digest,
    )
    return public
