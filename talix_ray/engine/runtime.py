"""The runtime: what hosts services. Building (register/use/add/create) and the public API.

:class:`Runtime` holds everything both runtimes share; :class:`~talix_ray.engine.local.
LocalRuntime` runs it all in one asyncio process and the RayRuntime places the same engine
objects into Ray actors and tasks. User code never sees the difference.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar, overload

from pydantic import BaseModel, TypeAdapter

from ..journal.base import Journal
from ..model.action import Action, Query
from ..model.errors import (
    ConfigurationError,
    Conflict,
    NotFound,
    TalixError,
    Unavailable,
    ValidationError,
)
from ..model.events import Event, NewEvent, StoredEvent
from ..model.names import check_aggregate_id, check_name
from ..model.principal import Principal
from ..model.service import Service
from ..model.store import Command, CommandResult, EventStore
from ..observability import logs
from ..shared import (
    Clock,
    Downloader,
    FileStorage,
    IdGenerator,
    MemoryFileStorage,
    ObjectStoreFileStorage,
)
from ..shared.clock import SystemClock
from ..shared.ids import UlidGenerator
from .app import App
from .calls import (
    AbandonCall,
    BeginCall,
    CallOutcome,
    FinishCall,
    abandon_call,
    begin_call,
    calls,
    check_idempotency_key,
    error_record,
    fingerprint,
    finish_call,
    record_id,
    recordable,
    recorded_error,
)
from .context import ActionContext, ReadOnlyContext, Registry
from .invocation import Invocation, Middleware, call_through
from .steps import invocation_id
from .system import Enqueue, Fire, enqueue, fire, queue_stream_id, queues

if TYPE_CHECKING:  # the views are an optional extra (pyarrow, deltalake): not imported here
    from ..views.catalog import ViewCatalog

log = logging.getLogger("talix.runtime")

T = TypeVar("T")
S = TypeVar("S")
In = TypeVar("In", bound=BaseModel)
MAX_COMMAND_ID = 512


@dataclass(frozen=True, slots=True)
class Aggregate(Generic[S]):
    """An aggregate read: its state at ``version`` and the last event folded into it."""

    store: str
    aggregate_id: str
    state: S | None
    version: int
    last_event: Event[Any] | None

    @property
    def exists(self) -> bool:
        """Whether the aggregate has at least one event."""
        return self.version > 0


@dataclass(frozen=True, slots=True)
class Page:
    """A page of aggregate ids; pass ``next_page_token`` to get the next one."""

    ids: list[str]
    next_page_token: str | None


def check_command_id(command_id: object) -> str | None:
    """A command id is ``None`` or a non-empty string of bounded length."""
    if command_id is None:
        return None
    if not isinstance(command_id, str) or not command_id or len(command_id) > MAX_COMMAND_ID:
        raise ValidationError(f"invalid command id {command_id!r}: a string of 1-"
                              f"{MAX_COMMAND_ID} characters")
    return command_id


class Runtime(ABC):
    """Hosts services: shared services, middleware, the public command/read/action API."""

    def __init__(self) -> None:
        self.registry = Registry()
        self.middleware: list[Middleware] = []
        self._services: list[Service] = []
        self.app: App | None = None
        self._started = False
        self._background: list[asyncio.Task[Any]] = []
        self._views: ViewCatalog | None = None
        self.idempotency_ttl = 24 * 3600.0  # seconds an Idempotency-Key is remembered
        self.idempotency_lease = 60.0  # seconds a run holds its key before a retry may take over

    # -- building ---------------------------------------------------------------------------
    def register(self, kind: type[T], impl: T) -> Self:
        """Register a shared service: ``runtime.register(FileStorage, S3FileStorage(...))``."""
        self._check_building()
        self.registry.register(kind, impl)
        return self

    def use(self, middleware: Middleware) -> Self:
        """Wrap every command, action and query call with ``middleware(invocation, next)``."""
        self._check_building()
        if not callable(middleware):
            raise ConfigurationError(f"middleware must be callable, got {middleware!r}")
        self.middleware.append(middleware)
        return self

    def add(self, *services: Service) -> Self:
        """Host these services."""
        self._check_building()
        for svc in services:
            if not isinstance(svc, Service):
                raise ConfigurationError(f"add() takes Service objects, got {svc!r}")
            self._services.append(svc)
        return self

    def create(self) -> Self:
        """Check the assembly (names, routes, registrations) and freeze it."""
        self._check_building()
        self.app = App.build(self._services)
        for kind, default in self._default_services():
            if not self.registry.has(kind):
                self.registry.register(kind, default)
        return self

    def _default_services(self) -> list[tuple[type, Any]]:
        return default_services(self._object_store())

    def _object_store(self) -> Any:
        """The object store the application's files go to (None: in memory)."""
        return None

    def _check_building(self) -> None:
        if self.app is not None:
            raise ConfigurationError("the runtime is created already; register, use and add "
                                     "before create()")

    def get(self, kind: type[T]) -> T:
        """A registered shared service."""
        return self.registry.get(kind)

    @property
    def services(self) -> Sequence[Service]:
        """The services added."""
        return tuple(self._services)

    # -- life cycle -------------------------------------------------------------------------
    async def start(self) -> Self:
        """Start the runtime (``create()`` is implied)."""
        if self.app is None:
            self.create()
        if not self._started:
            logs.configure()  # JSON logs when TALIX_LOG_JSON=1
            await self._start()
            self._started = True
            try:  # consumers run actions, which call this runtime: only once it takes calls
                await self._start_consumers()
            except BaseException:
                await self.stop()
                raise
        return self

    async def stop(self) -> None:
        """Stop background work and release storage."""
        if self._started:
            # consumers stop first (their in-flight actions are cancelled, not failed), then
            # the runtime refuses new calls
            for task in self._background:
                task.cancel()
            for task in self._background:
                with contextlib.suppress(BaseException):
                    await task
            self._background.clear()
            try:
                await self._stop()
            finally:
                self._started = False

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @abstractmethod
    async def _start(self) -> None: ...

    @abstractmethod
    async def _stop(self) -> None: ...

    async def _start_consumers(self) -> None:
        """Start what consumes the log and the clock (dispatcher, timers): after ``_start``,
        when the runtime already accepts calls. None by default (the RayRuntime's consumers
        are actors with runtimes of their own)."""
        return None

    def _require_started(self) -> App:
        if not self._started or self.app is None:
            raise Unavailable("the runtime is not started: use `async with runtime:` or "
                              "`await runtime.start()`")
        return self.app

    # -- commands ---------------------------------------------------------------------------
    async def run(self, command: Command[Any, In], aggregate_id: str,
                  input: In | dict[str, Any], *,
                  command_id: str | None = None,
                  principal: Principal | None = None) -> CommandResult:
        """Run a command on one aggregate; returns its appended events and new version.

        A repeated ``command_id`` returns the first result and appends nothing. ``principal``
        (who the command runs for) goes into the metadata of the events it appends.
        """
        app = self._require_started()
        app.command(command)
        check_aggregate_id(aggregate_id)
        if command_id is not None:
            check_command_id(command_id)
        data = command.validate_input(input)
        meta = {"principal": principal.id} if principal is not None else None
        if not self.middleware:
            return await self._execute(command, aggregate_id, data, command_id, meta)
        inv = Invocation("command", command.qualname, data, aggregate_id, command_id)
        return await call_through(
            self.middleware, inv,
            lambda: self._execute(command, aggregate_id, data, command_id, meta))

    @abstractmethod
    async def _execute(self, command: Command[Any, Any], aggregate_id: str, input: Any,
                       command_id: str | None,
                       meta: dict[str, str] | None = None) -> CommandResult: ...

    async def enqueue(self, queue: str, message: BaseModel | dict[str, Any], *,
                      key: str | None = None, message_id: str | None = None) -> None:
        """Put a message on a durable queue; on_queue actions get it at least once."""
        app = self._require_started()
        check_name("queue", queue)
        if key is not None:
            check_aggregate_id(key)
        for action in app.queue_routes.get(queue, []):
            action.validate_input(message)
        if isinstance(message, BaseModel):
            message = message.model_dump(mode="json")
        await self.run(enqueue, queue_stream_id(queue, key),
                       Enqueue(queue=queue, message=message), command_id=message_id)

    # -- actions ----------------------------------------------------------------------------
    async def call(self, action: Action | str, input: Any, *,
                   idempotency_key: str | None = None,
                   principal: Principal | None = None) -> Any:
        """Call an action directly (as an HTTP request would); returns its result.

        With an ``idempotency_key`` the action runs once per (action, caller, key): a repeat
        returns the recorded result (or raises the recorded error) without running anything,
        and a repeat with a different input is a :class:`ValidationError`.
        """
        outcome = await self.invoke(action, input, idempotency_key=idempotency_key,
                                    principal=principal)
        return outcome.value

    async def invoke(self, action: Action | str, input: Any, *,
                     idempotency_key: str | None = None,
                     principal: Principal | None = None) -> CallOutcome:
        """:meth:`call`, also telling where the action's commands left their aggregates and
        whether the answer is a replay (what the HTTP layer needs for ``ETag`` headers)."""
        app = self._require_started()
        act = app.action(action)
        data = act.validate_input(input)
        if idempotency_key is None:
            ctx = ActionContext(self, self.registry, act, principal=principal)
            value = await self._run_action(act, data, ctx, None)
            return CallOutcome(value, versions_of(ctx.results))
        check_idempotency_key(idempotency_key)
        return await self._idempotent_call(act, data, idempotency_key, principal)

    async def _run_action(self, act: Action, data: Any, ctx: ActionContext,
                          key: str | None) -> Any:
        inv = Invocation("action", act.name, data, command_id=key)
        return await call_through(self.middleware, inv, lambda: act(data, ctx))

    async def _idempotent_call(self, act: Action, data: Any, key: str,
                               principal: Principal | None) -> CallOutcome:
        rid = record_id(act.name, principal, key)
        token = uuid.uuid4().hex
        begin = BeginCall(fingerprint=fingerprint(data), token=token, now_us=0,
                          ttl_us=int(self.idempotency_ttl * 1e6),
                          lease_us=int(self.idempotency_lease * 1e6))
        clock = self.registry.get(Clock)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.idempotency_lease
        delay = 0.01
        while True:
            claimed = await self.run(begin_call, rid,
                                     begin.model_copy(update={"now_us": clock.now_us()}))
            if claimed.appended and claimed.events[0].payload.token == token:
                generation = claimed.events[0].payload.generation
                break
            record = await self.load_state(calls, rid)
            if record is not None and record.outcome is not None:
                return replay(act, record.outcome)
            if loop.time() + delay > deadline:  # another request with this key still runs
                raise Conflict("a request with this Idempotency-Key is still in progress; "
                               "retry later")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.25)
        trigger = f"call:{rid}:{generation}"
        ctx = ActionContext(self, self.registry, act, id_base=trigger, principal=principal,
                            invocation=invocation_id(act.name, trigger))
        try:
            value = await self._run_action(act, data, ctx, key)
        except TalixError as exc:
            if exc.status < 500:  # an answer: replayed as it is
                await self.run(finish_call, rid, FinishCall(token=token,
                                                            outcome=error_record(exc)))
            else:
                await self._abandon(rid, token)
            raise
        except BaseException:
            await self._abandon(rid, token)
            raise
        versions = versions_of(ctx.results)
        result = {"ok": dump_result(act, value), "versions": [list(v) for v in versions]}
        await self.run(finish_call, rid, FinishCall(token=token, outcome=recordable(result)))
        return CallOutcome(value, versions)

    async def _abandon(self, rid: str, token: str) -> None:
        """Release an idempotency record after a failure (best effort: its lease expires)."""
        try:
            await asyncio.shield(self.run(abandon_call, rid, AbandonCall(token=token)))
        except Exception:
            log.warning("could not release idempotency record %s", rid, exc_info=True)

    async def query(self, query: Query | str, input: Any = None, *,
                    principal: Principal | None = None) -> Any:
        """Run a query (a read) with read-only access; returns its result."""
        app = self._require_started()
        name = query if isinstance(query, str) else query.name
        q = app.queries.get(name)
        if q is None or (not isinstance(query, str) and q is not query):
            raise NotFound(f"query {name!r} is not part of this runtime's services")
        data = q.validate_input(input)
        ctx = ReadOnlyContext(self, self.registry, principal)
        inv = Invocation("query", q.name, data)
        return await call_through(self.middleware, inv, lambda: q(data, ctx))

    async def execute_triggered(self, action: Action, record: Any, attempt: int,
                                fresh: bool = False) -> None:
        """Run an action for a log record (event, queue message or timer tick); ``fresh``:
        no earlier run of it can have started (its durable record need not be read)."""
        app = self._require_started()
        data = app.action_input(action, record)
        event = data if isinstance(data, Event) else None
        ctx = ActionContext(self, self.registry, action, event=event, attempt=attempt,
                            id_base=f"{action.name}:{record.id}",
                            invocation=invocation_id(action.name, record.id), fresh=fresh)
        inv = Invocation("action", action.name, data, record.aggregate_id, None, record.id,
                         attempt)
        with logs.context(record.aggregate_id, event_id=record.id):
            await call_through(self.middleware, inv, lambda: action(data, ctx))

    # -- reads ------------------------------------------------------------------------------
    @property
    @abstractmethod
    def journal(self) -> Journal:
        """The journal the runtime stores events in."""

    @property
    def journal_url(self) -> str:
        """Where the events are kept (``memory://``, ``file://…``, ``s3://…``)."""
        store = getattr(self.journal, "store", None)
        return getattr(store, "url", "memory://")

    async def load_state(self, store: EventStore[S], aggregate_id: str) -> S | None:
        """The current state of an aggregate (``None`` if it has no events)."""
        return (await self.get_aggregate(store, aggregate_id)).state

    @overload
    async def get_aggregate(self, store: EventStore[S], aggregate_id: str, *,
                            version: int | None = None) -> Aggregate[S]: ...
    @overload
    async def get_aggregate(self, store: str, aggregate_id: str, *,
                            version: int | None = None) -> Aggregate[Any]: ...

    async def get_aggregate(self, store: EventStore[Any] | str, aggregate_id: str, *,
                            version: int | None = None) -> Aggregate[Any]:
        """An aggregate's state, now or at ``version`` (read-your-writes)."""
        app = self._require_started()
        es = app.store(store)
        check_aggregate_id(aggregate_id)
        if version is None:
            return await self._current(es, aggregate_id)
        if not isinstance(version, int) or version < 0:
            raise ValidationError(f"invalid version {version!r}: an integer >= 0")
        events = await self.get_events(es, aggregate_id, max_version=version)
        if (events and events[-1].version < version) or (not events and version > 0):
            have = events[-1].version if events else 0
            raise NotFound(f"{es.name}/{aggregate_id} has no version {version} (it is at {have})")
        return Aggregate(es.name, aggregate_id, es.fold(events, es.initial_state),
                         events[-1].version if events else 0, events[-1] if events else None)

    @abstractmethod
    async def _current(self, store: EventStore[Any], aggregate_id: str) -> Aggregate[Any]: ...

    async def get_events(self, store: EventStore[Any] | str, aggregate_id: str, *,
                         min_version: int | None = None, max_version: int | None = None,
                         limit: int | None = None, reverse: bool = False) -> list[Event[Any]]:
        """An aggregate's events, filtered by version, limited, optionally newest first."""
        app = self._require_started()
        es = app.store(store)
        check_aggregate_id(aggregate_id)
        for name, value in (("min_version", min_version), ("max_version", max_version),
                            ("limit", limit)):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValidationError(f"invalid {name} {value!r}: an integer >= 0")
        after = max(0, (min_version or 1) - 1)
        records = await self.journal.read_stream(es.name, aggregate_id, after_version=after)
        if max_version is not None:
            records = [r for r in records if r.version <= max_version]
        if reverse:
            records = records[::-1]
        if limit is not None:
            records = records[:limit]
        return [es.decode(r) for r in records]

    async def list_aggregate_ids(self, store: EventStore[Any] | str, *, limit: int = 100,
                                 page_token: str | None = None) -> Page:
        """A page of the store's aggregate ids in lexical order."""
        app = self._require_started()
        es = app.store(store)
        if not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise ValidationError(f"invalid limit {limit!r}: 1..10000")
        if page_token is not None:
            check_aggregate_id(page_token)
        ids = await self.journal.list_aggregate_ids(es.name, limit=limit + 1, after=page_token)
        more = len(ids) > limit
        ids = ids[:limit]
        return Page(ids, ids[-1] if more else None)

    def simulate_aggregate(self, store: EventStore[T], events: Sequence[Event[Any] | NewEvent[Any]],
                           *, aggregate_id: str = "simulated") -> T | None:
        """The state the reducer gives for ``events`` — nothing is stored."""
        return simulate(store, events, aggregate_id=aggregate_id)

    # -- dead letters and waiting -------------------------------------------------------------
    async def deadletters(self) -> list[dict[str, Any]]:
        """Actions given up on after their last attempt."""
        self._require_started()
        return await self.journal.list_deadletters("dispatcher")

    async def retry_deadletter(self, key: str) -> None:
        """Run a dead-lettered action again; the letter is deleted when it succeeds."""
        app = self._require_started()
        letters = {d["key"]: d for d in await self.deadletters()}
        if key not in letters:
            raise NotFound(f"no dead letter {key!r}")
        letter = letters[key]
        action = app.action(letter["action"])
        await self.execute_triggered(action, StoredEvent.from_json(letter["event"]), 1)
        await self.journal.delete_deadletter("dispatcher", key)

    @property
    def views(self) -> ViewCatalog:
        """The views this runtime keeps (a :class:`~talix_ray.views.ViewCatalog`): open one,
        wait for a command's events to reach it, see each view's lag."""
        self._require_started()
        if self._views is None:
            raise ConfigurationError("this runtime runs no views (views=False, or events in "
                                     "memory and no projections declared)")
        return self._views

    @abstractmethod
    async def settle(self, timeout: float = 30.0) -> None:
        """Wait until every triggered action of what was written so far has run."""

    async def timer_loop(self, action: Action) -> None:
        """Fire ``action``'s timer once per period: every runtime may try, the log keeps one
        firing per period (the timer stream's decider ignores a period already fired)."""
        trigger = action.timer_trigger
        assert trigger is not None
        interval = trigger.interval.total_seconds()
        while True:
            period = int(time.time() // interval)
            try:
                await self.run(fire, action.name,
                               Fire(action=action.name, period=period,
                                    scheduled_at=datetime.fromtimestamp(period * interval, UTC)),
                               command_id=f"timer:{action.name}:{period}")
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("timer %s: could not fire period %d", action.name, period)
            await asyncio.sleep(max(0.001, (period + 1) * interval - time.time()))


def versions_of(results: Sequence[CommandResult]) -> tuple[tuple[str, str, int], ...]:
    """The last version each aggregate reached through ``results`` (in first-touched order)."""
    last: dict[tuple[str, str], int] = {}
    for r in results:
        last[(r.store, r.aggregate_id)] = r.version
    return tuple((s, a, v) for (s, a), v in last.items())


def dump_result(act: Action, value: Any) -> Any:
    """An action's result as JSON-ready data (through its return annotation)."""
    if act.output_model is None:
        return TypeAdapter(Any).dump_python(value, mode="json")
    return _adapter(act.output_model).dump_python(value, mode="json")


def replay(act: Action, outcome: dict[str, Any]) -> CallOutcome:
    """The recorded outcome of an idempotent call: its result again, or its error raised."""
    if "error" in outcome:
        raise recorded_error(outcome)
    if "ok" not in outcome:
        raise Conflict("the response recorded for this Idempotency-Key is too large to replay")
    value = outcome["ok"]
    if act.output_model is not None:
        value = _adapter(act.output_model).validate_python(value)
    versions = tuple((str(s), str(a), int(v)) for s, a, v in outcome.get("versions", []))
    return CallOutcome(value, versions, replayed=True)


@functools.lru_cache(maxsize=1024)
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def default_services(store: Any = None) -> list[tuple[type, Any]]:
    """The shared services every runtime has unless others are registered; files go to
    ``store`` (next to the events) when there is one."""
    files = ObjectStoreFileStorage(store) if store is not None else MemoryFileStorage()
    return [(IdGenerator, UlidGenerator()), (Clock, SystemClock()), (FileStorage, files),
            (Downloader, Downloader())]


def simulate(store: EventStore[T], events: Sequence[Event[Any] | NewEvent[Any]], *,
             aggregate_id: str = "simulated",
             now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> T | None:
    """Fold events (stored ones or new ones, numbered from 1) with the store's reducer."""
    folded: list[Event[Any]] = []
    for i, ev in enumerate(events, start=1):
        if isinstance(ev, NewEvent):
            if store.event_types.get(ev.type.name) is not ev.type:
                raise ValidationError(f"event {ev.type.name} is not declared by {store.name}")
            ev = Event(store.name, aggregate_id, i, ev.type.name, ev.payload, now(), None,
                       ev.metadata)
        folded.append(ev)
    return store.fold(folded, store.initial_state)


__all__ = ["Aggregate", "Page", "Runtime", "queues", "simulate"]
