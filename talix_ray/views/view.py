"""Reading a view: Arrow, pandas, polars, DuckDB SQL, time travel, read-your-writes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..journal.base import Journal
from ..model.errors import NotFound, ValidationError
from ..model.names import check_name
from ..model.store import CommandResult
from . import delta
from .blocking import wait_sync
from .location import ViewLocation

if TYPE_CHECKING:
    import duckdb

JournalFactory = Callable[[], Journal]
_FIRST_PAUSE, _LAST_PAUSE = 0.01, 0.2  # seconds between checks of a view's offsets


class View:
    """A view's Delta table (``views/{name}/``), read-only; each read sees its newest version
    unless the view is pinned with :meth:`as_of`."""

    def __init__(self, name: str, location: ViewLocation, *, version: int | None = None,
                 journal: JournalFactory | None = None) -> None:
        self.name = check_name("view", name)
        self.location = location
        self.uri = location.uri(name)
        self.pinned = version
        self._journal = journal
        self._pinned_table: Any = None

    def __repr__(self) -> str:
        at = f" @ version {self.pinned}" if self.pinned is not None else ""
        return f"<View {self.name}{at}: {self.uri}>"

    # -- the table ----------------------------------------------------------------------------
    def table(self) -> Any:
        """The ``deltalake.DeltaTable`` (newest version, or the pinned one)."""
        if self.pinned is None:
            return delta.load(self.uri, self.location.storage_options)
        if self._pinned_table is None:
            self._pinned_table = delta.load(self.uri, self.location.storage_options,
                                            version=self.pinned)
        return self._pinned_table

    @property
    def version(self) -> int:
        """The table version this view reads."""
        return int(self.table().version())

    @property
    def schema(self) -> pa.Schema:
        """Column names and Arrow types."""
        return delta.arrow_schema(self.table())

    def offsets(self, partitions: int) -> dict[int, int]:
        """The log position (segment seq per partition) the view has folded."""
        return delta.offsets(self.table(), self.name, partitions)

    def history(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest commits (version, timestamp, operation, metrics)."""
        return list(self.table().history(limit))

    # -- reading ----------------------------------------------------------------------------------
    def to_arrow(self, columns: Iterable[str] | None = None) -> pa.Table:
        """The rows as a pyarrow Table (optionally only ``columns``)."""
        return delta.read(self.table(), columns)

    def to_pandas(self, columns: Iterable[str] | None = None) -> Any:
        """The rows as a pandas DataFrame."""
        return self.to_arrow(columns).to_pandas()

    def to_polars(self, columns: Iterable[str] | None = None) -> Any:
        """The rows as a polars DataFrame."""
        import polars as pl

        return pl.from_arrow(self.to_arrow(columns))

    def count(self) -> int:
        """The number of rows (from the table's metadata, no data read)."""
        import pyarrow.compute as pc

        actions = pa.table(self.table().get_add_actions(flatten=True))
        if actions.num_rows == 0:
            return 0
        return int(pc.sum(actions.column("num_records")).as_py() or 0)

    def sql(self, query: str, params: dict[str, Any] | list[Any] | None = None) -> Any:
        """Run DuckDB SQL where the view is a table named after it; a DuckDB relation
        (``.df()``, ``.pl()``, ``.to_arrow_table()``, ``.fetchall()``). Values go in ``params``
        (``$name`` or ``?`` in the query), never pasted into it."""
        return connect_views([self]).sql(query, params=params)

    # -- time travel ----------------------------------------------------------------------------
    def as_of(self, when: int | datetime) -> View:
        """The view as it was at a table version or at a point in time."""
        if isinstance(when, bool) or not isinstance(when, int | datetime):
            raise ValidationError("as_of takes a table version (int) or a datetime")
        if isinstance(when, int):
            if when < 0:
                raise ValidationError("a table version is >= 0")
            view = View(self.name, self.location, version=when, journal=self._journal)
            view.table()  # fail now if that version does not exist
            return view
        if when.tzinfo is None:
            raise ValidationError("as_of needs an aware datetime (with a time zone)")
        table = delta.load(self.uri, self.location.storage_options)
        try:
            table.load_as_version(when)
        except Exception as exc:
            raise NotFound(f"view {self.name} has no version at {when.isoformat()} "
                           f"({exc})") from exc
        view = View(self.name, self.location, version=int(table.version()),
                    journal=self._journal)
        view._pinned_table = table
        return view

    # -- read your writes -------------------------------------------------------------------------
    async def wait_for_async(self, result: CommandResult, timeout: float = 30.0) -> View:
        """Wait, without holding up the event loop, until the view has folded the events of
        ``result`` (a command's result); returns the view. :class:`TimeoutError` if it has
        not within ``timeout`` seconds."""
        partition, seq = await _position(result, self._journal)
        return await self.wait_for_offsets_async({partition: seq}, timeout)

    async def wait_for_offsets_async(self, targets: dict[int, int],
                                      timeout: float = 30.0) -> View:
        """Wait until the view's offsets reach ``targets`` (segment seq per partition),
        checking its table (on a worker thread) with a growing pause, 10 ms to 200 ms."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pause = _FIRST_PAUSE
        while not await asyncio.to_thread(self._has_reached, targets):
            left = deadline - loop.time()
            if left <= 0:
                behind = ", ".join(f"segment {s} of partition {p}" for p, s in targets.items())
                raise TimeoutError(f"view {self.name} has not reached {behind} within "
                                   f"{timeout}s")
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, _LAST_PAUSE)
        return self

    def wait_for(self, result: CommandResult, timeout: float = 30.0) -> View:
        """:meth:`wait_for_async` for blocking code (a script); on a thread running an event
        loop (a coroutine, a notebook cell) it raises :class:`RuntimeError`: await
        :meth:`wait_for_async` there."""
        return wait_sync(self.wait_for_async(result, timeout), what="View.wait_for",
                         instead="await view.wait_for_async(result)")

    def wait_for_offsets(self, targets: dict[int, int], timeout: float = 30.0) -> View:
        """:meth:`wait_for_offsets_async` for blocking code (refused on an event loop's
        thread, as :meth:`wait_for`)."""
        return wait_sync(self.wait_for_offsets_async(targets, timeout),
                         what="View.wait_for_offsets",
                         instead="await view.wait_for_offsets_async(targets)")

    def _has_reached(self, targets: dict[int, int]) -> bool:
        """Whether the table's committed offsets reach ``targets`` (blocking: reads it)."""
        try:
            table = delta.load(self.uri, self.location.storage_options)
        except NotFound:
            return False  # the runner has not created the table yet
        return all((table.transaction_version(delta.app_id(self.name, p)) or 0) >= seq
                   for p, seq in targets.items())


async def _position(result: CommandResult, journal: JournalFactory | None) -> tuple[int, int]:
    """``(partition, segment seq)`` a view must reach to include ``result``."""
    if not isinstance(result, CommandResult):
        raise ValidationError("wait_for takes the CommandResult of runtime.run(...)")
    if result.partition is not None and result.seq is not None:
        return result.partition, result.seq
    if journal is None:
        raise ValidationError("this result does not carry its log position (a repeated command "
                              "id); open the view from its runtime or settings to wait for it")
    j = journal()
    partition = j.partition_of(result.store, result.aggregate_id)
    return partition, int(await j.head(partition))


def connect_views(views: Iterable[View],
                  connection: duckdb.DuckDBPyConnection | None = None
                  ) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection where each view is a table named after it."""
    import duckdb

    con = connection if connection is not None else duckdb.connect()
    for view in views:
        con.register(view.name, delta.dataset(view.table()))
    return con
