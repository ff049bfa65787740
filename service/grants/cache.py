"""Grant lookups for every MCP request, cached for a moment so the hot path does not hit the database.

A revoked or suspended grant stops working within `ttl_seconds` on another process; replicas on PostgreSQL are told
at once (service/replicas.py) and clear the cache.
"""

from __future__ import annotations

from functools import partial

from sqlalchemy import Engine

from service.db.engine import reading
from service.errors import AirlockError, Forbidden, NotAuthenticated
from service.grants import service
from service.grants.schemas import AuthenticatedGrant
from service.lookups import TokenLookups
from service.security import TokenHasher


class GrantCache:
    def __init__(
        self, engine: Engine, hasher: TokenHasher, ttl_seconds: float = 2.0, max_entries: int = 10_000
    ) -> None:
        self._engine = engine
        self._hasher = hasher
        self._lookups: TokenLookups[AuthenticatedGrant | AirlockError] = TokenLookups(
            ttl_seconds=ttl_seconds, max_entries=max_entries
        )

    async def authenticate(self, token: str) -> AuthenticatedGrant:
        found = await self._lookups.get(self._hasher.hash(token), partial(self._load, token))
        if isinstance(found, AirlockError):
            raise type(found)(found.message)  # a fresh one: a cached exception would pile up tracebacks
        return found

    def clear(self) -> None:
        self._lookups.clear()

    def _load(self, token: str) -> AuthenticatedGrant | AirlockError:
        """The grant, or why it is refused (unknown or revoked: 401; suspended: 403, saying why)."""
        try:
            with reading(self._engine) as session:
                grant, info = service.authenticate(session, self._hasher, token)
        except (NotAuthenticated, Forbidden) as refusal:
            return refusal
        return AuthenticatedGrant.of(grant, info)
