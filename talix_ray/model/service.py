"""A service groups the parts of one domain."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .action import Action, Query
from .errors import ConfigurationError
from .names import check_name
from .projection import Projection
from .store import EventStore


@dataclass(eq=False)
class Service:
    """The event stores, actions, queries and projections of one domain.

    Ray workers import a service as ``module.attribute``: ``module`` when given, otherwise
    the first module (or package above it) defining one of its parts — reducer, decider,
    action, query or view handler — that holds the service as an attribute (see
    :meth:`home_modules`), else any imported module that does. A service found nowhere
    travels pickled.
    """

    name: str
    stores: Sequence[EventStore[Any]] = ()
    actions: Sequence[Action] = ()
    queries: Sequence[Query] = ()
    projections: Sequence[Projection] = ()
    description: str | None = field(default=None)
    module: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_name("service", self.name)
        if self.module is not None and not (isinstance(self.module, str) and self.module):
            raise ConfigurationError(f"service {self.name}: module must be a module name, "
                                     f"got {self.module!r}")
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


    def home_modules(self) -> list[str]:
        """Where the service may be importable from, in order: ``module`` if given, else the
        modules defining its parts and the packages above them (``a.b.c``, ``a.b``, ``a``)."""
        if self.module is not None:
            return [self.module]
        out: list[str] = []
        for name in self._part_modules():
            parts = name.split(".")
            for n in range(len(parts), 0, -1):
                candidate = ".".join(parts[:n])
                if candidate not in out:
                    out.append(candidate)
        return out

    def _part_modules(self) -> Iterator[str]:
        functions: list[Any] = []
        for store in self.stores:
            functions.append(store.reducer)
            functions.extend(cmd.decide for cmd in store.commands.values())
        functions.extend(a.fn for a in self.actions)
        functions.extend(q.fn for q in self.queries)
        for projection in self.projections:
            functions.extend(h.fn for h in projection.handlers.values())
        for fn in functions:
            module = getattr(fn, "__module__", None)
            if isinstance(module, str) and module != "__main__":
                yield module
