"""Event stores (an aggregate type: its event types and reducer) and their commands."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, NamedTuple, Protocol, TypeVar, overload

from pydantic import BaseModel, PydanticUserError, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from .errors import ConfigurationError, UnknownEventType, ValidationError
from .events import Event, EventType, NewEvent, StoredEvent, timestamp_of
from .fingerprint import fingerprint, return_type
from .hints import type_hints
from .names import check_name
from .validation import validate

S = TypeVar("S")
I = TypeVar("I", bound=BaseModel)  # noqa: E741
J = TypeVar("J", bound=BaseModel)
Reducer = Callable[[Any, Event[Any]], Any]
Placement = Literal["sharded", "dedicated"]
log = logging.getLogger("talix.model")


class CommandResult(NamedTuple):
    """What a command did: the events it appended, the aggregate's version after it and
    where in the log the events are (``partition``, segment ``seq``; unknown for a command id
    repeated after its aggregate was reloaded)."""

    store: str
    aggregate_id: str
    version: int
    events: tuple[Event[Any], ...] = ()
    command_id: str | None = None
    duplicate: bool = False
    partition: int | None = None
    seq: int | None = None  # the log segment holding the events (for read-your-writes)

    @property
    def appended(self) -> bool:
        """Whether this call appended events (False for a no-op or a repeated command id)."""
        return bool(self.events) and not self.duplicate


class Registrar(Protocol[S]):
    """What ``@store.command(name=...)`` returns: it registers a decider of that store's
    state and keeps the decider's input model in the command's type."""

    @overload
    def __call__(self, fn: Callable[[S | None, J], Any], /) -> Command[S, J]: ...
    @overload
    def __call__(self, fn: Callable[[S | None, J, Any], Any], /) -> Command[S, J]: ...


class EventStore(Generic[S]):
    """An aggregate type: a name, its event types, a pure reducer and its commands.

    ``documents = EventStore("documents", [document_created, ...], reduce)``; then decorate
    deciders with ``@documents.command``.

    Snapshots (every ``snapshot_every`` events) are keyed by a fingerprint of what the state
    depends on (:attr:`reducer_hash`); raise ``snapshot_version`` when the state changes for
    a reason the fingerprint cannot see (a helper in another module, a data file).
    """

    def __init__(
        self,
        name: str,
        event_types: Sequence[EventType[Any]],
        reducer: Callable[[S | None, Event[Any]], S | None],
        *,
        initial_state: S | None = None,
        placement: Placement = "sharded",
        snapshot_every: int | None = None,
        snapshot_version: int = 0,
    ) -> None:
        self.name = check_name("event store", name)
        types: dict[str, EventType[Any]] = {}
        for et in event_types:
            if not isinstance(et, EventType):
                raise ConfigurationError(f"event store {name}: {et!r} is not an EventType")
            if et.name in types and types[et.name] is not et:
                raise ConfigurationError(f"event store {name}: event type {et.name} twice")
            types[et.name] = et
        if not types:
            raise ConfigurationError(f"event store {name} declares no event types")
        if not callable(reducer):
            raise ConfigurationError(f"event store {name}: the reducer must be callable")
        if placement not in ("sharded", "dedicated"):
            raise ConfigurationError(f"event store {name}: placement must be sharded|dedicated")
        if snapshot_every is not None and snapshot_every < 1:
            raise ConfigurationError(f"event store {name}: snapshot_every must be >= 1")
        if not isinstance(snapshot_version, int) or isinstance(snapshot_version, bool) \
                or snapshot_version < 0:
            raise ConfigurationError(f"event store {name}: snapshot_version must be an "
                                     "integer >= 0")
        self.event_types = types
        self.reducer = reducer
        self.initial_state = initial_state
        self.placement: Placement = placement
        self.snapshot_every = snapshot_every
        self.snapshot_version = snapshot_version
        self.commands: dict[str, Command[S, Any]] = {}

    def __repr__(self) -> str:
        return f"EventStore({self.name!r})"

    # -- commands -------------------------------------------------------------------------
    @overload
    def command(self, fn: Callable[[S | None, J], Any], /) -> Command[S, J]: ...
    @overload
    def command(self, fn: Callable[[S | None, J, Any], Any], /) -> Command[S, J]: ...
    @overload
    def command(self, fn: None = None, /, *, name: str | None = None,
                max_retries: int = 5) -> Registrar[S]: ...

    def command(self, fn: Callable[..., Any] | None = None, /, *, name: str | None = None,
                max_retries: int = 5) -> Any:
        """Register a decider ``(state, input[, ctx]) -> event | [events] | None`` as a command.

        The input model is read from the second parameter's annotation. A decider may be
        ``async`` and may take a third ``ctx`` (:class:`CommandContext`) parameter to read
        other aggregates or shared services.
        """

        def register(f: Callable[..., Any]) -> Command[S, Any]:
            cmd = Command.from_function(self, f, name=name, max_retries=max_retries)
            if cmd.name in self.commands:
                raise ConfigurationError(f"event store {self.name}: command {cmd.name} twice")
            self.commands[cmd.name] = cmd
            return cmd

        return register(fn) if fn is not None else register

    # -- (de)serialization ----------------------------------------------------------------
    def event_type(self, name: str, where: str = "") -> EventType[Any]:
        """The declared event type called ``name``; :class:`UnknownEventType` otherwise."""
        et = self.event_types.get(name)
        if et is None:
            raise UnknownEventType(
                f"{where or self.name}: unknown event type {name!r} in store {self.name!r} "
                f"(declared: {', '.join(sorted(self.event_types))})"
            )
        return et

    def decode(self, record: StoredEvent) -> Event[Any]:
        """A stored record → a typed event (upcast and validated)."""
        et = self.event_types.get(record.type) or self.event_type(record.type, _where(record))
        payload = record.payload
        if record.schema_version != et.version:
            payload = et.upcast(payload, record.schema_version, _where(record))
        model_type = et.payload_model
        if type(payload) is dict:  # as stored: the validator directly, the message if it fails
            try:
                model = model_type.__pydantic_validator__.validate_python(payload)
            except PydanticValidationError as exc:
                raise ValidationError.from_pydantic(f"stored payload of {_where(record)}",
                                                    exc) from None
        else:
            model = validate(model_type, payload, f"stored payload of {_where(record)}")
        meta: Any = record.metadata
        if meta is not None and et.metadata_model is not None:
            meta = et.metadata_model.model_validate(meta)
        return Event(record.store, record.aggregate_id, record.version, record.type, model,
                     timestamp_of(record.timestamp_us), record.command_id, meta)

    def fold(self, events: Iterable[Event[Any]], state: S | None = None) -> S | None:
        """Apply the reducer over ``events`` starting from ``state``."""
        reducer = self.reducer
        for ev in events:
            state = reducer(state, ev)
        return state

    @functools.cached_property
    def state_adapter(self) -> TypeAdapter[Any] | None:
        """A pydantic adapter for the state (the reducer's return annotation); ``None`` when
        the reducer has no return annotation, or (logged as a warning) when it does not
        resolve or names a type pydantic cannot serialize: no snapshots then."""
        try:
            ann = return_type(self.reducer)
        except ConfigurationError as exc:
            log.warning("event store %s takes no snapshots: %s", self.name, exc)
            return None
        if ann is None:
            return None
        try:
            return TypeAdapter(ann)
        except PydanticUserError as exc:  # a type with no schema, an undefined reference
            log.warning("event store %s takes no snapshots: its state type %r cannot be "
                        "serialized (%s)", self.name, ann, str(exc).splitlines()[0])
            return None

    @functools.cached_property
    def reducer_hash(self) -> str:
        """The state fingerprint that keys snapshots, the same in every process: the reducer's
        code and module source, the state's JSON schema, every event type's name, version
        and schemas, and ``snapshot_version`` (see :mod:`talix_ray.model.fingerprint`)."""
        return fingerprint(self.reducer, return_type(self.reducer),
                           ((et.name, et.version, et.payload_model, et.metadata_model)
                            for et in self.event_types.values()),
                           self.snapshot_version)


@dataclass(eq=False)
class Command(Generic[S, I]):
    """A decider bound to an event store; the runtime validates input and appends events."""

    store: EventStore[S]
    name: str
    input_model: type[I]
    decide: Callable[..., Any]
    is_async: bool = False
    wants_ctx: bool = False
    max_retries: int = 5
    description: str | None = field(default=None)

    @classmethod
    def from_function(cls, store: EventStore[S], fn: Callable[..., Any], *,
                      name: str | None = None, max_retries: int = 5) -> Command[S, Any]:
        """Build a command from a decider, reading the input model from its annotations."""
        cname = check_name("command", name or fn.__name__)
        params = list(inspect.signature(fn).parameters.values())
        if len(params) not in (2, 3):
            raise ConfigurationError(
                f"command {store.name}.{cname}: a decider takes (state, input) or "
                f"(state, input, ctx), got {len(params)} parameter(s)"
            )
        hints = type_hints(fn, f"command {store.name}.{cname}")
        model = hints.get(params[1].name)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ConfigurationError(
                f"command {store.name}.{cname}: annotate the input parameter "
                f"'{params[1].name}' with a pydantic model"
            )
        return Command(store=store, name=cname, input_model=model, decide=fn,
                       is_async=inspect.iscoroutinefunction(fn), wants_ctx=len(params) == 3,
                       max_retries=max_retries,
                       description=(fn.__doc__ or "").strip() or None)

    @property
    def qualname(self) -> str:
        """``store.command``."""
        return f"{self.store.name}.{self.name}"

    def __repr__(self) -> str:
        return f"Command({self.qualname})"

    def validate_input(self, data: Any) -> I:
        """Validate the input (a model instance or a mapping); error names the field."""
        return validate(self.input_model, data, f"input of command {self.qualname}")

    def normalize_events(self, decided: Any) -> list[NewEvent[Any]]:
        """A decider's return value → a list of new events of this store, checked."""
        if decided is None:
            return []
        events = [decided] if isinstance(decided, NewEvent) else list(decided)
        for ev in events:
            if not isinstance(ev, NewEvent):
                raise ConfigurationError(
                    f"command {self.qualname} returned {ev!r}; a decider returns events made "
                    "by calling an EventType, a list of them, or None"
                )
            if self.store.event_types.get(ev.type.name) is not ev.type:
                raise ConfigurationError(
                    f"command {self.qualname} returned event {ev.type.name}, which store "
                    f"{self.store.name} does not declare"
                )
        return events


def _where(record: StoredEvent) -> str:
    """How error messages name a stored event."""
    return f"event {record.store}/{record.aggregate_id}@{record.version}"
