"""The events view's rows: JSON columns are the strings ``pa.array`` builds from
``orjson.dumps``; segments read as columns give the table, commits and offsets that reading
them as events gives."""

from __future__ import annotations

import orjson
import pyarrow as pa
import pytest

from talix_ray.journal import ObjectStoreJournal
from talix_ray.model.events import StoredEvent
from talix_ray.objectstore import MemoryObjectStore
from talix_ray.views import EventsFold, ViewLocation, ViewRunner, delta
from talix_ray.views.jsoncol import json_strings

from .test_journal_columns import write

VALUES = [{"amount": "1.00"}, {}, None, {"x": "ü\u2028é😀", "l": [1, 2.5, None, True]}, [],
          "text", 7, {"n": {"deep": [{"a": "b"}]}}]


def reference(values: list, nullable: bool) -> pa.Array:
    """What the events view built before: one ``bytes`` per value through ``pa.array``."""
    return pa.array([None if nullable and v is None else orjson.dumps(v) for v in values],
                    type=pa.string())


@pytest.mark.parametrize("n", [0, 1, 255, 256, 257, 1000])
@pytest.mark.parametrize("nullable", [False, True])
def test_json_strings_are_the_dumps_of_each_value(n: int, nullable: bool) -> None:
    values = [VALUES[i % len(VALUES)] for i in range(n)]
    got = json_strings(values, nullable=nullable)
    got.validate(full=True)
    assert got.equals(reference(values, nullable))
    assert got.null_count == (sum(v is None for v in values) if nullable else 0)


def test_all_null_and_no_null_columns() -> None:
    assert json_strings([None] * 3, nullable=True).equals(pa.nulls(3, pa.string()))
    assert json_strings([None] * 3).to_pylist() == ["null"] * 3
    assert json_strings([{"a": 1}] * 3, nullable=True).null_count == 0


def test_events_rows_are_unchanged() -> None:
    records = [StoredEvent("s", f"a{i}", i + 1, "T", VALUES[i % len(VALUES)], 1_700_000 + i,
                           None if i % 3 else f"c{i}", 1 + i % 2,
                           None if i % 4 else {"trace": f"t{i}", "ü": "😀"})
               for i in range(700)]
    table = EventsFold().facts(records)
    assert table.schema == EventsFold.schema
    rows = table.to_pylist()
    for r, row in zip(records, rows, strict=True):
        assert row["payload"] == orjson.dumps(r.payload).decode()
        assert row["metadata"] == (None if r.metadata is None else
                                   orjson.dumps(r.metadata).decode())
        assert (row["store"], row["aggregate_id"], row["version"], row["command_id"]) == \
            (r.store, r.aggregate_id, r.version, r.command_id)


class PerEventFold(EventsFold):
    """The events view read the other way: segments decoded into events, then rows."""

    columnar = False


async def test_the_columnar_runner_commits_what_the_per_event_runner_commits(tmp_path) -> None:
    store = MemoryObjectStore()
    writer = ObjectStoreJournal(store, partitions=3, own_store=False)
    await writer.open()
    await write(writer, 300)  # a "talix-system" store among them: not in the view
    runs = {}
    for name, fold in (("columns", EventsFold()), ("events", PerEventFold())):
        journal = ObjectStoreJournal(store, own_store=False)
        await journal.open()
        runner = ViewRunner(fold, journal, ViewLocation(str(tmp_path / name)),
                            batch_events=40, linger=0, compact_every=0)
        await runner.catch_up(timeout=60)
        runner.close()
        await journal.close()
        runs[name] = runner
    await writer.close()
    a, b = runs["columns"], runs["events"]
    assert (a.events, a.commits, a.offsets) == (b.events, b.commits, b.offsets)
    assert a.commits > 3
    ta, tb = (delta.load(r.uri, {}) for r in (a, b))
    assert ta.version() == tb.version()
    order = [("aggregate_id", "ascending"), ("store", "ascending"), ("version", "ascending")]
    for v in range(1, ta.version() + 1):
        ta.load_as_version(v)
        tb.load_as_version(v)
        rows = ta.to_pyarrow_table()
        assert rows.sort_by(order).equals(tb.to_pyarrow_table().sort_by(order))
        assert "talix-system" not in rows.column("store").to_pylist()
        assert delta.offsets(ta, "events", 3) == delta.offsets(tb, "events", 3)
