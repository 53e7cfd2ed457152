"""A runtime's views: open them, wait for them, see how far behind they are."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..journal.base import Journal
from ..model.errors import NotFound, ValidationError
from ..model.store import CommandResult
from . import delta
from .location import ViewLocation
from .view import View, connect_views

if TYPE_CHECKING:
    import duckdb

Status = Callable[[], Awaitable[list[dict[str, Any]]]]


class ViewCatalog:
    """The views a runtime maintains (``runtime.views``)."""

    def __init__(self, location: ViewLocation, names: list[str], journal: Journal,
                 status: Status | None = None) -> None:
        self.location = location
        self.names = list(names)
        self._journal = journal
        self._status = status

    def __repr__(self) -> str:
        return f"<ViewCatalog {self.names} at {self.location.base}>"

    def open(self, name: str) -> View:
        """One view, for reading."""
        if name not in self.names:
            raise NotFound(f"no view {name!r} in this runtime (views: {', '.join(self.names)})")
        return View(name, self.location, journal=lambda: self._journal)

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with every view that has a table, each named after it."""
        return connect_views(self.open(n) for n in self.names
                             if delta.exists(self.location.uri(n), self.location.storage_options))

    def sql(self, query: str, params: dict[str, Any] | list[Any] | None = None
            ) -> duckdb.DuckDBPyRelation:
        """DuckDB SQL over all views (joins welcome); a DuckDB relation. Values go in
        ``params`` (``$name`` or ``?``), never pasted into the query."""
        return self.connect().sql(query, params=params)

    async def wait_for(self, result: CommandResult, *views: str,
                       timeout: float = 30.0) -> None:
        """Wait until ``views`` (default: all) include the events of ``result``."""
        if not isinstance(result, CommandResult):
            raise ValidationError("wait_for takes the CommandResult of runtime.run(...)")
        names = list(views) or self.names
        for name in names:
            self.open(name)  # unknown names fail before waiting
        if result.partition is None or result.seq is None:
            p = self._journal.partition_of(result.store, result.aggregate_id)
            result = result._replace(partition=p, seq=await self._journal.head(p))
        async with asyncio.timeout(timeout + 1):  # a table read that hangs, too
            await asyncio.gather(*(self.open(n).wait_for_async(result, timeout)
                                   for n in names))

    async def catch_up(self, *views: str, timeout: float = 60.0) -> None:
        """Wait until ``views`` (default: all) include everything written to the log so far."""
        names = list(views) or self.names
        for name in names:
            self.open(name)
        heads = {p: await self._journal.head(p) for p in range(self._journal.partitions)}
        async with asyncio.timeout(timeout + 1):
            await asyncio.gather(*(self.open(n).wait_for_offsets_async(heads, timeout)
                                   for n in names))

    async def status(self) -> list[dict[str, Any]]:
        """Each view's runner status, offsets and lag in segments."""
        if self._status is None:
            return []
        return await self._status()
