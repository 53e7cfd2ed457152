"""Reading a view: Arrow, pandas, polars, DuckDB SQL, time travel, read-your-writes."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable, Coroutine, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa

from ..journal.base import Journal
from ..model.errors import NotFound, ValidationError
from ..model.names import check_name
from ..model.store import CommandResult
from . import delta
from .location import ViewLocation

if TYPE_CHECKING:
    import duckdb

JournalFactory = Callable[[], Journal]
T = TypeVar("T")


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
    def wait_for(self, result: CommandResult, timeout: float = 30.0) -> View:
        """Block until the view has folded the events of ``result`` (a command's result);
        returns the view. :class:`TimeoutError` if it has not within ``timeout`` seconds."""
        partition, seq = _position(result, self._journal)
        return self.wait_for_offsets({partition: seq}, timeout)

    def wait_for_offsets(self, targets: dict[int, int], timeout: float = 30.0) -> View:
        """Block until the view's offsets reach ``targets`` (segment seq per partition)."""
        deadline = time.monotonic() + timeout
        pause = 0.01
        while True:
            try:
                table = delta.load(self.uri, self.location.storage_options)
                if all((table.transaction_version(delta.app_id(self.name, p)) or 0) >= seq
                       for p, seq in targets.items()):
                    return self
            except NotFound:
                pass  # the runner has not created the table yet
            if time.monotonic() > deadline:
                behind = ", ".join(f"segment {s} of partition {p}" for p, s in targets.items())
                raise TimeoutError(f"view {self.name} has not reached {behind} within "
                                   f"{timeout}s")
            time.sleep(pause)
            pause = min(pause * 2, 0.2)


def _position(result: CommandResult, journal: JournalFactory | None) -> tuple[int, int]:
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
    return partition, int(run_sync(j.head(partition)))


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end from blocking code, also inside a running event loop (on a
    thread of its own)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def connect_views(views: Iterable[View],
                  connection: duckdb.DuckDBPyConnection | None = None
                  ) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection where each view is a table named after it."""
    import duckdb

    con = connection if connection is not None else duckdb.connect()
    for view in views:
        con.register(view.name, delta.dataset(view.table()))
    return con
