"""The contexts handed to user code, built on a small client interface."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from pydantic import BaseModel, TypeAdapter

from ..model.action import Action
from ..model.errors import ConfigurationError, NotFound, TalixError, ValidationError
from ..model.events import Event, StoredEvent
from ..model.names import check_name
from ..model.principal import Principal
from ..model.store import Command, CommandResult, EventStore
from .calls import error_record, recorded_error
from .steps import (
    InvocationRecord,
    NonDeterministicAction,
    RecordStep,
    Step,
    StepKind,
    invocations,
    record_step,
    run_target,
)

if TYPE_CHECKING:  # the views are an optional extra (pyarrow, deltalake): not imported here
    from ..views.catalog import ViewCatalog

T = TypeVar("T")
S = TypeVar("S")
In = TypeVar("In", bound=BaseModel)


class Client(Protocol):
    """What contexts need from a runtime: run commands, enqueue, read state."""

    async def run(self, command: Command[Any, Any], aggregate_id: str, input: Any, *,
                  command_id: str | None = None,
                  principal: Principal | None = None) -> CommandResult: ...

    async def enqueue(self, queue: str, message: Any, *, key: str | None = None,
                      message_id: str | None = None) -> None: ...

    async def load_state(self, store: EventStore[S], aggregate_id: str) -> S | None: ...

    @property
    def views(self) -> ViewCatalog: ...


class Registry:
    """Shared services by type: ``register(FileStorage, impl)``, ``get(FileStorage)``."""

    def __init__(self) -> None:
        self._items: dict[type, Any] = {}

    def register(self, kind: type[T], impl: T) -> None:
        """Register ``impl`` as the ``kind`` service (it must be an instance of it)."""
        if not isinstance(kind, type):
            raise ConfigurationError(f"register() takes a type first, got {kind!r}")
        if not isinstance(impl, kind):
            raise ConfigurationError(f"{impl!r} is not an instance of {kind.__name__}")
        self._items[kind] = impl

    def get(self, kind: type[T]) -> T:
        """The service registered for ``kind`` (or for a subclass of it)."""
        found = self._items.get(kind)
        if found is not None and isinstance(found, kind):  # always, once registered
            return found
        for registered, impl in self._items.items():
            if isinstance(registered, type) and issubclass(registered, kind) \
                    and isinstance(impl, kind):  # always: ``impl`` is a ``registered``
                return impl
        raise NotFound(f"no shared service registered for {getattr(kind, '__name__', kind)}; "
                       f"call runtime.register({getattr(kind, '__name__', kind)}, impl)")

    def has(self, kind: type) -> bool:
        """Whether something is registered for ``kind``."""
        return kind in self._items

    def items(self) -> dict[type, Any]:
        """A copy of the registrations."""
        return dict(self._items)


class ReadOnlyContext:
    """Shared services and aggregate state — for queries and command deciders."""

    def __init__(self, client: Client, registry: Registry,
                 principal: Principal | None = None) -> None:
        self._client = client
        self._registry = registry
        self.principal = principal

    def get(self, service: type[T]) -> T:
        """The shared service registered for ``service``."""
        return self._registry.get(service)

    async def load(self, store: EventStore[S], aggregate_id: str) -> S | None:
        """The current state of an aggregate (``None`` when it does not exist)."""
        return await self._client.load_state(store, aggregate_id)

    @property
    def views(self) -> ViewCatalog:
        """The runtime's views (a :class:`~talix_ray.views.ViewCatalog`): read Delta tables
        with DuckDB, e.g. ``ctx.views.open("expenses").sql(q, params={...})``."""
        return self._client.views


class CommandCtx(ReadOnlyContext):
    """The context of a decider: its target, read-only access."""

    def __init__(self, client: Client, registry: Registry, aggregate_id: str,
                 command_id: str | None, current: Callable[[], Any], store: EventStore[Any]):
        super().__init__(client, registry)
        self.aggregate_id = aggregate_id
        self.command_id = command_id
        self._current = current
        self._store = store

    async def load(self, store: EventStore[S], aggregate_id: str) -> S | None:
        if store is self._store and aggregate_id == self.aggregate_id:
            return cast("S | None", self._current())  # the state of `store`, being decided
        return await super().load(store, aggregate_id)


class ActionContext(ReadOnlyContext):
    """The context of an action: run commands, run recorded steps, enqueue messages, read,
    use shared services.

    Commands issued here get deterministic ids when the action was triggered by an event
    (``action:event-id:n``) or by an HTTP request with an ``Idempotency-Key`` — so a retried
    action has its effects applied once. Such an invocation is also *durable* (unless the
    action says ``durable=False``): every ``run`` and ``step`` is a numbered step whose outcome
    is recorded in the log before the action goes on, and a retry replays the record instead
    of acting again (:mod:`talix_ray.engine.steps`). ``principal`` is the authenticated caller
    of an HTTP request (``None`` for event, queue and timer triggers); the events of the
    commands run here record it in their metadata.
    """

    def __init__(self, client: Client, registry: Registry, action: Action, *,
                 event: Event[Any] | None = None, attempt: int = 1,
                 id_base: str | None = None, principal: Principal | None = None,
                 invocation: str | None = None, fresh: bool = False) -> None:
        super().__init__(client, registry, principal)
        self.action = action
        self.event = event
        self.attempt = attempt
        self.results: list[CommandResult] = []  # what the commands run here appended
        self.invocation = invocation if action.durable else None
        self._id_base = id_base
        self._calls = 0
        # a fresh invocation has no record yet: no need to read one
        self._log: InvocationRecord | None = InvocationRecord() if fresh else None

    def _next_id(self) -> str | None:
        self._calls += 1
        return f"{self._id_base}:{self._calls}" if self._id_base else None

    async def run(self, command: Command[Any, In], aggregate_id: str,
                  input: In | dict[str, Any], *,
                  command_id: str | None = None) -> CommandResult:
        """Run a command (a recorded step of a durable invocation); its id is derived from
        the trigger unless given."""
        cid = command_id or self._next_id()
        if self.invocation is None:
            result = await self._client.run(command, aggregate_id, input, command_id=cid,
                                            principal=self.principal)
            self.results.append(result)
            return result
        n = self._calls
        target = run_target(command.store.name, command.name, aggregate_id)
        recorded = await self._recorded_step(n, "run", target)
        if recorded is not None:
            result = replay_result(command.store, aggregate_id, _outcome(recorded))
        else:
            try:
                result = await self._client.run(command, aggregate_id, input, command_id=cid,
                                                principal=self.principal)
            except TalixError as exc:
                await self._record_error(n, "run", target, exc)
                raise
            await self._record(n, "run", target, {"ok": result_json(result)})
        self.results.append(result)
        return result

    async def step(self, name: str, fn: Callable[..., Any], *args: Any,
                   result_type: Any = None, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` (sync or async) once: its result — or the talix error
        it raised — is recorded, and a retry gets it back without calling ``fn`` again.

        The result travels as JSON through its type (``result_type``, else ``fn``'s return
        annotation): the first run returns exactly what a replay will. Other exceptions are
        not recorded: the action is retried and the step runs again.
        """
        if not isinstance(name, str) or not 1 <= len(name) <= 128:
            raise ValidationError(f"invalid step name {name!r}: 1-128 characters")
        self._calls += 1
        n = self._calls
        adapter = _step_adapter(fn, result_type)
        if self.invocation is None:
            return await _call(fn, args, kwargs)
        target = f"step:{name}"
        recorded = await self._recorded_step(n, "step", target)
        if recorded is not None:
            return adapter.validate_python(_outcome(recorded))
        try:
            value = await _call(fn, args, kwargs)
        except TalixError as exc:
            await self._record_error(n, "step", target, exc)
            raise
        data = adapter.dump_python(value, mode="json")
        await self._record(n, "step", target, {"ok": data})
        return adapter.validate_python(data)

    async def enqueue(self, queue: str, message: BaseModel | dict[str, Any], *,
                      key: str | None = None) -> None:
        """Put a message on a durable queue (deduplicated like commands on retries)."""
        check_name("queue", queue)
        await self._client.enqueue(queue, message, key=key, message_id=self._next_id())

    # -- the record -------------------------------------------------------------------------
    async def _recorded_step(self, n: int, kind: StepKind, target: str) -> Step | None:
        """Step ``n`` as recorded by an earlier run of this invocation, if any."""
        if self._log is None:
            assert self.invocation is not None
            self._log = await self._client.load_state(invocations, self.invocation) \
                or InvocationRecord()
        step = self._log.steps.get(n)
        if step is not None and (step.kind != kind or step.target != target):
            raise NonDeterministicAction(
                f"action {self.action.name}: step {n} is {kind} {target} now but was "
                f"{step.kind} {step.target} when it first ran; an action must take the same "
                "steps on a retry (record reads that decide its path with ctx.step)")
        return step

    async def _record(self, n: int, kind: StepKind, target: str, outcome: dict[str, Any]) -> None:
        assert self.invocation is not None and self._log is not None
        await self._client.run(record_step, self.invocation,
                               RecordStep(n=n, kind=kind, target=target,
                                          outcome=outcome))
        self._log.steps[n] = Step(kind=kind, target=target,
                                     outcome=outcome)

    async def _record_error(self, n: int, kind: StepKind, target: str, exc: TalixError) -> None:
        """Record a decision (a rejection, a validation error), not a passing failure."""
        if exc.status < 500 and not exc.retryable:
            await self._record(n, kind, target, error_record(exc))


