"""The actors hosting a RayRuntime's aggregates: shards (journal writers hosting the
aggregates of their partitions) and dedicated aggregate actors. Each places plain engine
objects into a Ray actor."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from typing import TYPE_CHECKING, Any, NoReturn

import ray

from ...engine.context import CommandCtx
from ...engine.entities import EntityHost
from ...engine.runtime import Aggregate
from ...journal.base import Commit, Journal, Snapshot
from ...model.events import StoredEvent
from ...model.store import CommandResult
from ...shared import Clock
from .client import RayClient, client_for
from .errors import portable
from .handles import ActorHandle
from .spec import AppSpec, actor_class

if TYPE_CHECKING:
    from .router import Router

log = logging.getLogger("talix.ray")
_BATCHED = frozenset({"execute", "get"})


class _Hosting:
    """What shard and entity actors share: the app, a client runtime, an entity host."""

    spec: AppSpec
    host: EntityHost

    def _setup(self, spec: AppSpec) -> None:
        self.spec = spec
        self.client = app_client(spec)
        self.app = self.client._require_started()
        self.registry = self.client.registry
        self._ready = asyncio.Lock()
        self._started = False
        self.timings: deque[float] = deque(maxlen=1000)  # command durations inside the actor

    def _make_host(self, journal: Journal, max_active: int) -> EntityHost:
        def context(entity: Any, command: Any, command_id: str | None) -> CommandCtx:
            return CommandCtx(self.client, self.registry, entity.aggregate_id, command_id,
                              lambda: entity.state, entity.store)

        return EntityHost(journal, clock_us=self.registry.get(Clock).now_us,
                          context_factory=context, max_active=max_active,
                          remember_commands=self.spec.remember_commands,
                          snapshot_every=self.spec.snapshot_every)

    async def execute(self, store: str, command: str, aggregate_id: str, input: Any,
                      command_id: str | None,
                      meta: dict[str, str] | None = None) -> CommandResult:
        """Run a (validated) command on one of this actor's aggregates."""
        await self._ensure()
        cmd = self.app.stores[store].commands[command]
        t = time.perf_counter()
        try:
            return await self.host.execute(cmd, aggregate_id, input, command_id, meta)
        finally:
            self.timings.append(time.perf_counter() - t)

    async def batch(self, calls: list[tuple[str, tuple[Any, ...]]]) -> list[tuple[bool, Any]]:
        """Several ``execute``/``get`` calls in one actor call (the router batches them);
        each outcome is ``(True, result)`` or ``(False, the exception)``."""
        for method, _ in calls:
            if method not in _BATCHED:
                raise ValueError(f"{method} cannot be batched")
        outs = await asyncio.gather(*(getattr(self, m)(*a) for m, a in calls),
                                    return_exceptions=True)
        return [(False, portable(o)) if isinstance(o, BaseException) else (True, o)
                for o in outs]

    async def get(self, store: str, aggregate_id: str) -> Aggregate[Any]:
        """The aggregate's current state (read-your-writes)."""
        await self._ensure()
        es = self.app.stores[store]
        entity = await self.host.get(es, aggregate_id)
        return Aggregate(store, aggregate_id, entity.state, entity.version, entity.last_event)

    async def _ensure(self) -> None:
        raise NotImplementedError


