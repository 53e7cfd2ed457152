"""Light actions on Ray: a small pool of async executor actors fed batches by the dispatcher.

An action that declares no resources does not need a Ray task (a worker process, ~4 ms and a
CPU slot each): ``talix:{app}:executor:{i}`` actors (``num_cpus=0``) run many of them at once
on their event loops. The dispatcher keeps its guarantees — in order per aggregate (its
lanes), parallel across aggregates, at least once — and sends the jobs that are ready to an
executor in batches: one call for many actions, the next batch gathered while one is in
flight. Every aggregate's jobs go to the same executor.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from typing import Any

import ray

from ...model.events import StoredEvent
from .actors import app_client
from .errors import portable, unwrap
from .handles import ActorHandle
from .spec import AppSpec, actor_class

log = logging.getLogger("talix.ray")
Job = tuple[str, StoredEvent, int, bool]  # action, record, attempt, fresh


@ray.remote(num_cpus=0)
class ExecutorActor:
    """``talix:{app}:executor:{i}``: runs light actions against the application's actors."""

    def __init__(self, spec: AppSpec) -> None:
        self.client = app_client(spec)
        self.ran = 0

    async def run_batch(self, jobs: list[Job]) -> list[BaseException | None]:
        """Run every job of the batch concurrently; one outcome per job (``None``: done)."""
        return list(await asyncio.gather(*(self._one(*job) for job in jobs)))

    async def _one(self, action: str, record: StoredEvent, attempt: int,
                   fresh: bool) -> BaseException | None:
        try:
            app = self.client._require_started()
            await self.client.execute_triggered(app.action(action), record, attempt, fresh)
        except Exception as exc:
            return portable(exc)
        self.ran += 1
        return None

    async def stats(self) -> dict[str, Any]:
        """How many actions this executor ran."""
        return {"ran": self.ran}


class ExecutorPool:
    """The dispatcher's side: finds (or re-creates) the executors and batches jobs to them."""

    def __init__(self, spec: AppSpec, actor_options: dict[str, Any], *,
                 max_batch: int = 256, max_in_flight: int = 8) -> None:
        self.spec = spec
        self._options = actor_options
        self._max_batch = max_batch
        self._queues: list[list[tuple[Job, asyncio.Future[BaseException | None]]]] = [
            [] for _ in range(spec.executors)]
        self._flushers: list[asyncio.Task[None] | None] = [None] * spec.executors
        self._in_flight = [asyncio.Semaphore(max_in_flight) for _ in range(spec.executors)]
        self._handles: dict[int, ActorHandle] = {}
        self._sending: set[asyncio.Task[None]] = set()

    def handle(self, i: int) -> ActorHandle:
        """Executor ``i``, created if it is missing (as ``get_if_exists`` does)."""
        h = self._handles.get(i)
        if h is None:
            h = self._handles[i] = actor_class(ExecutorActor).options(
                name=self.spec.executor_name(i), **self._options).remote(self.spec)
        return h

    async def run(self, action: str, record: StoredEvent, attempt: int,
                  fresh: bool = False) -> None:
        """Run one job on its aggregate's executor; raises what the action raised."""
        i = zlib.crc32(f"{record.store}\x00{record.aggregate_id}".encode()) % self.spec.executors
        fut: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        self._queues[i].append(((action, record, attempt, fresh), fut))
        flusher = self._flushers[i]
        if flusher is None or flusher.done():
            self._flushers[i] = asyncio.ensure_future(self._flush(i))
        error = await fut
        if error is not None:
            raise error

    async def _flush(self, i: int) -> None:
        queue = self._queues[i]
        while queue:
            await asyncio.sleep(0)  # the jobs made ready in this turn join the batch
            await self._in_flight[i].acquire()
            batch = queue[:self._max_batch]
            del queue[:self._max_batch]
            task = asyncio.ensure_future(self._send(i, batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, i: int, batch: list[tuple[Job, asyncio.Future[Any]]]) -> None:
        try:
            outcomes = await self.handle(i).run_batch.remote([job for job, _ in batch])
        except Exception as exc:  # the executor died or restarts: these jobs failed
            self._handles.pop(i, None)
            outcomes = [unwrap(exc)] * len(batch)
        finally:
            self._in_flight[i].release()
        for (_, fut), outcome in zip(batch, outcomes, strict=True):
            if not fut.done():
                fut.set_result(outcome)

    def stop(self) -> None:
        """Drop in-flight sends (the dispatcher is stopping)."""
        for task in [*self._sending, *(f for f in self._flushers if f is not None)]:
            task.cancel()


__all__ = ["ExecutorActor", "ExecutorPool"]