def _outcome(step: Step) -> Any:
    """The recorded result of a step, or its recorded error raised again."""
    if "error" in step.outcome:
        raise recorded_error(step.outcome)
    return step.outcome.get("ok")


async def _call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


@functools.lru_cache(maxsize=512)
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def _step_adapter(fn: Callable[..., Any], result_type: Any) -> TypeAdapter[Any]:
    if result_type is None:
        try:
            result_type = typing.get_type_hints(fn).get("return", Any)
        except Exception:  # an annotation that does not resolve: keep the value as JSON
            result_type = Any
    return _adapter(Any if result_type is None else result_type)


def result_json(result: CommandResult) -> dict[str, Any]:
    """A command's result as recorded in a step."""
    return {"version": result.version, "command_id": result.command_id,
            "partition": result.partition, "seq": result.seq,
            "events": [event_json(e) for e in result.events]}


def event_json(e: Event[Any]) -> dict[str, Any]:
    """An event in its stored JSON form."""
    meta = e.metadata
    if isinstance(meta, BaseModel):
        meta = meta.model_dump(mode="json")
    return StoredEvent(e.store, e.aggregate_id, e.version, e.type,
                       e.payload.model_dump(mode="json"),
                       int(e.timestamp.timestamp() * 1_000_000), e.command_id, 1,
                       meta).to_json()


def replay_result(store: EventStore[Any], aggregate_id: str, data: Any) -> CommandResult:
    """A recorded command result, with its events decoded again."""
    events = tuple(store.decode(StoredEvent.from_json(d)) for d in data["events"])
    return CommandResult(store.name, aggregate_id, int(data["version"]), events,
                         data.get("command_id"), True, data.get("partition"), data.get("seq"))
