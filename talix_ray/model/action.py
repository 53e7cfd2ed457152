"""Actions (stateless functions with triggers) and queries (reads)."""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from .errors import ConfigurationError
from .events import Event
from .hints import type_hints
from .names import check_name
from .triggers import EventTrigger, HttpTrigger, QueueTrigger, TimerTrigger, Trigger
from .validation import validate


class TimerTick(BaseModel):
    """The input of an ``every`` action: which period fired."""

    period: int
    scheduled_at: datetime


@dataclass(frozen=True, slots=True)
class Retry:
    """How an event-, queue- or timer-triggered action is retried before it is dead-lettered."""

    max_attempts: int = 5
    initial_backoff: float = 0.2
    max_backoff: float = 30.0
    multiplier: float = 2.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))


@dataclass(frozen=True, slots=True)
class Resources:
    """Ray resources for one run of an action (ignored by the LocalRuntime).

    An action that declares none is *light*: on the RayRuntime it runs on the application's
    async executor actors, many at a time. One that declares ``num_cpus``, ``num_gpus`` or
    ``memory`` runs as a Ray task with exactly those resources (OCR on a GPU node, say).
    """

    num_cpus: float | None = None
    num_gpus: float | None = None
    memory: int | None = None

    @classmethod
    def checked(cls, num_cpus: float | None, num_gpus: float | None,
                memory: int | None) -> Resources:
        """Resources from declared values, each ``None`` or a number >= 0."""
        for what, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus),
                            ("memory", memory)):
            if value is not None and (not isinstance(value, int | float) or value < 0):
                raise ConfigurationError(f"{what} must be a number >= 0, got {value!r}")
        return cls(num_cpus, num_gpus, memory)

    @property
    def light(self) -> bool:
        """Whether no resource is declared (an executor runs it, not a Ray task)."""
        return self.num_cpus is None and self.num_gpus is None and self.memory is None

    def task_options(self) -> dict[str, float | int]:
        """The Ray task options for the declared resources."""
        opts: dict[str, float | int] = {}
        if self.num_cpus is not None:
            opts["num_cpus"] = self.num_cpus
        if self.num_gpus is not None:
            opts["num_gpus"] = self.num_gpus
        if self.memory is not None:
            opts["memory"] = self.memory
        return opts


@dataclass(eq=False)
class Action:
    """A stateless async function with one or more triggers."""

    name: str
    fn: Callable[..., Any]
    triggers: tuple[Trigger, ...]
    input_model: type[BaseModel] | None
    output_model: Any
    resources: Resources = field(default_factory=Resources)
    retry: Retry = field(default_factory=Retry)
    public: bool = False
    description: str | None = None
    scopes: tuple[str, ...] = ()
    durable: bool = True
    concurrency: int | None = None

    def __repr__(self) -> str:
        return f"Action({self.name})"

    async def __call__(self, input: Any, ctx: Any) -> Any:
        result = self.fn(input, ctx)
        if inspect.isawaitable(result):
            result = await result
        return result

    @property
    def http_triggers(self) -> list[HttpTrigger]:
        """The HTTP routes of this action."""
        return [t for t in self.triggers if isinstance(t, HttpTrigger)]

    @property
    def event_trigger(self) -> EventTrigger | None:
        """The event trigger, if any."""
        return next((t for t in self.triggers if isinstance(t, EventTrigger)), None)

    @property
    def queue_trigger(self) -> QueueTrigger | None:
        """The queue trigger, if any."""
        return next((t for t in self.triggers if isinstance(t, QueueTrigger)), None)

    @property
    def timer_trigger(self) -> TimerTrigger | None:
        """The timer trigger, if any."""
        return next((t for t in self.triggers if isinstance(t, TimerTrigger)), None)

    def validate_input(self, data: Any) -> Any:
        """Validate the input of a call (HTTP body, queue message) against the input model."""
        if self.input_model is None:
            return data
        return validate(self.input_model, data, f"input of action {self.name}")


_SCOPE = re.compile(r"^[A-Za-z0-9_.:\-/*]{1,128}$")


def check_scopes(scopes: Sequence[str], public: bool) -> tuple[str, ...]:
    """Scopes are short tokens without spaces; a public route cannot require any."""
    if isinstance(scopes, str):
        raise ConfigurationError(f"scopes takes a list of scopes, not the string {scopes!r}")
    out = tuple(scopes)
    for scope in out:
        if not isinstance(scope, str) or not _SCOPE.match(scope):
            raise ConfigurationError(f"invalid scope {scope!r}: 1-128 characters of letters, "
                                     "digits and _ . : - / *")
    if out and public:
        raise ConfigurationError("a public route cannot require scopes")
    return out


def _input_annotation(fn: Callable[..., Any], what: str) -> tuple[Any, Any]:
    params = list(inspect.signature(fn).parameters.values())
    if len(params) != 2:
        raise ConfigurationError(f"{what}: takes (input, ctx), got {len(params)} parameter(s)")
    hints = type_hints(fn, what)
    return hints.get(params[0].name), hints.get("return")


