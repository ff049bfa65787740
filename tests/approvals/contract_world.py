"""The running parts the approval-contract property test drives, rebuilt from the database on every restart, and the
test's own ledger of what should be true.

Agents call through the policy engine and `approvals.open_request`, as the gateway does; approvers decide through
`approvals.service.decide` (the function REST, the web UI, Slack and the CLI all call) with the view
`arguments_view` gives them; approved calls run through the gateway's own `HoldCoordinator.run_approved` (claim,
re-check, upstream, finish) against an upstream that records what it was asked to run. The clock is the test's.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import anyio
import mcp_types as types
from sqlalchemy import Engine
from sqlmodel import col, select

from service.approvals import service as approvals
from service.approvals import standing as standing_service
from service.approvals.events import EventBus
from service.approvals.models import RequestStatus
from service.approvals.schemas import Remember
from service.arguments import arguments_digest
from service.audit.models import AuditEvent
from service.config import HoldConfig
from service.counters import RedisCounters
from service.db.engine import make_engine, reading, unit_of_work
from service.gateway.holds import Caller, HoldCoordinator
from service.gateway.pool import UpstreamPool
from service.grants import service as grants
from service.grants.schemas import AuthenticatedGrant
from service.policy import EstimatorRegistry, Outcome, PolicyEngine, ToolCall, counter_key, grant_owner
from service.policy.compiler import load_policy
from service.policy_versions.holder import PolicyHolder
from service.security import TokenHasher
from service.users.models import Role
from service.users.service import create_user
from tests.approvals.contract_inputs import BUDGET_COUNTER, POLICY, QUORUM, SECRETS, TIMEOUT_SECONDS
from tests.conftest import REDIS_URL
from tests.policy.helpers import T0, Clock

UPSTREAM = "up"
DAY = 86_400


class RecordingUpstream:
    """The upstream server as the gateway's pool sees it: every call it was asked to run, with its exact arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def get(self, upstream: str) -> RecordingUpstream:
        assert upstream == UPSTREAM
        return self

    async def call_tool(self, name: str, arguments: Mapping[str, Any], progress: object = None) -> types.CallToolResult:
        self.calls.append((name, dict(arguments)))
        return types.CallToolResult(content=[types.TextContent(type="text", text=f"ran {name}")])


class _FixedPolicy:
    """The policy holder, reduced to the one engine the test built (with its clock)."""

    version_id = None

    def __init__(self, engine: PolicyEngine) -> None:
        self._engine = engine

    def current(self) -> PolicyEngine:
        return self._engine


