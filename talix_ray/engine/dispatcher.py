"""The action dispatcher: consumes the log and runs triggered actions.

At least once: a partition's checkpoint only moves past a segment once every job of it
finished (succeeded, or dead-lettered after its last attempt). In order within one aggregate
(one lane per stream), in parallel across aggregates (bounded). Where a job runs is the
``execute`` callback's business: in-process for the LocalRuntime, a Ray task for the RayRuntime.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..journal.base import Journal
from ..model.action import Action
from ..model.errors import Conflict, UnknownEventType, ValidationError
from ..model.events import StoredEvent
from ..observability import logs
from ..observability.metrics import ACTION_RETRIES, ACTION_RUNS, DEADLETTERS, LagTracker
from ..secrets import redact
from .steps import NonDeterministicAction

log = logging.getLogger("talix.dispatcher")

# (action, record, attempt, fresh): ``fresh`` when no earlier run of this job can have
# started (first attempt, on a segment written after this dispatcher started)
Execute = Callable[[Action, StoredEvent, int, bool], Awaitable[None]]
Route = Callable[[StoredEvent], list[Action]]


@dataclass(slots=True)
class _Job:
    action: Action
    record: StoredEvent
    partition: int
    seq: int


@dataclass(slots=True)
class _PartitionState:
    checkpoint: int = 0
    token: str | None = None
    read_pos: int = 0
    outstanding: dict[int, int] = field(default_factory=dict)
    saved: int = 0


def deadletter_key(action: str, record: StoredEvent) -> str:
    """The key of a dead letter: one per (action, event)."""
    return f"{action}@{record.store}@{record.aggregate_id}@{record.version}"


class Dispatcher:
    """Reads every partition from its checkpoint and runs the actions its events trigger."""

    def __init__(
        self,
        journal: Journal,
        route: Route,
        execute: Execute,
        *,
        consumer: str = "dispatcher",
        max_concurrency: int = 32,
        max_pending: int = 1000,
        poll_interval: float = 1.0,
        batch: int = 64,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.journal = journal
        self.route = route
        self.execute = execute
        self.consumer = consumer
        self.poll_interval = poll_interval
        self.batch = batch
        self.max_pending = max_pending
        self._sleep = sleep
        self._slots = asyncio.Semaphore(max_concurrency)
        self._action_slots: dict[str, asyncio.Semaphore] = {}
        self._lanes: dict[tuple[str, str], deque[_Job]] = {}
        self._workers: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._parts = [_PartitionState() for _ in range(journal.partitions)]
        self._fresh_from = [0] * journal.partitions
        self._pending = 0
        self._room = asyncio.Event()
        self._room.set()
        self._progress = asyncio.Event()
        self.processed = 0
        self.deadlettered = 0
        self.lag_interval = 2.0  # seconds between updates of the lag gauges
        self._lag = LagTracker(consumer)

    # -- life cycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Load checkpoints and start one reader per partition."""
        for p, st in enumerate(self._parts):
            # jobs of segments that exist now may have been started by an earlier dispatcher
            self._fresh_from[p] = await self.journal.head(p) + 1
            st.checkpoint, st.token = await self.journal.load_checkpoint(self.consumer, p)
            st.read_pos = st.saved = st.checkpoint
            self._tasks.append(asyncio.create_task(self._read_loop(p), name=f"dispatch-{p}"))
        self._tasks.append(asyncio.create_task(self._observe_lag(), name="dispatch-lag"))

    async def stop(self) -> None:
        """Stop reading, cancel running jobs, save checkpoints of what finished."""
        for t in [*self._tasks, *self._workers]:
            t.cancel()
        await asyncio.gather(*self._tasks, *self._workers, return_exceptions=True)
        self._tasks.clear()
        for p in range(len(self._parts)):
            with contextlib.suppress(Exception):
                await self._save_checkpoint(p)

    # -- reading ----------------------------------------------------------------------------
    async def _read_loop(self, p: int) -> None:
        st = self._parts[p]
        while True:
            try:
                segments = await self.journal.read_segments(p, st.read_pos, self.batch)
                if not segments:
                    await self._save_checkpoint(p)
                    await self.journal.wait_for_segment(p, st.read_pos, self.poll_interval)
                    continue
                for seg in segments:
                    jobs = [_Job(action, rec, p, seg.seq)
                            for commit in seg.commits for rec in commit.events
                            for action in self.route(rec)]
                    st.read_pos = seg.seq
                    if not jobs:
                        if not st.outstanding:
                            st.checkpoint = seg.seq
                        else:
                            st.outstanding[seg.seq] = 0
                        continue
                    st.outstanding[seg.seq] = len(jobs)
                    for job in jobs:
                        await self._room.wait()
                        self._submit(job)
                await self._save_checkpoint(p)
            except asyncio.CancelledError:
                raise
            except Conflict:
                log.error("dispatcher %s partition %d: checkpoint taken by another copy; "
                          "stopping this reader", self.consumer, p)
                return
            except Exception:
                log.exception("dispatcher %s partition %d: read failed; retrying",
                              self.consumer, p)
                await self._sleep(self.poll_interval)

    async def _save_checkpoint(self, p: int) -> None:
        st = self._parts[p]
        if st.checkpoint > st.saved:
            seq = st.checkpoint
            st.token = await self.journal.save_checkpoint(self.consumer, p, seq, st.token)
            st.saved = seq

    # -- lanes ------------------------------------------------------------------------------
    def _submit(self, job: _Job) -> None:
        key = (job.record.store, job.record.aggregate_id)
        self._pending += 1
        if self._pending >= self.max_pending:
            self._room.clear()
        lane = self._lanes.get(key)
        if lane is not None:
            lane.append(job)
            return
        self._lanes[key] = deque([job])
        worker = asyncio.create_task(self._work(key))
        self._workers.add(worker)
        worker.add_done_callback(self._workers.discard)

    async def _work(self, key: tuple[str, str]) -> None:
        lane = self._lanes[key]
        try:
            while lane:
                job = lane[0]
                async with self._slots, self._limit(job.action):
                    await self._run_job(job)
                lane.popleft()
                self._finished(job)
        finally:
            if not lane:
                self._lanes.pop(key, None)

    def _limit(self, action: Action) -> contextlib.AbstractAsyncContextManager[Any]:
        """The action's own concurrency limit (``@action(concurrency=n)``), if any."""
        if action.concurrency is None:
            return contextlib.nullcontext()
        sem = self._action_slots.get(action.name)
        if sem is None:
            sem = self._action_slots[action.name] = asyncio.Semaphore(action.concurrency)
        return sem

    async def _run_job(self, job: _Job) -> None:
        with logs.context(job.record.aggregate_id, event_id=job.record.id):
            await self._attempts(job)

    async def _attempts(self, job: _Job) -> None:
        retry = job.action.retry
        for attempt in range(1, retry.max_attempts + 1):
            try:
                fresh = attempt == 1 and job.seq >= self._fresh_from[job.partition]
                await self.execute(job.action, job.record, attempt, fresh)
                self.processed += 1
                ACTION_RUNS.inc(job.action.name, "ok")
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # no retry makes an undecodable event or an invalid message valid
                permanent = isinstance(exc, UnknownEventType | ValidationError |
                                       NonDeterministicAction)
                if attempt >= retry.max_attempts or permanent:
                    ACTION_RUNS.inc(job.action.name, "deadlettered")
                    await self._deadletter(job, exc, attempt)
                    return
                ACTION_RUNS.inc(job.action.name, "failed")
                ACTION_RETRIES.inc(job.action.name)
                log.warning("action %s on %s failed (attempt %d/%d): %s", job.action.name,
                            job.record.id, attempt, retry.max_attempts, redact(str(exc)))
                await self._sleep(retry.delay(attempt))

    async def _deadletter(self, job: _Job, exc: BaseException, attempts: int) -> None:
        record: dict[str, Any] = {
            "key": deadletter_key(job.action.name, job.record),
            "action": job.action.name,
            "event": job.record.to_json(),
            "error": redact(f"{type(exc).__name__}: {exc}"),
            "traceback": redact("".join(traceback.format_exception(exc)))[-4000:],
            "attempts": attempts,
            "failed_at": time.time(),
        }
        log.error("action %s on %s dead-lettered after %d attempt(s): %s", job.action.name,
                  job.record.id, attempts, record["error"])
        while True:
            try:
                await self.journal.put_deadletter(self.consumer, record["key"], record)
                break
            except Exception:
                log.exception("cannot write dead letter %s; retrying", record["key"])
                await self._sleep(self.poll_interval)
        self.deadlettered += 1
        DEADLETTERS.inc(job.action.name)

    def _finished(self, job: _Job) -> None:
        self._pending -= 1
        if self._pending < self.max_pending:
            self._room.set()
        st = self._parts[job.partition]
        st.outstanding[job.seq] -= 1
        while st.outstanding:
            first = next(iter(st.outstanding))
            if st.outstanding[first] > 0:
                break
            del st.outstanding[first]
            st.checkpoint = first
        if not st.outstanding:
            st.checkpoint = st.read_pos
        self._notify()

    def _notify(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    # -- observing --------------------------------------------------------------------------
    def known_lag(self) -> int:
        """Segments behind the heads this process knows of (no request to storage)."""
        return sum(max(0, max(self.journal.known_head(p), st.read_pos) - st.checkpoint)
                   for p, st in enumerate(self._parts))

    async def _observe_lag(self) -> None:
        """Keep the lag gauges (``talix_consumer_lag_*``) current."""
        while True:
            try:
                self._lag.update(self.known_lag())
            except Exception:  # a gauge must never stop the dispatcher
                log.debug("lag gauge not updated", exc_info=True)
            await asyncio.sleep(self.lag_interval)

    async def lag(self) -> int:
        """Segments written but not yet fully processed, over all partitions."""
        total = 0
        for p, st in enumerate(self._parts):
            total += max(0, await self.journal.head(p) - st.checkpoint)
        return total

    async def settle(self, timeout: float = 30.0) -> None:
        """Wait until every segment written so far has been processed."""
        deadline = time.monotonic() + timeout
        while True:
            if await self.lag() == 0 and self._pending == 0:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"dispatcher did not settle within {timeout}s "
                                   f"(lag {await self.lag()}, pending {self._pending})")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, 0.05)):
                    await self._progress.wait()
