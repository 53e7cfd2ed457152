"""Entity hosting: each aggregate behaves as an actor — one writer, state in memory.

An :class:`EntityHost` keeps the active aggregates of the partitions it owns, runs commands on
them one at a time per aggregate, appends their events through the journal and passivates the
least recently used ones. It is plain asyncio: the LocalRuntime uses one directly, the
RayRuntime puts one in each shard actor.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter

from ..journal.base import Commit, Journal, Snapshot
from ..model.errors import StorageError, VersionConflict
from ..model.events import Event, StoredEvent, timestamp_of
from ..model.store import Command, CommandResult, EventStore

ContextFactory = Callable[["Entity", Command[Any, Any], "str | None"], Any]


@dataclass(slots=True, eq=False)
class Entity:
    """One active aggregate: its state, version and the command ids it remembers."""

    store: EventStore[Any]
    aggregate_id: str
    state: Any = None
    version: int = 0
    loaded: bool = False
    last_event: Event[Any] | None = None
    recent: OrderedDict[str, CommandResult] = field(default_factory=OrderedDict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    snapshot_version: int = 0


class EntityHost:
    """Hosts active aggregates and executes commands against them."""

    def __init__(
        self,
        journal: Journal,
        *,
        clock_us: Callable[[], int],
        context_factory: ContextFactory | None = None,
        max_active: int = 100_000,
        remember_commands: int = 256,
    ) -> None:
        self.journal = journal
        self._clock_us = clock_us
        self._context_factory = context_factory
        self.max_active = max_active
        self.remember_commands = remember_commands
        self._active: OrderedDict[tuple[str, str], Entity] = OrderedDict()
        self._background: set[asyncio.Task[Any]] = set()
        self._adapters: dict[str, TypeAdapter[Any] | None] = {}

    @property
    def active_count(self) -> int:
        """How many aggregates are in memory."""
        return len(self._active)

    # -- commands ---------------------------------------------------------------------------
    async def execute(self, command: Command[Any, Any], aggregate_id: str, input: Any,
                      command_id: str | None = None,
                      metadata: dict[str, Any] | None = None) -> CommandResult:
        """Run a validated command on an aggregate; returns once its events are durable."""
        entity = self._checkout(command.store, aggregate_id)
        try:
            async with entity.lock:
                if not entity.loaded:
                    await self._load(entity)
                return await self._decide_and_append(entity, command, input, command_id, metadata)
        finally:
            entity.users -= 1
            if len(self._active) > self.max_active:
                self._passivate_lru()

    async def _decide_and_append(self, entity: Entity, command: Command[Any, Any], input: Any,
                                 command_id: str | None,
                                 metadata: dict[str, Any] | None) -> CommandResult:
        store = command.store
        reducer = store.reducer
        for attempt in range(command.max_retries + 1):
            if command_id is not None:
                seen = entity.recent.get(command_id)
                if seen is not None:
                    return CommandResult(seen.store, seen.aggregate_id, seen.version, seen.events,
                                         command_id, duplicate=True)
            state = entity.state
            if command.wants_ctx:
                ctx = self._context_factory(entity, command, command_id) \
                    if self._context_factory else None
                decided = command.decide(state, input, ctx)
            else:
                decided = command.decide(state, input)
            if command.is_async:
                decided = await decided
            new_events = command.normalize_events(decided)
            if not new_events:
                return CommandResult(store.name, entity.aggregate_id, entity.version, (),
                                     command_id)
            ts = self._clock_us()
            version = entity.version
            records: list[StoredEvent] = []
            events: list[Event[Any]] = []
            timestamp = None
            for ne in new_events:
                version += 1
                et = ne.type
                meta = ne.metadata
                meta_json = meta.model_dump(mode="json") if hasattr(meta, "model_dump") else meta
                records.append(StoredEvent(store.name, entity.aggregate_id, version, et.name,
                                           ne.payload.model_dump(mode="json"), ts, command_id,
                                           et.version, meta_json))
                if timestamp is None:
                    timestamp = timestamp_of(ts)
                ev = Event(store.name, entity.aggregate_id, version, et.name, ne.payload,
                           timestamp, command_id, meta)
                events.append(ev)
                state = reducer(state, ev)
            commit = Commit(store.name, entity.aggregate_id, entity.version, tuple(records),
                            command_id)
            try:
                await self.journal.append(commit)
            except VersionConflict:
                if attempt >= command.max_retries:
                    raise
                await self._load(entity, fresh=True)
                continue
            except BaseException:
                # the outcome is unknown (storage failure, cancellation): reload before reuse
                entity.loaded = False
                raise
            result = CommandResult(store.name, entity.aggregate_id, version, tuple(events),
                                   command_id)
            entity.state = state
            entity.version = version
            entity.last_event = events[-1]
            if command_id is not None:
                self._remember(entity, command_id, result)
            if store.snapshot_every and version - entity.snapshot_version >= store.snapshot_every:
                self._snapshot_later(entity)
            return result
        raise VersionConflict(f"{store.name}/{entity.aggregate_id}: too many conflicts")

    def _remember(self, entity: Entity, command_id: str, result: CommandResult) -> None:
        recent = entity.recent
        recent[command_id] = result
        if len(recent) > self.remember_commands:
            recent.popitem(last=False)

    # -- reading ----------------------------------------------------------------------------
    async def get(self, store: EventStore[Any], aggregate_id: str) -> Entity:
        """The active entity (loaded, but not locked): state, version, last event."""
        entity = self._checkout(store, aggregate_id)
        try:
            if not entity.loaded:
                async with entity.lock:
                    if not entity.loaded:
                        await self._load(entity)
            return entity
        finally:
            entity.users -= 1

    def _checkout(self, store: EventStore[Any], aggregate_id: str) -> Entity:
        key = (store.name, aggregate_id)
        entity = self._active.get(key)
        if entity is None:
            entity = self._active[key] = Entity(store, aggregate_id)
        else:
            self._active.move_to_end(key)
        entity.users += 1
        return entity

    async def _load(self, entity: Entity, fresh: bool = False) -> None:
        store = entity.store
        state = store.initial_state
        version = 0
        recent: OrderedDict[str, CommandResult] = OrderedDict()
        adapter = self._state_adapter(store)
        if adapter is not None:
            snap = await self.journal.load_snapshot(store.name, entity.aggregate_id,
                                                    store.reducer_hash)
            if snap is not None:
                state = adapter.validate_python(snap.state)
                version = snap.version
                for cid, v, _n in snap.recent_command_ids:
                    recent[cid] = CommandResult(store.name, entity.aggregate_id, v, (), cid)
        entity.snapshot_version = version
        records = await self.journal.read_stream(store.name, entity.aggregate_id,
                                                 after_version=version)
        reducer = store.reducer
        decode = store.decode
        last: Event[Any] | None = None
        group: list[Event[Any]] = []
        for rec in records:
            if rec.version != version + 1:
                raise StorageError(f"stream {store.name}/{entity.aggregate_id} has a gap: "
                                   f"version {rec.version} after {version}")
            ev = decode(rec)
            state = reducer(state, ev)
            version = rec.version
            last = ev
            if ev.command_id is not None:
                if group and group[-1].command_id != ev.command_id:
                    self._remember_group(recent, group)
                    group = []
                group.append(ev)
        if group:
            self._remember_group(recent, group)
        entity.state = state
        entity.version = version
        entity.last_event = last
        entity.recent = recent
        entity.loaded = True

    def _remember_group(self, recent: OrderedDict[str, CommandResult],
                        group: list[Event[Any]]) -> None:
        first = group[0]
        cid = first.command_id
        assert cid is not None
        recent[cid] = CommandResult(first.store, first.aggregate_id, group[-1].version,
                                    tuple(group), cid)
        recent.move_to_end(cid)
        if len(recent) > self.remember_commands:
            recent.popitem(last=False)

    # -- snapshots --------------------------------------------------------------------------
    def _state_adapter(self, store: EventStore[Any]) -> TypeAdapter[Any] | None:
        if store.name not in self._adapters:
            self._adapters[store.name] = state_adapter(store)
        return self._adapters[store.name]

    def _snapshot_later(self, entity: Entity) -> None:
        adapter = self._state_adapter(entity.store)
        if adapter is None:
            return
        entity.snapshot_version = entity.version
        snap = Snapshot(entity.version, adapter.dump_python(entity.state, mode="json"),
                        tuple((cid, r.version, len(r.events)) for cid, r in entity.recent.items()))
        task = asyncio.create_task(self.journal.save_snapshot(
            entity.store.name, entity.aggregate_id, entity.store.reducer_hash, snap))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- passivation ------------------------------------------------------------------------
    def _passivate_lru(self) -> None:
        excess = len(self._active) - self.max_active
        for key in list(self._active)[: max(excess * 2, 1)]:
            if excess <= 0:
                break
            entity = self._active[key]
            if entity.users or entity.lock.locked():
                continue
            del self._active[key]
            excess -= 1
            self._hint_passivated(entity)

    def _hint_passivated(self, entity: Entity) -> None:
        task = asyncio.create_task(self.journal.passivated(entity.store.name, entity.aggregate_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def passivate(self, store: EventStore[Any], aggregate_id: str) -> bool:
        """Drop an idle aggregate from memory; it is reloaded on its next use."""
        entity = self._active.get((store.name, aggregate_id))
        if entity is None or entity.users or entity.lock.locked():
            return False
        del self._active[(store.name, aggregate_id)]
        self._hint_passivated(entity)
        return True

    def passivate_all(self) -> int:
        """Drop every idle aggregate from memory; returns how many."""
        n = 0
        for store_name, aggregate_id in list(self._active):
            entity = self._active[(store_name, aggregate_id)]
            n += self.passivate(entity.store, aggregate_id)
        return n

    async def drain(self) -> None:
        """Wait for background work (snapshots, passivation hints)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)


def state_adapter(store: EventStore[Any]) -> TypeAdapter[Any] | None:
    """A pydantic adapter for the store's state (from the reducer's return annotation)."""
    import typing

    try:
        hints = typing.get_type_hints(store.reducer)
    except Exception:
        return None
    ann = hints.get("return")
    if ann is None:
        return None
    try:
        return TypeAdapter(ann)
    except Exception:
        return None

