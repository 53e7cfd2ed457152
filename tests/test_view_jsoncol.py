"""The events view's JSON columns: the same strings ``pa.array`` builds from ``orjson.dumps``."""

from __future__ import annotations

import orjson
import pyarrow as pa
import pytest

from talix_ray.model.events import StoredEvent
from talix_ray.views import EventsFold
from talix_ray.views.jsoncol import json_strings

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