def action(
    *triggers: Trigger,
    name: str | None = None,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    memory: int | None = None,
    concurrency: int | None = None,
    retry: Retry | None = None,
    public: bool = False,
    scopes: Sequence[str] = (),
    durable: bool = True,
) -> Callable[[Callable[..., Any]], Action]:
    """Declare an action: ``@action(http.post("/x"))`` or ``@action(on_event(created))``.

    The first parameter is the input: a pydantic model for HTTP and queue triggers,
    ``Event[Payload]`` for event triggers, :class:`TimerTick` for timers. ``num_cpus``,
    ``num_gpus``, ``memory``: Ray resources of each run (see :class:`Resources`);
    ``concurrency``: at most this many runs of the action at once. HTTP routes need
    credentials unless ``public=True``; ``scopes=["expenses:approve"]`` also requires the
    caller to hold those scopes (403 otherwise).

    Invocations triggered by events, queues, timers or HTTP requests with an
    ``Idempotency-Key`` record each ``ctx.run``/``ctx.step`` outcome so a retry replays them
    (durable steps); ``durable=False`` turns that off for an action whose steps are safe to
    repeat as they are.
    """
    required = check_scopes(scopes, public)
    resources = Resources.checked(num_cpus, num_gpus, memory)
    if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
        raise ConfigurationError(f"concurrency must be an integer >= 1, got {concurrency!r}")
    _check_triggers(triggers)

    def wrap(fn: Callable[..., Any]) -> Action:
        aname = check_name("action", name or fn.__name__)
        if not inspect.iscoroutinefunction(fn):
            raise ConfigurationError(f"action {aname} must be an async function")
        model, output = _action_input(fn, aname, triggers)
        return Action(
            name=aname, fn=fn, triggers=tuple(triggers), input_model=model, output_model=output,
            resources=resources, retry=retry or Retry(), public=public,
            description=(fn.__doc__ or "").strip() or None, scopes=required, durable=durable,
            concurrency=concurrency,
        )

    return wrap


def _check_triggers(triggers: Sequence[object]) -> None:
    for t in triggers:
        if not isinstance(t, HttpTrigger | EventTrigger | QueueTrigger | TimerTrigger):
            raise ConfigurationError(f"not a trigger: {t!r}")
    if not triggers:
        raise ConfigurationError("an action needs at least one trigger")


def _action_input(fn: Callable[..., Any], aname: str,
                  triggers: Sequence[Trigger]) -> tuple[type[BaseModel] | None, Any]:
    """The action's input model (``None`` unless a pydantic model) and return annotation,
    checked against what its triggers deliver."""
    annotation, output = _input_annotation(fn, f"action {aname}")
    model: type[BaseModel] | None = None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        model = annotation
    origin = typing.get_origin(annotation) or annotation
    kinds = {type(t) for t in triggers}
    if (HttpTrigger in kinds or QueueTrigger in kinds) and model is None:
        raise ConfigurationError(f"action {aname}: HTTP and queue triggers need the input "
                                 "annotated with a pydantic model")
    if EventTrigger in kinds and origin is not Event:
        raise ConfigurationError(f"action {aname}: an on_event action takes `event: "
                                 "Event[Payload]` as input")
    if EventTrigger in kinds and len(kinds) > 1:
        raise ConfigurationError(f"action {aname}: on_event cannot share an action with "
                                 "other trigger kinds (their inputs differ)")
    return model, output


@dataclass(eq=False)
class Query:
    """A read exposed to callers (and optionally over HTTP): ``(input, ctx) -> result``."""

    name: str
    fn: Callable[..., Any]
    input_model: type[BaseModel] | None
    output_model: Any
    http: HttpTrigger | None = None
    public: bool = False
    description: str | None = None
    scopes: tuple[str, ...] = ()

    async def __call__(self, input: Any, ctx: Any) -> Any:
        result = self.fn(input, ctx)
        if inspect.isawaitable(result):
            result = await result
        return result

    def validate_input(self, data: Any) -> Any:
        """Validate the query's input (path and query parameters) against its model."""
        if self.input_model is None:
            return data
        return validate(self.input_model, data, f"input of query {self.name}")


def query(trigger: HttpTrigger | None = None, *, name: str | None = None,
          public: bool = False, scopes: Sequence[str] = ()
          ) -> Callable[[Callable[..., Any]], Query]:
    """Declare a query; with ``http.get("/things/{id}")`` it is exposed over HTTP (with
    credentials unless ``public=True``, and the ``scopes`` given)."""
    if trigger is not None and not isinstance(trigger, HttpTrigger):
        raise ConfigurationError(f"a query is exposed by an http trigger, not {trigger!r}")
    required = check_scopes(scopes, public)

    def wrap(fn: Callable[..., Any]) -> Query:
        qname = check_name("query", name or fn.__name__)
        annotation, output = _input_annotation(fn, f"query {qname}")
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) \
            else None
        return Query(qname, fn, model, output, trigger, public,
                     (fn.__doc__ or "").strip() or None, required)

    return wrap
