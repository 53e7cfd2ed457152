"""Folding log records into a view's rows: user projections and the built-in ``events`` view.

A fold is pure bookkeeping; reading the log and committing to Delta Lake is the runner's job.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from pydantic import BaseModel

from ..journal.base import SegmentColumns
from ..model.errors import ConfigurationError, TalixError
from ..model.events import Event, StoredEvent
from ..model.projection import Projection
from .jsoncol import json_strings
from .schema import RowSchema

EVENTS_VIEW = "events"
DELETED = "_talix_deleted"

Decode = Callable[[StoredEvent], Event[Any]]


class ProjectionError(TalixError):
    """A view's handler failed or returned something that is not a row; the view stops at
    that event (its offsets stay before it) until the handler is fixed."""

    status = 500
    title = "projection failed"


@dataclass
class StateChanges:
    """What a batch did to a state view: rows to upsert and keys to delete."""

    upserts: dict[Any, BaseModel] = field(default_factory=dict)
    deletes: set[Any] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.upserts) + len(self.deletes)


class Fold:
    """How one view turns records into rows."""

    name: str
    kind: str  # "state" or "fact"
    key: str | None = None
    schema: pa.Schema

    def wants(self, record: StoredEvent) -> bool:
        """Whether the record concerns this view at all."""
        raise NotImplementedError

    def wants_store(self, store: str) -> bool | None:
        """Whether every event of ``store`` concerns this view (``None``: ask per event)."""
        return None

    def facts(self, records: Sequence[StoredEvent]) -> pa.Table:
        """The rows a fact view appends for ``records`` (in log order)."""
        raise NotImplementedError

    columnar = False  # whether the view takes segments as columns (``column_facts``)

    def column_facts(self, segments: Sequence[SegmentColumns]) -> pa.Table:
        """The rows a fact view appends for the events of ``segments`` (in log order): the
        rows of :meth:`facts` for the same events."""
        raise NotImplementedError


class EventsFold(Fold):
    """The built-in ``events`` fact view: one row per event of every user store."""

    name = EVENTS_VIEW
    kind = "fact"
    schema = pa.schema([
        pa.field("store", pa.string(), nullable=False),
        pa.field("aggregate_id", pa.string(), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("schema_version", pa.int64(), nullable=False),
        pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("command_id", pa.string()),
        pa.field("payload", pa.string(), nullable=False),
        pa.field("metadata", pa.string()),
    ])

    def __init__(self, system_prefix: str = "talix-") -> None:
        self._prefix = system_prefix

    def wants(self, record: StoredEvent) -> bool:
        return not record.store.startswith(self._prefix)

    def wants_store(self, store: str) -> bool:
        return not store.startswith(self._prefix)

    def facts(self, records: Sequence[StoredEvent]) -> pa.Table:
        cols: list[list[Any]] = [
            [r.store for r in records], [r.aggregate_id for r in records],
            [r.version for r in records], [r.type for r in records],
            [r.schema_version for r in records], [r.timestamp_us for r in records],
            [r.command_id for r in records], [r.payload for r in records],
            [r.metadata for r in records]]
        return self._table(cols)

    columnar = True

    def column_facts(self, segments: Sequence[SegmentColumns]) -> pa.Table:
        names = ("store", "aggregate_id", "version", "type", "schema_version", "timestamp_us",
                 "command_id", "payload", "metadata")  # the schema's order
        cols: list[list[Any]] = [[] for _ in names]
        wanted: dict[str, bool] = {}
        for seg in segments:
            stores = set(seg.store)
            for st in stores - wanted.keys():
                wanted[st] = self.wants_store(st)
            keep = None if all(wanted[st] for st in stores) else \
                [i for i, st in enumerate(seg.store) if wanted[st]]
            for col, name in zip(cols, names, strict=True):
                values = getattr(seg, name)
                col += values if keep is None else [values[i] for i in keep]
        return self._table(cols)

    def _table(self, cols: list[list[Any]]) -> pa.Table:
        """The rows from one list per column, in the schema's order: the payload and the
        metadata (the last two) as JSON text, a ``None`` metadata as a null."""
        *plain, payload, metadata = cols
        arrays = [pa.array(c, type=f.type) for c, f in zip(plain, self.schema, strict=False)]
        arrays.append(json_strings(payload))
        arrays.append(json_strings(metadata, nullable=True))
        return pa.Table.from_arrays(arrays, schema=self.schema)


class ProjectionFold(Fold):
    """A user projection: typed events through its handlers into pydantic rows."""

    def __init__(self, projection: Projection, decode: Decode) -> None:
        self.projection = projection
        self.name = projection.name
        self.kind = projection.kind
        self.key = projection.key
        self.rows = RowSchema(projection.row_model, view=projection.name, key=projection.key)
        self.schema = self.rows.schema
        self._decode = decode
        self._handlers = projection.handlers

    def wants(self, record: StoredEvent) -> bool:
        return record.type in self._handlers

    def _call(self, record: StoredEvent, *args: Any) -> Any:
        h = self._handlers[record.type]
        try:
            return h.fn(*args)
        except Exception as exc:
            raise ProjectionError(f"view {self.name}: handler {h.fn.__name__} failed on event "
                                  f"{record.store}/{record.aggregate_id}@{record.version} "
                                  f"({record.type}): {type(exc).__name__}: {exc}") from exc

    def _check_row(self, record: StoredEvent, row: Any) -> BaseModel:
        if not isinstance(row, self.projection.row_model):
            raise ProjectionError(
                f"view {self.name}: the handler for {record.type} returned {type(row).__name__} "
                f"on event {record.store}/{record.aggregate_id}@{record.version}; expected "
                f"{self.projection.row_model.__name__}" + (" or None" if self.key else
                                                           ", a list of them or None"))
        return row

    def facts(self, records: Sequence[StoredEvent]) -> pa.Table:
        rows: list[BaseModel] = []
        for rec in records:
            out = self._call(rec, self._decode(rec))
            if out is None:
                continue
            if isinstance(out, list | tuple):
                rows.extend(self._check_row(rec, r) for r in out)
            else:
                rows.append(self._check_row(rec, out))
        return self.rows.table(rows)

    # -- state views ----------------------------------------------------------------------------
    def keyed(self, records: Iterable[StoredEvent]) -> list[tuple[Any, Event[Any], StoredEvent]]:
        """Decode ``records`` and pick each one's row key."""
        out = []
        for rec in records:
            ev = self._decode(rec)
            key_of = self._handlers[rec.type].key_of
            if key_of is None:
                key = rec.aggregate_id
            else:
                try:
                    key = key_of(ev)
                except Exception as exc:
                    raise ProjectionError(f"view {self.name}: key function failed on event "
                                          f"{rec.store}/{rec.aggregate_id}@{rec.version}: "
                                          f"{type(exc).__name__}: {exc}") from exc
            if key is None:
                continue  # the event concerns no row of this view
            out.append((key, ev, rec))
        return out

    def apply(self, keyed: Sequence[tuple[Any, Event[Any], StoredEvent]],
              rows: RowCache, changes: StateChanges) -> None:
        """Fold keyed events into ``rows`` (all their keys loaded) and note the changes."""
        key = self.key
        assert key is not None
        for k, ev, rec in keyed:
            current = rows.get(k)
            new = self._call(rec, current, ev)
            if new is None:
                if current is not None:
                    changes.deletes.add(k)
                    changes.upserts.pop(k, None)
                rows.put(k, None)
                continue
            new = self._check_row(rec, new)
            if getattr(new, key) != k:
                raise ProjectionError(
                    f"view {self.name}: the handler for {rec.type} returned a row with "
                    f"{key}={getattr(new, key)!r} for the row {k!r} (event {rec.store}/"
                    f"{rec.aggregate_id}@{rec.version}); use on(..., key=...) to pick rows")
            rows.put(k, new)
            changes.upserts[k] = new
            changes.deletes.discard(k)

    def changes_table(self, changes: StateChanges) -> pa.Table:
        """Upserts and deletes as one merge source (all columns nullable, plus a delete flag)."""
        schema = pa.schema([f.with_nullable(True) for f in self.schema]
                           + [pa.field(DELETED, pa.bool_(), nullable=False)])
        up = self.rows.table(list(changes.upserts.values()))
        columns = []
        for f in self.schema:
            keys = list(changes.deletes) if f.name == self.key else [None] * len(changes.deletes)
            columns.append(pa.concat_arrays([up.column(f.name).combine_chunks()
                                             if up.num_rows else pa.array([], f.type),
                                             pa.array(keys, f.type)]))
        flags = [False] * up.num_rows + [True] * len(changes.deletes)
        return pa.Table.from_arrays([*columns, pa.array(flags, pa.bool_())], schema=schema)


class RowCache:
    """A state view's rows in memory, least recently used evicted; ``None`` = known absent."""

    def __init__(self, capacity: int = 200_000) -> None:
        if capacity < 1:
            raise ConfigurationError("the row cache needs a capacity >= 1")
        self.capacity = capacity
        self._rows: OrderedDict[Any, BaseModel | None] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, key: Any) -> BaseModel | None:
        row = self._rows.get(key)
        self._rows.move_to_end(key)
        return row

    def put(self, key: Any, row: BaseModel | None) -> None:
        self._rows[key] = row
        self._rows.move_to_end(key)

    def missing(self, keys: Iterable[Any]) -> list[Any]:
        """The keys not in memory (to load from the table)."""
        return list(dict.fromkeys(k for k in keys if k not in self._rows))

    def trim(self) -> None:
        """Evict the least recently used rows above capacity (after a commit)."""
        while len(self._rows) > self.capacity:
            self._rows.popitem(last=False)

    def present(self) -> list[BaseModel]:
        """Every row known to exist (for a rebuild, which holds them all)."""
        return [r for r in self._rows.values() if r is not None]

    def clear(self) -> None:
        """Forget everything (after a reload or a conflict)."""
        self._rows.clear()
