"""What the core knows about a place where people decide outside Airlock's own pages (Slack, and later others).

A channel hears every approval event and does its own slow work (posting, updating, retrying) in the background;
the process builds it at start-up and never imports what is behind it. A channel takes decisions only through
`approvals.service.apply_verdict`.
"""

from __future__ import annotations

from typing import Protocol

from service.approvals.schemas import ApprovalEvent


class ApprovalChannel(Protocol):
    name: str

    def notify(self, event: ApprovalEvent) -> None:
        """Called on the event loop for every published event. Must not block: queue the work."""

    async def run(self) -> None:
        """The channel's background work, until cancelled."""
