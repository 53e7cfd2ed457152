"""The testkit: given events / when a command / then events, error or state — and actions.

Synchronous, in-memory, no Ray and no S3::

    tk = Testkit(documents.service)
    (tk.given(document_created(key="k", content_type="text/plain"))
       .when(create_document, "doc-1", CreateDocument(key="k", content_type="text/plain"))
       .then_error(AlreadyExists))

Action tests register fake shared services and look at what the action did::

    tk = Testkit(documents.service).register(Downloader, FakeDownloader(...))
    out = tk.call(upload_document_from_url, {"url": "https://example.com/r.txt"})
    tk.settle()                      # let event-triggered actions run
    assert tk.state(documents, out.document_id).status == "ANALYZED"
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Self, TypeVar

from pydantic import BaseModel

from .engine.local import LocalRuntime
from .engine.runtime import Aggregate
from .journal.base import Commit
from .journal.memory import MemoryJournal
from .model.action import Action, Query
from .model.errors import ConfigurationError
from .model.events import Event, EventType, NewEvent, StoredEvent
from .model.principal import Principal
from .model.service import Service
from .model.store import Command, CommandResult, EventStore
from .shared import Clock, FixedClock

T = TypeVar("T")
In = TypeVar("In", bound=BaseModel)


class _Loop:
    """The testkit's event loop (in a thread of its own, so it also works where a loop is
    already running: async tests, notebooks) and its long-lived runtime. Closed by
    :meth:`Testkit.close`, or when the testkit is garbage-collected or the interpreter exits,
    so nothing is left pending."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.runtime: LocalRuntime | None = None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self.loop is None:
            loop = asyncio.new_event_loop()
            self.thread = threading.Thread(target=loop.run_forever, name="talix-testkit",
                                           daemon=True)
            self.thread.start()
            self.loop = loop
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        loop, thread = self.loop, self.thread
        if loop is None or thread is None:
            return
        if self.runtime is not None:
            rt, self.runtime = self.runtime, None
            self.run(rt.stop())
        self.run(_cancel_pending())
        self.run(loop.shutdown_asyncgens())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
        self.loop = self.thread = None


async def _cancel_pending() -> None:
    """Cancel and await whatever is still running on the loop (background tasks)."""
    me = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks() if t is not me]
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


class Testkit:
    """A LocalRuntime on a memory journal, driven synchronously, for tests.

    ``views=True`` also runs the services' views (Delta tables in a temporary folder); unit
    tests rarely need them, so they are off by default.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, *services: Service, clock: Clock | None = None,
                 views: bool = False) -> None:
        self._services = services
        self._registrations: list[tuple[type, Any]] = []
        self._middleware: list[Any] = []
        self.clock = clock or FixedClock()
        self._views = views
        self._loop = _Loop()
        self._finalizer = weakref.finalize(self, self._loop.close)

    # -- set-up -----------------------------------------------------------------------------
    def register(self, kind: type[T], impl: T) -> Self:
        """Register a (fake) shared service for every scenario and action call."""
        if self._loop.runtime is not None:
            raise ConfigurationError("register services before the first call")
        self._registrations.append((kind, impl))
        return self

    def use(self, middleware: Any) -> Self:
        """Add middleware to the runtimes the testkit builds."""
        self._middleware.append(middleware)
        return self

    def build_runtime(self, journal: MemoryJournal | None = None) -> LocalRuntime:
        """A new, not yet started LocalRuntime with the testkit's services."""
        rt = LocalRuntime(journal or MemoryJournal(), poll_interval=0.05, timers=False,
                          views=None if self._views else False)
        rt.register(Clock, self.clock)
        for kind, impl in self._registrations:
            rt.register(kind, impl)
        for mw in self._middleware:
            rt.use(mw)
        return rt.add(*self._services).create()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run(coro)

    @property
    def runtime(self) -> LocalRuntime:
        """The long-lived runtime used by :meth:`call`, :meth:`run` and the reads."""
        if self._loop.runtime is None:
            rt = self.build_runtime()
            self._run(rt.start())
            self._loop.runtime = rt
        return self._loop.runtime

    def close(self) -> None:
        """Stop the runtime and the event loop (also done at garbage collection and exit)."""
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- command scenarios --------------------------------------------------------------------
    def given(self, *events: NewEvent[Any]) -> Scenario:
        """Events already in the target aggregate's stream when the command runs."""
        return Scenario(self, list(events))

    # -- action tests and reads ----------------------------------------------------------------
    def call(self, action: Action, input: Any, *, idempotency_key: str | None = None,
             principal: Principal | None = None) -> Any:
        """Call an action (as an HTTP request would, optionally as ``principal``) and return
        its result."""
        return self._run(self.runtime.call(action, input, idempotency_key=idempotency_key,
                                           principal=principal))

    def query(self, query: Query, input: Any = None) -> Any:
        """Run a query and return its result."""
        return self._run(self.runtime.query(query, input))

    def run(self, command: Command[Any, In], aggregate_id: str, input: In | dict[str, Any], *,
            command_id: str | None = None) -> CommandResult:
        """Run a command on the long-lived runtime."""
        return self._run(self.runtime.run(command, aggregate_id, input, command_id=command_id))

    def enqueue(self, queue: str, message: Any, *, key: str | None = None) -> None:
        """Put a message on a queue."""
        self._run(self.runtime.enqueue(queue, message, key=key))

    def settle(self, timeout: float = 30.0) -> None:
        """Let every triggered action run (event, queue) until nothing is left."""
        self._run(self.runtime.settle(timeout))

    def events(self, store: EventStore[Any], aggregate_id: str) -> list[Event[Any]]:
        """The events of an aggregate."""
        return self._run(self.runtime.get_events(store, aggregate_id))

    def aggregate(self, store: EventStore[T], aggregate_id: str) -> Aggregate[T]:
        """An aggregate's current state and version."""
        return self._run(self.runtime.get_aggregate(store, aggregate_id))

    def state(self, store: EventStore[T], aggregate_id: str) -> T | None:
        """An aggregate's current state."""
        return self.aggregate(store, aggregate_id).state

    def deadletters(self) -> list[dict[str, Any]]:
        """Dead letters of the dispatcher."""
        return self._run(self.runtime.deadletters())