class _StandingAtTestClock:
    """The policy's standing-approval lookup, as the gateway's cache does it, at the test's clock."""

    def __init__(self, db: Engine, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def find(self, call: ToolCall) -> str | None:
        with reading(self._db) as session:
            active = standing_service.list_standing(session, now=at(self._clock.now), grant_id=int(call.grant.id))
        found = standing_service.matching_standing(active, call.tool, arguments_digest(call.arguments))
        return f"SA-{found.id}" if found is not None else None


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@dataclass
class AgentGrant:
    id: int
    name: str
    owner: str
    auth: AuthenticatedGrant
    """Kept from creation: the runner still presents it after a revocation, as a replica with a stale cache might."""
    revoked: bool = False


@dataclass
class Held:
    """The ledger's record of one request."""

    id: int
    grant: AgentGrant
    tool: str
    review: dict[str, Any]
    """What an approval releases now: the agent's arguments, or the latest accepted edit."""
    deadline: float
    status: RequestStatus = RequestStatus.PENDING
    votes: dict[str, str] = field(default_factory=dict)
    """Approver -> the digest their vote carried (one vote per person; an edit moves the editor's)."""
    remember: dict[str, Remember | None] = field(default_factory=dict)
    seen: dict[str, dict[str, str]] = field(default_factory=dict)
    """Approver -> digest -> the arguments they knew under that digest (canonical JSON)."""
    actions: list[str] = field(default_factory=lambda: ["request.created"])
    """The audit actions this request must have, in order."""
    runs: int = 0

    @property
    def digest(self) -> str:
        return arguments_digest(self.review)

    @property
    def quorum(self) -> int:
        return QUORUM[self.tool]

    def counted(self) -> list[str]:
        return [who for who, digest in self.votes.items() if digest == self.digest]


@dataclass
class Standing:
    grant_id: int
    tool: str
    digest: str | None
    expires: float


class World:
    """Everything a process holds, built from the database URL; `restart` drops it all and builds it again."""

    def __init__(self, url: str, redis_prefix: str, hasher: TokenHasher) -> None:
        self.url = url
        self.prefix = redis_prefix
        self.hasher = hasher
        self.clock = Clock(T0)
        self.upstream = RecordingUpstream()  # outside Airlock: it survives Airlock's restarts
        self.start()

    def start(self) -> None:
        self.db = make_engine(self.url)
        self.counters = RedisCounters.from_url(REDIS_URL, timeout_seconds=2.0, prefix=self.prefix)
        self.policy = PolicyEngine(
            load_policy(POLICY, EstimatorRegistry.default()),
            self.counters,
            clock=self.clock,
            standing_approvals=_StandingAtTestClock(self.db, self.clock),
        )
        holder = cast(PolicyHolder, _FixedPolicy(self.policy))
        self.holds = HoldCoordinator(self.db, EventBus(), cast(UpstreamPool, self.upstream), holder, HoldConfig())

    def restart(self) -> None:
        self.db.dispose()
        self.counters.close()
        self.start()

    def close(self) -> None:
        self.db.dispose()
        self.counters.close()

    @property
    def now(self) -> datetime:
        return at(self.clock.now)

    # -- agents ----------------------------------------------------------------------------------------------------

    def new_grant(self) -> AgentGrant:
        suffix = secrets.token_hex(4)
        owner, name = f"owner-{suffix}", f"agent-{suffix}"
        with unit_of_work(self.db) as session:
            create_user(session, self.hasher, username=owner, role=Role.APPROVER, actor="test")
            grants.create_grant(session, self.hasher, name=name, actor="test", owner=owner)
        with reading(self.db) as session:
            grant_id = int(grants.grant_info(session, name).id)
            auth = grants.authenticated_by_id(session, grant_id)
        assert auth is not None
        return AgentGrant(grant_id, name, owner, auth)

    def call(self, grant: AgentGrant, tool: str, arguments: dict[str, Any]) -> tuple[Outcome, int | None]:
        """An agent's call, as the gateway admits it: (the policy's outcome, the request it opened when held). A call
        the policy allows (a standing approval) runs at once."""
        with reading(self.db) as session:
            if grants.authenticated_by_id(session, grant.id) is None:
                raise PermissionError("a revoked grant does not authenticate")
        decision = self.policy.evaluate(ToolCall(grant.auth.info, tool, arguments, upstream=UPSTREAM))
        if decision.outcome is Outcome.ALLOW:
            anyio.run(self.upstream.call_tool, tool, arguments)
            return decision.outcome, None
        if decision.outcome is not Outcome.HOLD:
            return decision.outcome, None
        with unit_of_work(self.db) as session:
            assert grants.hold_live(session, grant.id)
            request, _ = approvals.open_request(
                session,
                grant_id=grant.id,
                grant_name=grant.name,
                grant_owner=grant.owner,
                upstream=UPSTREAM,
                tool=tool,
                upstream_tool=tool,
                arguments=arguments,
                decision=decision,
                policy_version_id=None,
                hold_mode="task",
                secrets=SECRETS[tool],
                now=self.now,
            )
        assert request.id is not None
        return decision.outcome, request.id

    def held(self, request_id: int, grant: AgentGrant, tool: str, arguments: dict[str, Any]) -> Held:
        return Held(request_id, grant, tool, dict(arguments), self.clock.now + TIMEOUT_SECONDS[tool])

    # -- running what was approved --------------------------------------------------------------------------------

    def run(self, held: Held) -> tuple[bool, list[tuple[str, dict[str, Any]]]]:
        """The gateway releases the request (claim, re-check, upstream, finish): whether it returned a result, and
        what the upstream was asked to run meanwhile."""
        with reading(self.db) as session:
            request = approvals.get(session, held.id)
        before = len(self.upstream.calls)
        caller = Caller(grant=held.grant.auth, session_id=None, client_name=None, progress=None)
        result = anyio.run(self._run_approved, caller, request)
        return result is not None, self.upstream.calls[before:]

    async def _run_approved(self, caller: Caller, request: Any) -> types.CallToolResult | None:
        return await self.holds.run_approved(caller, request, delivered=True)

    # -- reading what is recorded ----------------------------------------------------------------------------------

    def statuses(self, request_ids: Sequence[int]) -> dict[int, RequestStatus]:
        with reading(self.db) as session:
            return {r: approvals.get(session, r).status for r in request_ids}

    def audit_actions(self, request_ids: Sequence[int]) -> dict[int, list[tuple[str, dict[str, Any]]]]:
        out: dict[int, list[tuple[str, dict[str, Any]]]] = {r: [] for r in request_ids}
        with reading(self.db) as session:
            rows = session.exec(
                select(AuditEvent)
                .where(col(AuditEvent.request_id).in_(list(request_ids)))
                .order_by(col(AuditEvent.seq))
            ).all()
        for row in rows:
            assert row.request_id is not None
            out[row.request_id].append((row.action, dict(row.details or {})))
        return out

    def budget(self, grant: AgentGrant, tool: str) -> int:
        key = counter_key(BUDGET_COUNTER[tool], grant_owner(str(grant.id)), DAY, self.clock.now)
        return self.counters.peek([key], self.clock.now)[0]
