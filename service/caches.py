"""What this process caches of the database (grant and OAuth token lookups, standing approvals, the policy in force),
and the one place that drops it when a change commits: in this process (service/db/notify.py tells it after the
commit) or on another replica (service/replicas.py). So a handler that changes a grant, a policy or a standing
approval calls its service and nothing else."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from service.approvals.standing_cache import StandingCache
from service.errors import AirlockError
from service.grants.cache import GrantCache
from service.oauth.gate import OAuthTokenCache
from service.policy_versions.holder import PolicyHolder

log = logging.getLogger(__name__)


class ProcessCaches:
    def __init__(
        self, grants: GrantCache, standing: StandingCache, policy: PolicyHolder, oauth: OAuthTokenCache | None = None
    ) -> None:
        self._grants = grants
        self._oauth = oauth
        self._standing = standing
        self.policy = policy
        self._session_watchers: list[Callable[[str], None]] = []

    def watch_sessions(self, watcher: Callable[[str], None]) -> None:
        """`watcher(username)` when a person's sessions end anywhere; it may be called from any thread."""
        self._session_watchers.append(watcher)

    def drop_stale(self, message: dict[str, Any]) -> bool:
        """Drop what a CHANGES message makes stale; True when the policy in force must be read again."""
        what = message.get("what")
        if what == "grants":  # an OAuth token acts as a grant: a revoked grant's tokens go with it
            self._grants.clear()
            self._clear_oauth()
        elif what == "oauth":
            self._clear_oauth()
        elif what == "sessions" and isinstance(username := message.get("username"), str):
            for watcher in self._session_watchers:
                watcher(username)
        elif what == "standing":
            grant = message.get("grant")
            self._standing.invalidate(grant if isinstance(grant, int) else None)
        return what == "policy"

    def drop_all(self) -> None:
        self._grants.clear()
        self._clear_oauth()
        self._standing.invalidate()

    def _clear_oauth(self) -> None:
        if self._oauth is not None:
            self._oauth.clear()

    def changed_here(self, message: dict[str, Any]) -> None:
        """A change this process committed (in the thread that committed it, off the event loop): the policy is read
        again before the handler answers, so the page it redirects to shows the version in force."""
        if self.drop_stale(message):
            try:
                self.policy.load()
            except AirlockError as exc:
                log.error("policy reload failed, the policy in force stays: %s", exc.message)
