"""What a process needs to serve: settings, the database engine, the token hasher, estimators, counters.

Built once, by `airlock serve` at start-up or by a CLI command; nothing heavy happens at import.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from service.clock import SYSTEM_CLOCK, Clock
from service.config import Settings
from service.counters import MemoryCounters, RedisCounters
from service.db import migrate
from service.db.checkpoint import SAFETY_NET_PAGES, WalCheckpointer
from service.db.engine import make_engine
from service.db.files import private_folder
from service.oauth.departures import listen_for_departures
from service.policy import CounterStore, EstimatorRegistry
from service.security import TokenHasher, load_pepper
from service.users.throttle import LoginThrottle

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    hasher: TokenHasher
    registry: EstimatorRegistry
    clock: Clock = SYSTEM_CLOCK
    """The one clock of the process, for whatever time decides (service/clock.py); a test passes one it moves."""
    _counters: CounterStore | None = field(default=None, repr=False)
    _login_throttle: LoginThrottle | None = field(default=None, repr=False)
    _checkpointer: WalCheckpointer | None = field(default=None, repr=False)

    @classmethod
    def build(
        cls, settings: Settings, *, migrate_sqlite: bool = True, serving: bool = False, clock: Clock = SYSTEM_CLOCK
    ) -> Runtime:
        """`serving`: the long-running process; on SQLite it checkpoints the WAL from a thread of its own."""
        url = settings.effective_database_url
        if settings.is_sqlite:
            private_folder(Path(settings.data_dir))
            if migrate_sqlite:
                migrate.upgrade(url)
        background = serving and settings.is_sqlite
        listen_for_departures()  # whoever deactivates a person (web UI, CLI) ends their OAuth tokens too
        runtime = cls(
            settings=settings,
            engine=make_engine(url, wal_autocheckpoint_pages=SAFETY_NET_PAGES if background else None),
            hasher=TokenHasher(load_pepper(settings)),
            registry=EstimatorRegistry.default(settings.prices),
            clock=clock,
        )
        if background and runtime.engine.url.database not in (None, "", ":memory:"):
            runtime._checkpointer = WalCheckpointer(str(runtime.engine.url.database))
            runtime._checkpointer.start()
        return runtime

    @property
    def counters(self) -> CounterStore:
        """Redis when configured (shared by replicas), else this process's memory."""
        if self._counters is None:
            if self.settings.redis_url:
                self._counters = RedisCounters.from_url(
                    self.settings.redis_url, prefix=self.settings.counters.redis_prefix
                )
            else:
                self._counters = MemoryCounters()
        return self._counters

    @property
    def login_throttle(self) -> LoginThrottle:
        """Failed sign-ins: in Redis when configured (replicas share the counts), else in this process's memory."""
        if self._login_throttle is None:
            self._login_throttle = LoginThrottle.build(
                self.settings.sign_in,
                redis_url=self.settings.redis_url,
                redis_prefix=self.settings.counters.redis_prefix + "signin",
                clock=self.clock,
            )
        return self._login_throttle

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        if self._counters is not None:
            self._counters.close()
        if self._login_throttle is not None:
            self._login_throttle.close()
        self.engine.dispose()