@ray.remote(num_cpus=0)
class ShardActor(_Hosting):
    """``talix:{app}:shard:{i}``: the journal writer of its partitions and the host of their
    active aggregates."""

    def __init__(self, spec: AppSpec, shard: int) -> None:
        self._setup(spec)
        self.shard = shard
        self.partitions = spec.partitions_of(shard)
        self.journal = spec.journal(self.partitions)
        self.host = self._make_host(self.journal, spec.max_active)
        self._hinting: set[tuple[str, int]] = set()
        self._consumers: dict[str, ActorHandle] = {}
        self._lookup_after: dict[str, float] = {}
        self._hint_tasks: set[asyncio.Future[None]] = set()

    async def _ensure(self) -> None:
        if self._started:
            return
        async with self._ready:
            if self._started:
                return
            await self.journal.open()
            for p in self.partitions:  # recover every writer now, not on the first command
                writer = await self.journal.writer(p)
                writer.listeners.append(self._hint)
            self._started = True

    def _hint(self, partition: int, seq: int) -> None:
        """Tell the log's consumers (the dispatcher, the view actors) a segment landed, so they
        need not poll storage; at most one hint in flight per consumer and partition."""
        for name in self.spec.consumer_names:
            self._hint_one(name, partition, seq)

    def _hint_one(self, name: str, partition: int, seq: int) -> None:
        if (name, partition) in self._hinting:
            return
        handle = self._consumers.get(name)
        if handle is None:
            if time.monotonic() < self._lookup_after.get(name, 0.0):
                return
            try:  # a GCS round trip: cached, and not retried more than once a second
                handle = self._consumers[name] = ray.get_actor(name,
                                                               namespace=self.spec.namespace)
            except ValueError:
                self._lookup_after[name] = time.monotonic() + 1.0
                return
        self._hinting.add((name, partition))
        ref = handle.hint.remote(partition, seq)

        async def done() -> None:
            try:
                await ref
            except Exception:
                self._consumers.pop(name, None)  # gone or restarting: look it up again later
            self._hinting.discard((name, partition))

        task = asyncio.ensure_future(done())
        self._hint_tasks.add(task)
        task.add_done_callback(self._hint_tasks.discard)

    async def ready(self) -> dict[str, Any]:
        """Recover and report where this shard runs."""
        await self._ensure()
        return {"shard": self.shard, "partitions": self.partitions, "pid": os.getpid(),
                "node": ray.get_runtime_context().get_node_id()}

    async def commit(self, commit: Commit) -> int:
        """Append a commit from a dedicated aggregate actor."""
        await self._ensure()
        return await self.journal.append(commit)

    async def read_stream(self, store: str, aggregate_id: str,
                          after_version: int) -> list[StoredEvent]:
        """An aggregate's events (chunks and this writer's tail)."""
        await self._ensure()
        return await self.journal.read_stream(store, aggregate_id, after_version=after_version)

    async def load_aggregate(self, store: str, aggregate_id: str, reducer_hash: str | None
                             ) -> tuple[Snapshot | None, list[StoredEvent]]:
        """Snapshot and events of an aggregate, for a dedicated actor."""
        await self._ensure()
        return await self.journal.load_aggregate(store, aggregate_id, reducer_hash)

    async def load_snapshot(self, store: str, aggregate_id: str, reducer_hash: str,
                            max_version: int | None) -> Snapshot | None:
        """The newest snapshot for a reducer."""
        await self._ensure()
        return await self.journal.load_snapshot(store, aggregate_id, reducer_hash, max_version)

    async def save_snapshot(self, store: str, aggregate_id: str, reducer_hash: str,
                            snapshot: Snapshot) -> None:
        """Keep a snapshot."""
        await self._ensure()
        await self.journal.save_snapshot(store, aggregate_id, reducer_hash, snapshot)

    async def passivated(self, store: str, aggregate_id: str) -> None:
        """A dedicated aggregate left memory: chunk its tail."""
        await self.journal.passivated(store, aggregate_id)

    async def passivate_all(self) -> int:
        """Drop every idle aggregate from memory."""
        await self._ensure()
        n = self.host.passivate_all()
        await self.host.drain()
        return n

    async def stats(self) -> dict[str, Any]:
        """Active aggregates and writer counters."""
        await self._ensure()
        writers = {p: {"head": w.head, "segments": w.segments_written,
                       "commits": w.commits_written, "epoch": w.epoch,
                       "stuck_streams": len(w.stuck)}
                   for p, w in self.journal._writers.items()}
        timings = sorted(self.timings)
        p50 = timings[len(timings) // 2] * 1000 if timings else None
        return {"active": self.host.active_count, "writers": writers, "pid": os.getpid(),
                "command_p50_ms": p50}

    async def close(self) -> None:
        """Chunk every tail and write the watermarks (before a planned stop)."""
        if self._started:
            self.host.passivate_all()
            await self.host.drain()
            await self.journal.flush()


class RemoteJournal(Journal):
    """A dedicated aggregate's view of the journal: everything goes through its shard."""

    def __init__(self, spec: AppSpec, router: Router) -> None:
        self.partitions = spec.partitions
        self.router = router

    async def append(self, commit: Commit) -> int:
        p = self.partition_of(commit.store, commit.aggregate_id)
        return int(await self.router.shard_call(p, "commit", commit))

    async def read_stream(self, store: str, aggregate_id: str, *,
                          after_version: int = 0) -> list[StoredEvent]:
        p = self.partition_of(store, aggregate_id)
        return list(await self.router.shard_call(p, "read_stream", store, aggregate_id,
                                                 after_version))

    async def load_aggregate(self, store: str, aggregate_id: str, reducer_hash: str | None
                             ) -> tuple[Snapshot | None, list[StoredEvent]]:
        p = self.partition_of(store, aggregate_id)
        snap, events = await self.router.shard_call(p, "load_aggregate", store, aggregate_id,
                                                    reducer_hash)
        return snap, list(events)

    async def load_snapshot(self, store: str, aggregate_id: str, reducer_hash: str,
                            max_version: int | None = None) -> Snapshot | None:
        p = self.partition_of(store, aggregate_id)
        snap: Snapshot | None = await self.router.shard_call(p, "load_snapshot", store,
                                                             aggregate_id, reducer_hash,
                                                             max_version)
        return snap

    async def save_snapshot(self, store: str, aggregate_id: str, reducer_hash: str,
                            snapshot: Snapshot) -> None:
        p = self.partition_of(store, aggregate_id)
        await self.router.shard_call(p, "save_snapshot", store, aggregate_id, reducer_hash,
                                     snapshot)

    async def passivated(self, store: str, aggregate_id: str) -> None:
        p = self.partition_of(store, aggregate_id)
        await self.router.shard_call(p, "passivated", store, aggregate_id)

    def _not_here(self, *_: Any, **__: Any) -> NoReturn:
        raise NotImplementedError("a dedicated aggregate only appends and loads")

    list_aggregate_ids = head = read_segments = wait_for_segment = _not_here
    load_checkpoint = save_checkpoint = put_deadletter = _not_here
    list_deadletters = delete_deadletter = _not_here


@ray.remote(num_cpus=0)
class EntityActor(_Hosting):
    """``talix:{app}:{store}:{id}``: one aggregate in its own process (dedicated placement);
    its commits go to its partition's writer. It stops itself after ``idle_timeout``."""

    def __init__(self, spec: AppSpec, store: str, aggregate_id: str) -> None:
        self._setup(spec)
        self.store = store
        self.aggregate_id = aggregate_id
        self.host = self._make_host(RemoteJournal(spec, self.client._routing()[1]), 1)
        self._last_used = time.monotonic()
        self._watchdog: asyncio.Task[None] | None = None

    async def _ensure(self) -> None:
        self._last_used = time.monotonic()
        if self._watchdog is None:
            self._watchdog = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        timeout = self.spec.idle_timeout
        while True:
            await asyncio.sleep(max(0.05, timeout / 4))
            if time.monotonic() - self._last_used > timeout and self.host.passivate_all():
                await self.host.drain()
                ray.kill(ray.get_runtime_context().current_actor, no_restart=True)
                return

    async def ready(self) -> int:
        """The actor's process id."""
        await self._ensure()
        return os.getpid()


def app_client(spec: AppSpec) -> RayClient:
    """This process's :class:`RayClient` of the application (its dedicated aggregates are
    :class:`EntityActor` s)."""
    return client_for(spec, entity_actor=actor_class(EntityActor))


__all__ = ["EntityActor", "RemoteJournal", "ShardActor", "app_client"]
