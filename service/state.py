"""The running application's state: what the lifespan (service/app.py) builds and every handler is handed.

It imports no app code, so the request dependencies (service/api/deps.py) name this type and mypy checks every
handler that uses it. The types are imported for the checker only: FastAPI needs the class, not its fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.approvals.events import EventBus
    from service.approvals.verdicts import Verdicts
    from service.audit.writer import AuditWriter
    from service.caches import ProcessCaches
    from service.gateway.endpoints import McpEntry
    from service.gateway.pool import UpstreamPool
    from service.gateway.service import Gateway
    from service.grants.cache import GrantCache
    from service.metrics import Metrics
    from service.runtime import Runtime
    from service.slack.service import SlackChannel


@dataclass
class AppState:
    runtime: Runtime
    pool: UpstreamPool
    gateway: Gateway
    grants: GrantCache
    metrics: Metrics
    writer: AuditWriter
    mcp: McpEntry
    bus: EventBus
    verdicts: Verdicts
    slack: SlackChannel | None = None
    caches: ProcessCaches | None = None
