"""Reading segments as columns: the same events as ``read_segments``, the same checks."""

from __future__ import annotations

import pytest

from talix_ray import CorruptObject
from talix_ray.journal import Commit, ObjectStoreJournal
from talix_ray.journal import format as fmt
from talix_ray.journal.base import Journal, SegmentColumns
from talix_ray.journal.memory import MemoryJournal
from talix_ray.model import StoredEvent
from talix_ray.objectstore import MemoryObjectStore

FIELDS = StoredEvent._fields


def commits(n: int) -> list[Commit]:
    """Commits of several stores, with metadata, schema versions and no command id mixed in."""
    out = []
    for i in range(n):
        agg, store = f"a{i % 7}", ("accounts", "talix-system", "orders")[i % 3]
        events = tuple(StoredEvent(store, agg, 0, f"T{k}", {"i": i, "k": k, "s": "é😀"},
                                   1_790_000_000_000_000 + i, None if i % 4 == 0 else f"c{i}",
                                   1 + (i + k) % 3 if k else 1,
                                   {"trace": f"t{i}"} if (i + k) % 5 == 0 else None)
                       for k in range(1 + i % 3))
        out.append(Commit(store, agg, 0, events, None if i % 4 == 0 else f"c{i}"))
    return out


async def write(journal: Journal, n: int) -> None:
    expected: dict[tuple[str, str], int] = {}
    for c in commits(n):
        x = expected.get((c.store, c.aggregate_id), 0)
        events = tuple(e._replace(version=x + 1 + k) for k, e in enumerate(c.events))
        await journal.append(c._replace(expected_version=x, events=events))
        expected[(c.store, c.aggregate_id)] = x + len(events)


def as_rows(columns: list[SegmentColumns]) -> list[tuple[int, int, list[tuple]]]:
    return [(c.partition, c.seq, list(zip(*(getattr(c, f) for f in FIELDS), strict=True)))
            for c in columns]


def expected_rows(segments) -> list[tuple[int, int, list[tuple]]]:
    return [(s.partition, s.seq, [tuple(e) for c in s.commits for e in c.events])
            for s in segments]


async def check_same(journal: Journal, partitions: int) -> int:
    total = 0
    for p in range(partitions):
        for after, limit in ((0, 1000), (0, 2), (3, 5)):
            want = expected_rows(await journal.read_segments(p, after, limit))
            got = as_rows(await journal.read_segment_columns(p, after, limit))
            assert got == want
            total += len(want)
    return total


async def test_columns_from_storage_from_the_cache_and_from_the_writer() -> None:
    store = MemoryObjectStore()
    writer = ObjectStoreJournal(store, partitions=2, own_store=False)
    await writer.open()
    await write(writer, 60)
    assert await check_same(writer, 2)  # this process's own segments (cached decoded)
    cold = ObjectStoreJournal(store, own_store=False, segment_cache_bytes=0)
    await cold.open()
    assert await check_same(cold, 2)  # stored bodies, nothing cached
    warm = ObjectStoreJournal(store, own_store=False)
    await warm.open()
    await warm.read_segments(0, 0, 1000)  # bodies cached as stored
    assert await check_same(warm, 2)
    for j in (writer, cold, warm):
        await j.close()


async def test_columns_of_the_memory_journal() -> None:
    journal = MemoryJournal(partitions=2)
    await write(journal, 30)
    assert await check_same(journal, 2)


async def test_an_empty_segment_has_empty_columns() -> None:
    store = MemoryObjectStore()
    await store.create(fmt.segment_key(0, 1), fmt.encode_segment(0, 1, 1, "b", []))
    journal = ObjectStoreJournal(store, partitions=1, own_store=False)
    await journal.open()
    [cols] = await journal.read_segment_columns(0, 0)
    assert (cols.partition, cols.seq, len(cols)) == (0, 1, 0)


@pytest.mark.parametrize(("body", "match"), [
    (b"{not json", "not valid JSON"),
    (b'{"f": 99}', "unknown segment format 99"),
    (b'{"f":1,"p":0,"seq":1,"epoch":1,"batch":"b"}', "damaged segment"),
    (b'{"f":1,"p":0,"seq":1,"epoch":1,"batch":"b","commits":[{"s":"x","a":"y","x":0,'
     b'"e":[{"t":"T","p":{}}]}]}', "damaged segment"),
    (b'{"f":1,"p":0,"seq":1,"epoch":1,"batch":"b","commits":[{"s":"x","a":"y","x":"z",'
     b'"e":[]}]}', "damaged segment"),
    (b'{"f":1,"p":0,"seq":1,"batch":"b","commits":[]}', "damaged segment"),
    (b'{"f":1,"p":0,"seq":2,"epoch":1,"batch":"b","commits":[]}', "seq 2"),
    (b'{"f":1,"p":1,"seq":1,"epoch":1,"batch":"b","commits":[]}', "partition 1"),
])
async def test_a_damaged_segment_is_corrupt_as_read_segments_says(body: bytes,
                                                                  match: str) -> None:
    store = MemoryObjectStore()
    await store.create(fmt.segment_key(0, 1), body)
    journal = ObjectStoreJournal(store, partitions=1, own_store=False)
    await journal.open()
    key = "journal/0000/00000000000000000001"
    with pytest.raises(CorruptObject, match=key) as rows:
        await journal.read_segments(0, 0)
    assert match in str(rows.value)
    with pytest.raises(CorruptObject, match=key) as columns:
        await journal.read_segment_columns(0, 0)
    assert match in str(columns.value)