class Scenario:
    """``given(...)`` waiting for its ``when(...)``."""

    def __init__(self, kit: Testkit, events: list[NewEvent[Any]]) -> None:
        self._kit = kit
        self._events = events

    def when(self, command: Command[Any, In], aggregate_id: str, input: In | dict[str, Any],
             *, command_id: str | None = None) -> Outcome:
        """Run ``command`` on a fresh runtime whose target stream holds the given events."""
        kit = self._kit
        store = command.store
        journal = MemoryJournal()
        records = []
        ts = kit.clock.now_us()
        for v, ev in enumerate(self._events, start=1):
            if store.event_types.get(ev.type.name) is not ev.type:
                raise ConfigurationError(f"given event {ev.type.name} is not declared by store "
                                         f"{store.name}")
            records.append(StoredEvent(store.name, aggregate_id, v, ev.type.name,
                                       ev.payload.model_dump(mode="json"), ts, None,
                                       ev.type.version, None))
        runtime = kit.build_runtime(journal)

        async def scenario() -> tuple[CommandResult | None, BaseException | None, Aggregate[Any]]:
            if records:
                await journal.append(Commit(store.name, aggregate_id, 0, tuple(records)))
            async with runtime:
                try:
                    result: CommandResult | None = await runtime.run(
                        command, aggregate_id, input, command_id=command_id)
                    error: BaseException | None = None
                except Exception as exc:
                    result, error = None, exc
                after = await runtime.get_aggregate(store, aggregate_id)
            return result, error, after

        result, error, after = kit._run(scenario())
        return Outcome(result, error, after, len(records))


class Outcome:
    """What a command did in a scenario; chain ``then_…`` assertions."""

    def __init__(self, result: CommandResult | None, error: BaseException | None,
                 after: Aggregate[Any], given: int) -> None:
        self.result = result
        self.error = error
        self.aggregate = after
        self._given = given

    def _ok(self) -> CommandResult:
        if self.error is not None:
            raise AssertionError(f"expected success, the command raised "
                                 f"{type(self.error).__name__}: {self.error}") from self.error
        assert self.result is not None
        return self.result

    def then_events(self, *expected: EventType[Any] | NewEvent[Any]) -> Self:
        """The command appended exactly these events (types, or types with payloads)."""
        got = self._ok().events
        if len(got) != len(expected):
            raise AssertionError(f"expected {len(expected)} event(s), got {len(got)}: "
                                 f"{[e.type for e in got]}")
        for i, (ev, exp) in enumerate(zip(got, expected, strict=True)):
            name = exp.name if isinstance(exp, EventType) else exp.type.name
            if ev.type != name:
                raise AssertionError(f"event {i}: expected {name}, got {ev.type}")
            if isinstance(exp, NewEvent) and ev.payload != exp.payload:
                raise AssertionError(f"event {i} ({name}): expected payload {exp.payload!r}, "
                                     f"got {ev.payload!r}")
        return self

    def then_no_events(self) -> Self:
        """The command succeeded and appended nothing."""
        return self.then_events()

    def then_error(self, kind: type[BaseException], match: str | None = None) -> Self:
        """The command raised ``kind`` (message containing ``match``) and appended nothing."""
        if self.error is None:
            raise AssertionError(f"expected {kind.__name__}, the command succeeded with "
                                 f"{[e.type for e in (self.result.events if self.result else ())]}")
        if not isinstance(self.error, kind):
            raise AssertionError(f"expected {kind.__name__}, got {type(self.error).__name__}: "
                                 f"{self.error}") from self.error
        if match is not None and match not in str(self.error):
            raise AssertionError(f"error message {str(self.error)!r} does not contain {match!r}")
        if self.aggregate.version != self._given:
            raise AssertionError(f"the failed command appended events (version "
                                 f"{self.aggregate.version}, given {self._given})")
        return self

    def then_state(self, expected: Any | Callable[[Any], bool]) -> Self:
        """The state after the command equals ``expected`` (or satisfies a predicate)."""
        state = self.aggregate.state
        if callable(expected) and not isinstance(expected, BaseModel | type):
            if not expected(state):
                raise AssertionError(f"state {state!r} does not satisfy the predicate")
        elif state != expected:
            raise AssertionError(f"expected state {expected!r}, got {state!r}")
        return self

    @property
    def events(self) -> Sequence[Event[Any]]:
        """The appended events."""
        return self._ok().events
