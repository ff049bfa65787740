"""The policy in force in this process, kept current: the newest stored version, re-read when it changes,
and the config's policy file imported whenever its content changes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import anyio
from sqlalchemy import Engine

from service.clock import SYSTEM_CLOCK, Clock
from service.db.engine import reading, unit_of_work
from service.errors import AirlockError
from service.policy import (
    ArgumentCheck,
    CompiledPolicy,
    CounterStore,
    EstimatorRegistry,
    PendingCap,
    PolicyEngine,
    StandingApprovals,
)
from service.policy_versions import service

log = logging.getLogger(__name__)


class PolicyHolder:
    def __init__(
        self,
        engine: Engine,
        registry: EstimatorRegistry,
        counters: CounterStore,
        policy_file: Path | None,
        *,
        counters_fail_open: bool = False,
        standing_approvals: StandingApprovals | None = None,
        pending_cap: PendingCap | None = None,
        argument_check: ArgumentCheck | None = None,
        on_change: Callable[[CompiledPolicy], None] = lambda _p: None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._clock = clock  # names the policy's windows (a test moves it instead of waiting for a new minute)
        self._standing = standing_approvals
        self._pending_cap = pending_cap
        self._argument_check = argument_check
        self._db = engine
        self._registry = registry
        self._counters = counters
        self._file = policy_file
        self._fail_open = counters_fail_open
        self._on_change = on_change
        self._file_stamp: tuple[float, int] | None = None
        self.version_id: int | None = None
        self.engine: PolicyEngine | None = None

    def load(self) -> None:
        """Import the file if it changed, then load the newest version. Raises when there is no valid policy at
        all; a refused new file is logged and the version in force stays."""
        self._import_file()
        with reading(self._db) as session:
            if self.engine is not None and self.version_id is not None:
                stored = service.current(session)
                if stored is not None and stored.id == self.version_id:
                    return  # nothing new: no need to compile it again (this runs every 2 s)
            compiled, version = service.compiled_current(session, self._registry, self._file)
        new_id = version.id if version is not None else None
        if self.engine is None or new_id != self.version_id:
            self.engine = PolicyEngine(
                compiled,
                self._counters,
                counters_fail_open=self._fail_open,
                standing_approvals=self._standing,
                pending_cap=self._pending_cap,
                argument_check=self._argument_check,
                clock=self._clock.time,
            )
            self.version_id = new_id
            log.info("policy version %s in force", new_id)
            self._on_change(compiled)

    def _import_file(self) -> None:
        if self._file is None:
            return
        try:
            stat = self._file.stat()
        except OSError as exc:
            log.error("cannot read policy file %s: %s", self._file, exc.strerror)
            return
        stamp = (stat.st_mtime, stat.st_size)
        if stamp == self._file_stamp:
            return
        self._file_stamp = stamp
        try:
            with unit_of_work(self._db) as session:
                imported = service.import_file_if_changed(session, self._file, self._registry)
            if imported is not None:
                log.info("imported %s as policy version %s", self._file, imported.id)
        except AirlockError as exc:
            log.error("policy file %s refused, the policy in force stays: %s", self._file, exc.message)

    async def watch(self, interval_seconds: float = 2.0) -> None:
        """Pick up new versions (from the CLI, the web UI, another replica) and file edits."""
        while True:
            await anyio.sleep(interval_seconds)
            try:
                await anyio.to_thread.run_sync(self.load)
            except AirlockError as exc:
                log.error("policy reload failed, the policy in force stays: %s", exc.message)

    def current(self) -> PolicyEngine:
        if self.engine is None:
            raise RuntimeError("the policy was not loaded")
        return self.engine
