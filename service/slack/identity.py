"""Who is clicking: a Slack user mapped to an Airlock user, with the Slack user groups (of those a rule names) they
belong to. Whether that person may decide is not answered here: `approvals.service` answers it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import anyio
from sqlalchemy import Engine

from service.approvals.schemas import Approver
from service.db.engine import reading
from service.errors import Forbidden
from service.slack.client import SlackClient, SlackError
from service.slack.repository import SlackRepository
from service.users.models import User

log = logging.getLogger(__name__)

GROUP_CACHE_SECONDS = 300.0


DEACTIVATED = "Your Airlock account is deactivated, so you may not decide anything. Ask an admin if this is a mistake."


class SlackDirectory:
    def __init__(
        self,
        db: Engine,
        client: SlackClient,
        *,
        match_email: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._client = client
        self._match_email = match_email
        self._clock = clock
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}

    async def approver(self, slack_user_id: str, named_groups: Sequence[str]) -> Approver | None:
        """None when the Slack user is not linked to an Airlock user; Forbidden when theirs is deactivated."""
        user = await anyio.to_thread.run_sync(self._user_by_slack_id, slack_user_id)
        if user is None and self._match_email:
            user = await self._user_by_email(slack_user_id)
        if user is None:
            return None
        if user.disabled_at is not None:
            raise Forbidden(DEACTIVATED)
        groups = frozenset([g for g in named_groups if slack_user_id in await self.group_members(g)])
        return Approver.of_user(user, "slack", slack_user_id=slack_user_id, slack_groups=groups)

    async def group_members(self, group_id: str) -> frozenset[str]:
        """Cached for five minutes. When Slack will not say (a free plan has no user groups, a scope is missing),
        the group counts as empty: the rule's explicit users and roles still apply."""
        cached = self._groups.get(group_id)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        try:
            members = frozenset(await self._client.usergroup_members(group_id))
        except SlackError as exc:
            log.warning("Slack user group %s unavailable, using the explicit approver lists: %s", group_id, exc)
            return frozenset()
        self._groups[group_id] = (self._clock() + GROUP_CACHE_SECONDS, members)
        return members

    async def slack_ids_of(self, usernames: Sequence[str]) -> list[str]:
        def load() -> list[str]:
            with reading(self._db) as session:
                return SlackRepository(session).slack_ids_of(list(usernames))

        return await anyio.to_thread.run_sync(load) if usernames else []

    async def _user_by_email(self, slack_user_id: str) -> User | None:
        try:
            email = await self._client.user_email(slack_user_id)
        except SlackError as exc:
            log.warning("users.info for %s failed: %s", slack_user_id, exc)
            return None
        if email is None:
            return None

        def load() -> User | None:
            with reading(self._db) as session:
                return SlackRepository(session).user_by_email(email)

        return await anyio.to_thread.run_sync(load)

    def _user_by_slack_id(self, slack_user_id: str) -> User | None:
        with reading(self._db) as session:
            return SlackRepository(session).user_by_slack_id(slack_user_id)
