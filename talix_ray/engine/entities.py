"""Entity hosting: each aggregate behaves as an actor — one writer, state in memory.

An :class:`EntityHost` keeps the active aggregates of the partitions it owns, runs commands on
them one at a time per aggregate, appends their events through the journal and passivates the
least recently used ones. It is plain asyncio: the LocalRuntime uses one directly, the
RayRuntime puts one in each shard actor.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any, NamedTuple

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from ..journal.base import Commit, Journal, Snapshot
from ..model.errors import StorageError, TalixError, ValidationError, VersionConflict
from ..model.events import Event, NewEvent, StoredEvent, timestamp_of
from ..model.store import Command, CommandResult, EventStore
from ..observability import logs
from ..observability.metrics import COMMAND_SECONDS, COMMANDS

log = logging.getLogger("talix.entities")
# a command's outcome (metrics) by the status of the talix error it raised
_OUTCOMES = {400: "rejected", 404: "rejected", 409: "conflict", 422: "invalid"}
ContextFactory = Callable[["Entity", Command[Any, Any], "str | None"], Any]


class _Staged(NamedTuple):
    """A command's commit before it is durable, and what it leads to."""

    commit: Commit
    events: tuple[Event[Any], ...]
    state: Any


class Entity:
    """One active aggregate: its state, version and the command ids it remembers.

    Commands on one entity run one at a time: :meth:`acquire`/:meth:`release` are a minimal
    FIFO mutex that allocates nothing unless there is contention (hosts keep many thousands
    of entities, so each one is kept small).
    """

    __slots__ = ("aggregate_id", "busy", "last_record", "loaded", "recent", "restored",
                 "snapshot_version", "state", "store", "users", "version", "waiters")

    def __init__(self, store: EventStore[Any], aggregate_id: str) -> None:
        self.store = store
        self.aggregate_id = aggregate_id
        self.state: Any = store.initial_state
        self.version = 0
        self.loaded = False
        self.last_record: StoredEvent | None = None
        self.recent: OrderedDict[str, CommandResult] | None = None
        # command ids known from a snapshot only: how many events each appended
        self.restored: dict[str, int] | None = None
        self.busy = False
        self.waiters: deque[asyncio.Future[None]] | None = None
        self.users = 0
        self.snapshot_version = 0

    @property
    def last_event(self) -> Event[Any] | None:
        """The last event folded into the state (decoded on demand)."""
        rec = self.last_record
        return self.store.decode(rec) if rec is not None else None

    async def acquire(self) -> None:
        """Wait for this entity's turn."""
        if not self.busy:
            self.busy = True
            return
        if self.waiters is None:
            self.waiters = deque()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the turn was handed over as we were cancelled: pass it on
            elif fut in self.waiters:  # release() may have dropped it already
                self.waiters.remove(fut)
            raise

    def release(self) -> None:
        """Hand the turn to the next waiter, or free the entity."""
        waiters = self.waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self.busy = False


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
        snapshot_every: int | None = None,
    ) -> None:
        self.journal = journal
        self._clock_us = clock_us
        self._context_factory = context_factory
        self.max_active = max_active
        self.remember_commands = remember_commands
        self.snapshot_every = snapshot_every
        self._snapshot_policy: dict[str, int | None] = {}
        self._active: OrderedDict[tuple[str, str], Entity] = OrderedDict()
        self._background: set[asyncio.Task[Any]] = set()

    @property
    def active_count(self) -> int:
        """How many aggregates are in memory."""
        return len(self._active)

    # -- commands ---------------------------------------------------------------------------
    async def execute(self, command: Command[Any, Any], aggregate_id: str, input: Any,
                      command_id: str | None = None,
                      meta: dict[str, str] | None = None) -> CommandResult:
        """Run a validated command on an aggregate; returns once its events are durable.

        ``meta`` (system metadata such as the calling principal) is added to the metadata of
        every event the command appends.
        """
        entity = self._checkout(command.store, aggregate_id)
        token = logs.enter(aggregate_id, command_id)
        started = time.perf_counter()
        outcome = "error"
        try:
            if entity.busy:
                await entity.acquire()
            else:  # the common case, without a coroutine
                entity.busy = True
            try:
                if not entity.loaded:
                    await self._load(entity)
                result = await self._decide_and_append(entity, command, input, command_id,
                                                       meta)
                outcome = "duplicate" if result.duplicate else "ok"
                return result
            finally:
                entity.release()
        except TalixError as exc:
            outcome = _OUTCOMES.get(exc.status, "error")
            raise
        finally:
            entity.users -= 1
            if len(self._active) > self.max_active:
                self._passivate_lru()
            name = command.store.name
            COMMANDS.inc(name, outcome)
            COMMAND_SECONDS.observe(name, value=time.perf_counter() - started)
            logs.leave(token)

    async def _decide_and_append(self, entity: Entity, command: Command[Any, Any], input: Any,
                                 command_id: str | None,
                                 meta: dict[str, str] | None = None) -> CommandResult:
        """Decide on the current state and append the events; on a version conflict (another
        writer moved the stream) reload and decide again, up to ``command.max_retries``."""
        store = command.store
        for attempt in range(command.max_retries + 1):
            seen = await self._already_done(entity, command_id)
            if seen is not None:
                return seen
            new_events = await self._decide(entity, command, input, command_id)
            if not new_events:
                return CommandResult(store.name, entity.aggregate_id, entity.version, (),
                                     command_id)
            staged = self._stage(entity, new_events, command_id, meta)
            try:
                seq = await self.journal.append(staged.commit)
            except VersionConflict:
                if attempt >= command.max_retries:
                    raise
                await self._load(entity)  # another writer moved the stream: decide again
                continue
            except ValidationError:
                raise  # refused before anything was stored (sizes): the entity is unchanged
            except BaseException:
                # the outcome is unknown (storage failure, cancellation): reload before reuse
                entity.loaded = False
                raise
            return self._applied(entity, staged, seq)
        raise VersionConflict(f"{store.name}/{entity.aggregate_id}: too many conflicts")

    async def _already_done(self, entity: Entity,
                            command_id: str | None) -> CommandResult | None:
        """The result of a command this aggregate remembers by id (a retry), if it does."""
        if command_id is None or entity.recent is None:
            return None
        seen = entity.recent.get(command_id)
        if seen is None:
            return None
        if entity.restored and command_id in entity.restored:
            seen = await self._restore_events(entity, seen, entity.restored.pop(command_id))
            entity.recent[command_id] = seen
        return seen._replace(command_id=command_id, duplicate=True)

    async def _decide(self, entity: Entity, command: Command[Any, Any], input: Any,
                      command_id: str | None) -> list[NewEvent[Any]]:
        """The command's events for the entity's current state (none: nothing to append)."""
        if command.wants_ctx:
            ctx = self._context_factory(entity, command, command_id) \
                if self._context_factory else None
            decided = command.decide(entity.state, input, ctx)
        else:
            decided = command.decide(entity.state, input)
        if command.is_async:
            decided = await decided
        return command.normalize_events(decided)

    def _stage(self, entity: Entity, new_events: list[NewEvent[Any]], command_id: str | None,
               meta: dict[str, str] | None) -> _Staged:
        """The commit of ``new_events`` after the entity's version, and the events and state
        it leads to (applied to the entity once the commit is durable)."""
        store = entity.store
        ts = self._clock_us()
        timestamp = timestamp_of(ts)
        state = entity.state
        version = entity.version
        records: list[StoredEvent] = []
        events: list[Event[Any]] = []
        for ne in new_events:
            version += 1
            et = ne.type
            user_meta = ne.metadata
            meta_json = user_meta if user_meta is None or isinstance(user_meta, dict) else \
                user_meta.model_dump(mode="json")
            if meta:
                meta_json = {**(meta_json or {}), **meta}
            records.append(StoredEvent(store.name, entity.aggregate_id, version, et.name,
                                       ne.payload.model_dump(mode="json"), ts, command_id,
                                       et.version, meta_json))
            ev = Event(store.name, entity.aggregate_id, version, et.name, ne.payload,
                       timestamp, command_id,
                       meta_json if et.metadata_model is None else user_meta)
            events.append(ev)
            state = store.reducer(state, ev)
        commit = Commit(store.name, entity.aggregate_id, entity.version, tuple(records),
                        command_id)
        return _Staged(commit, tuple(events), state)

    def _applied(self, entity: Entity, staged: _Staged, seq: int) -> CommandResult:
        """Move the entity to a durable commit: state, version, the command remembered by id,
        a snapshot when one is due."""
        commit = staged.commit
        store = entity.store
        version = commit.events[-1].version
        result = CommandResult(store.name, entity.aggregate_id, version, staged.events,
                               commit.command_id, False,
                               self.journal.partition_of(store.name, entity.aggregate_id), seq)
        entity.state = staged.state
        entity.version = version
        entity.last_record = commit.events[-1]
        if commit.command_id is not None:
            self._remember(entity, commit.command_id, result)
        every = self._snapshots_every(store)
        if every and version - entity.snapshot_version >= every:
            self._snapshot_later(entity)
        return result

    async def _restore_events(self, entity: Entity, seen: CommandResult,
                              count: int) -> CommandResult:
        """The events of a command known from a snapshot only, read back from the journal."""
        records = await self.journal.read_stream(entity.store.name, entity.aggregate_id,
                                                 after_version=seen.version - count)
        events = tuple(entity.store.decode(r) for r in records if r.version <= seen.version)
        return seen._replace(events=events)

    def _remember(self, entity: Entity, command_id: str, result: CommandResult) -> None:
        recent = entity.recent
        if recent is None:
            recent = entity.recent = OrderedDict()
        recent[command_id] = result
        if len(recent) > self.remember_commands:
            recent.popitem(last=False)

    # -- reading ----------------------------------------------------------------------------
    async def get(self, store: EventStore[Any], aggregate_id: str) -> Entity:
        """The active entity (loaded, but not locked): state, version, last event."""
        entity = self._checkout(store, aggregate_id)
        try:
            if not entity.loaded:
                await entity.acquire()
                try:
                    if not entity.loaded:
                        await self._load(entity)
                finally:
                    entity.release()
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

    async def _load(self, entity: Entity) -> None:
        store = entity.store
        adapter = self._state_adapter(store) if self._snapshots_every(store) else None
        snap, records = await self.journal.load_aggregate(
            store.name, entity.aggregate_id, store.reducer_hash if adapter else None)
        state = store.initial_state
        if snap is not None and adapter is not None:
            try:
                state = adapter.validate_python(snap.state)
            except PydanticValidationError as exc:
                log.warning("snapshot %s of %s/%s at version %d no longer validates as the "
                            "state (%d error(s)); replaying the stream instead",
                            snap.key or "(in memory)", store.name, entity.aggregate_id,
                            snap.version, exc.error_count())
                snap, state = None, store.initial_state
                records = await self.journal.read_stream(store.name, entity.aggregate_id)
        self._fold(entity, snap, state, records)

    def _fold(self, entity: Entity, snap: Snapshot | None, state: Any,
              records: list[StoredEvent]) -> None:
        """Set the entity from a (validated) snapshot state and the events after it."""
        if snap is None and not records:  # a new aggregate
            entity.state = state
            entity.version = entity.snapshot_version = 0
            entity.last_record = entity.recent = entity.restored = None
            entity.loaded = True
            return
        store = entity.store
        version = 0
        recent: OrderedDict[str, CommandResult] = OrderedDict()
        restored: dict[str, int] = {}
        if snap is not None:
            version = snap.version
            for cid, v, n in snap.recent_command_ids:
                recent[cid] = CommandResult(store.name, entity.aggregate_id, v, (), cid)
                if n:
                    restored[cid] = n
        entity.snapshot_version = version
        last_record = None
        if version > 0 and records and records[0].version == version:
            last_record, records = records[0], records[1:]  # the snapshot's last event
        reducer = store.reducer
        decode = store.decode
        group: list[Event[Any]] = []
        for rec in records:
            if rec.version != version + 1:
                raise StorageError(f"stream {store.name}/{entity.aggregate_id} has a gap: "
                                   f"version {rec.version} after {version}")
            ev = decode(rec)
            state = reducer(state, ev)
            version = rec.version
            if ev.command_id is not None:
                if group and group[-1].command_id != ev.command_id:
                    self._remember_group(recent, group)
                    group = []
                group.append(ev)
        if group:
            self._remember_group(recent, group)
        entity.state = state
        entity.version = version
        entity.last_record = records[-1] if records else last_record
        entity.recent = recent or None
        entity.restored = {c: n for c, n in restored.items() if c in recent} or None
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
    def _snapshots_every(self, store: EventStore[Any]) -> int | None:
        """Snapshot interval of a store: its own setting, else the host's, when serializable."""
        try:
            return self._snapshot_policy[store.name]
        except KeyError:
            every = store.snapshot_every or self.snapshot_every
            if every and self._state_adapter(store) is None:
                every = None
            self._snapshot_policy[store.name] = every
            return every

    def _state_adapter(self, store: EventStore[Any]) -> TypeAdapter[Any] | None:
        return store.state_adapter

    def _snapshot_later(self, entity: Entity) -> None:
        adapter = self._state_adapter(entity.store)
        if adapter is None:
            return
        entity.snapshot_version = entity.version
        restored = entity.restored or {}
        # a command id known from an earlier snapshot has no events in memory: keep its count
        snap = Snapshot(entity.version, adapter.dump_python(entity.state, mode="json"),
                        tuple((cid, r.version, restored.get(cid, len(r.events)))
                              for cid, r in (entity.recent or {}).items()))
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
            if entity.users or entity.busy:
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
        if entity is None or entity.users or entity.busy:
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
    return store.state_adapter
