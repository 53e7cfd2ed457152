"""Projection declarations: how events become rows of a view (tables come with the views)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from .errors import ConfigurationError
from .events import EventType
from .names import check_name

ViewKind = Literal["state", "fact"]
Handler = Callable[..., Any]


@dataclass(frozen=True)
class ViewHandler:
    """One registered handler: the event type, the function and the state view's key picker."""

    event_type: EventType[Any]
    fn: Handler
    key_of: Callable[[Any], Any] | None = None


@dataclass(eq=False)
class Projection:
    """A view's definition: a row model and one handler per event type.

    * state view (``key`` set): ``handler(row | None, event) -> row | None`` — the row is the
      one whose key is the event's aggregate id (or what ``on(..., key=fn)`` computes from the
      event); the returned row is merged by key, ``None`` deletes it;
    * fact view (no key): ``handler(event) -> row | [rows] | None`` — rows are appended.
    """

    name: str
    row_model: type[BaseModel]
    key: str | None = None
    handlers: dict[str, ViewHandler] = field(default_factory=dict)

    @property
    def kind(self) -> ViewKind:
        """``state`` (merged by key) or ``fact`` (appended)."""
        return "state" if self.key else "fact"

    def on(self, *event_types: EventType[Any],
           key: Callable[[Any], Any] | None = None) -> Callable[[Handler], Handler]:
        """Register a handler for events of these types; ``key(event)`` picks the row of a
        state view (default: the event's aggregate id)."""
        expected = 2 if self.key else 1
        if key is not None and not self.key:
            raise ConfigurationError(f"view {self.name}: key= is for state views only")
        if key is not None and not callable(key):
            raise ConfigurationError(f"view {self.name}: key= must be a function of the event")
        if not event_types:
            raise ConfigurationError(f"view {self.name}: on() needs at least one event type")

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            if not callable(fn):
                raise ConfigurationError(f"view {self.name}: {fn!r} is not a function")
            n = len(inspect.signature(fn).parameters)
            if n != expected:
                shape = "(row, event)" if self.key else "(event)"
                raise ConfigurationError(f"view {self.name}: handler {fn.__name__} takes {shape}")
            for et in event_types:
                if not isinstance(et, EventType):
                    raise ConfigurationError(f"view {self.name}: {et!r} is not an EventType")
                if et.name in self.handlers:
                    raise ConfigurationError(f"view {self.name}: two handlers for {et.name}")
                self.handlers[et.name] = ViewHandler(et, fn, key)
            return fn

        return register


def _check_row_model(name: str, row_model: Any, key: str | None) -> None:
    if not (isinstance(row_model, type) and issubclass(row_model, BaseModel)):
        raise ConfigurationError(f"view {name}: the row model must be a pydantic model class")
    if key is not None and key not in row_model.model_fields:
        raise ConfigurationError(f"view {name}: key {key!r} is not a field of "
                                 f"{row_model.__name__}")


def state_view(name: str, row_model: type[BaseModel], *, key: str) -> Projection:
    """A view of current state: one row per ``key``, upserted as events arrive."""
    check_name("view", name)
    _check_row_model(name, row_model, key)
    return Projection(name, row_model, key)


def fact_view(name: str, row_model: type[BaseModel]) -> Projection:
    """A view of facts: rows are appended, never updated."""
    check_name("view", name)
    _check_row_model(name, row_model, None)
    return Projection(name, row_model, None)
