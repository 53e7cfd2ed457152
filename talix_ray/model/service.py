"""A service groups the parts of one domain."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .action import Action, Query
from .errors import ConfigurationError
from .names import check_name
from .projection import Projection
from .store import EventStore


@dataclass(eq=False)
class Service:
    """The event stores, actions, queries and projections of one domain."""

    name: str
    stores: Sequence[EventStore[Any]] = ()
    actions: Sequence[Action] = ()
    queries: Sequence[Query] = ()
    projections: Sequence[Projection] = ()
    description: str | None = field(default=None)
    module: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        check_name("service", self.name)
        self.module = _defining_module()
        self.stores = tuple(self.stores)
        self.actions = tuple(self.actions)
        self.queries = tuple(self.queries)
        self.projections = tuple(self.projections)
        for kind, items, cls in (("store", self.stores, EventStore),
                                 ("action", self.actions, Action),
                                 ("query", self.queries, Query),
                                 ("projection", self.projections, Projection)):
            seen: set[str] = set()
            for item in items:
                if not isinstance(item, cls):
                    raise ConfigurationError(f"service {self.name}: {item!r} is not a {kind}")
                if item.name in seen:
                    raise ConfigurationError(f"service {self.name}: two {kind}s named {item.name}")
                seen.add(item.name)


def _defining_module() -> str | None:
    """The module whose code called ``Service(...)`` (so other processes can import it)."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name != __name__ and not name.startswith("dataclasses"):
            return str(name)
        frame = frame.f_back  # type: ignore[assignment]
    return None
