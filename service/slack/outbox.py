"""A send queue per Slack channel: about one message a second each, Retry-After honoured, retries with backoff.

`put` never waits, so the gateway is never held up by Slack. Jobs of one channel run in order: an update of a
card waits until its post went through. A job that fails for a reason that can pass (Slack or the network down, a
timeout) stays at the head of its queue and is tried again with growing pauses. A job that keeps failing must not
hold up every later card of its channel (a file upload that always times out): after `demote_after` failures it
goes behind the jobs queued since, and after `max_attempts` it is logged and dropped. Either is safe for cards:
each card job renders the request as it is when it runs, and the catch-up queues a card not yet posted, or behind
its request's status, again. A rate limit (429 with Retry-After) or our own database away is no fault of the job,
and is waited out without counting. A job that fails for good (a channel that does not exist, a bad token) is
logged and dropped at once.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskGroup

from service.errors import Unavailable
from service.slack.client import SlackError

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]

DEMOTE_AFTER = 3  # with the default pauses (1, 2, 4 s) a bad job holds its channel up for seconds, not minutes
MAX_ATTEMPTS = 8


@dataclass
class _Queued:
    key: Hashable | None
    job: Job
    attempts: int = 0  # the failures that count against this job


@dataclass
class _Lane:
    jobs: deque[_Queued] = field(default_factory=deque)
    queued: set[Hashable] = field(default_factory=set)
    wake: anyio.Event = field(default_factory=anyio.Event)


class SendQueue:
    def __init__(
        self,
        *,
        interval_seconds: float = 1.0,
        first_backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 60.0,
        demote_after: int = DEMOTE_AFTER,
        max_attempts: int = MAX_ATTEMPTS,
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        self._interval = interval_seconds
        self._first_backoff = first_backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._demote_after = demote_after
        self._max_attempts = max_attempts
        self._clock = clock
        self._lanes: dict[str, _Lane] = {}
        self._tasks: TaskGroup | None = None

    def put(self, channel: str, job: Job, key: Hashable | None = None) -> None:
        """Queue a job for `channel`. A job with the same key still waiting in that queue makes this one a no-op
        (jobs with keys read the current state when they run, so one of them is enough)."""
        lane = self._lanes.get(channel)
        if lane is None:
            lane = self._lanes[channel] = _Lane()
            if self._tasks is not None:
                self._tasks.start_soon(self._drain, channel, lane, name=f"slack-send-{channel}")
        if key is not None:
            if key in lane.queued:
                return
            lane.queued.add(key)
        lane.jobs.append(_Queued(key, job))
        lane.wake.set()

    def backlog(self) -> int:
        return sum(len(lane.jobs) for lane in self._lanes.values())

    async def run(self) -> None:
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            for channel, lane in self._lanes.items():
                tasks.start_soon(self._drain, channel, lane, name=f"slack-send-{channel}")
            await anyio.sleep_forever()

    async def _drain(self, channel: str, lane: _Lane) -> None:
        """Run the lane's jobs in order for ever, each no sooner than the pause the last one left."""
        pace = _Pace()
        while True:
            await self._next_job(lane, pace)
            head = lane.jobs[0]
            if head.key is not None:
                lane.queued.discard(head.key)  # from here on a new job with this key must run again
            try:
                await head.job()
            except (SlackError, Unavailable) as exc:
                if self._retried(channel, lane, head, exc, pace):
                    continue
            except Exception:
                log.exception("Slack send job for %s failed, dropped", channel)
                pace.failures = 0
            else:
                pace.failures = 0  # Slack answered
            lane.jobs.popleft()
            pace.not_before = self._clock() + self._interval

    async def _next_job(self, lane: _Lane, pace: _Pace) -> None:
        """Wait until the lane has a job, and its pause is over."""
        while not lane.jobs:
            lane.wake = anyio.Event()
            await lane.wake.wait()
        pause = pace.not_before - self._clock()
        if pause > 0:
            await anyio.sleep(pause)

    def _retried(self, channel: str, lane: _Lane, head: _Queued, exc: SlackError | Unavailable, pace: _Pace) -> bool:
        """Whether the failed job at the head stays queued to be tried again (True), or is dropped (False)."""
        # Unavailable: our own database is away for a moment; the job reads it, so it waits too.
        if isinstance(exc, SlackError) and not exc.transient:
            log.error("Slack send to %s failed for good, dropped: %s", channel, exc)
            pace.failures = 0  # Slack answered
            return False
        pace.failures += 1
        delay = exc.retry_after if isinstance(exc, SlackError) else None
        if delay is None and isinstance(exc, SlackError):
            head.attempts += 1  # only this counts: a rate limit, or our database away, is no fault of the job
        if head.attempts >= self._max_attempts:
            log.error("Slack send to %s failed %d times, given up: %s", channel, head.attempts, exc)
            return False
        if delay is None:
            delay = min(self._max_backoff, self._first_backoff * 2 ** (pace.failures - 1))
        log.warning("Slack send to %s failed (%s); retrying in %.1fs", channel, exc, delay)
        if head.key is not None:
            lane.queued.add(head.key)
        if head.attempts and head.attempts % self._demote_after == 0 and len(lane.jobs) > 1:
            lane.jobs.rotate(-1)  # behind the jobs queued since, which may well go through
        pace.not_before = self._clock() + delay
        return True


@dataclass
class _Pace:
    """When a lane may run its next job, and its failures in a row, whichever jobs failed: while Slack is away the
    pauses keep growing."""

    not_before: float = -math.inf
    failures: int = 0
