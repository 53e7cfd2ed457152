"""The load index (issue 16): an LSM tree on object storage whose cost does not grow with the
number of aggregates — filters, pages of ids, compaction, readers without the writer, budgets."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

from talix_ray.journal import ObjectStoreJournal, Snapshot, WriterPolicy, writer_policy
from talix_ray.journal import format as fmt
from talix_ray.journal.index import pick_compaction, tier_of
from talix_ray.objectstore import CountingObjectStore, MemoryObjectStore
from talix_ray.settings import Settings

from .test_journal import commit

HASH = "f" * 16


def requests(store: CountingObjectStore) -> Counter[tuple[str, str]]:
    return Counter(store.requests)


async def fill(journal: ObjectStoreJournal, ids: list[str], events: int = 1) -> None:
    """Create ``ids`` (``events`` events each, in one commit), many at a time."""
    for start in range(0, len(ids), 500):
        await asyncio.gather(*(journal.append(commit(a, 0, events))
                               for a in ids[start:start + 500]))


async def test_absent_aggregates_cost_no_request():
    store = CountingObjectStore(MemoryObjectStore())
    # a cache that holds the tables' metas but not their blocks: what the filters save shows
    policy = WriterPolicy(index_memtable_bytes=64 * 1024, index_cache_bytes=160 * 1024)
    journal = ObjectStoreJournal(store, partitions=1, own_store=False, policy=policy)
    await journal.open()
    await fill(journal, [f"doc-{i}" for i in range(5000)])
    await journal.flush()
    writer = await journal.writer(0)
    assert writer.index.flushes >= 4                         # tables to rule out
    await fill(journal, [f"late-{i}" for i in range(200)])  # and a memtable
    await journal.load_aggregate("counters", "nobody", HASH)  # the tables' metas, once
    before = requests(store)
    for i in range(1000):                                    # loads of absent aggregates
        snap, events = await journal.load_aggregate("counters", f"absent-{i}", HASH)
        assert snap is None and events == []
    loads = requests(store) - before
    before = requests(store)
    for i in range(1000):                                    # the writer's head lookups
        assert await writer.head_of(("counters", f"new-{i}")) == 0
    heads = requests(store) - before
    # only the filters' false positives (~1 %) read a block
    assert sum(loads.values()) <= 30 and set(loads) <= {("get", "index")}, loads
    assert sum(heads.values()) <= 30 and set(heads) <= {("get", "index")}, heads
    # what exists is found: in the memtable, in tables
    assert [e.version for e in await journal.read_stream("counters", "doc-17")] == [1]
    assert await writer.head_of(("counters", "doc-4999")) == 1
    await journal.close()


async def test_a_page_of_ids_costs_a_bounded_number_of_requests_and_pages_cover_all():
    inner = MemoryObjectStore()
    journal = ObjectStoreJournal(inner, partitions=1, own_store=False,
                                 policy=WriterPolicy(index_memtable_bytes=32 * 1024))
    await journal.open()
    rng = random.Random(3)
    ids = [f"a{rng.getrandbits(64):016x}" for _ in range(20_000)]
    await fill(journal, ids)
    await journal.close()
    store = CountingObjectStore(inner)
    policy = WriterPolicy(index_cache_bytes=4 << 20)
    app = ObjectStoreJournal(store, partitions=1, own_store=False, policy=policy)
    await app.open()
    writer = await app.writer(0)
    runs = len(writer.index.manifest.runs)
    assert runs <= 12, runs                                # compaction keeps them few
    extra = [f"b{i:05d}" for i in range(300)]              # and some only in the memtable
    await fill(app, extra)
    everything = sorted(ids + extra)
    await app.list_aggregate_ids("counters", limit=100)    # the metas, once
    for _ in range(20):
        after = rng.choice(everything[:-200])
        before = requests(store)
        page = await app.list_aggregate_ids("counters", limit=100, after=after)
        cost = sum((requests(store) - before).values())
        i = everything.index(after)
        assert page == everything[i + 1:i + 101]
        assert cost <= 2 * runs, (cost, runs)              # a block or two per run
    walked, after = [], None
    while True:
        page = await app.list_aggregate_ids("counters", limit=1000, after=after)
        if not page:
            break
        walked += page
        after = page[-1]
    assert walked == everything
    assert app._cache.bytes <= policy.index_cache_bytes    # the cache stays in its budget
    assert await app.list_aggregate_ids("other") == []
    await app.close()


async def test_compaction_keeps_every_event_and_the_newest_snapshots():
    store = MemoryObjectStore()
    policy = WriterPolicy(index_memtable_bytes=4096)
    journal = ObjectStoreJournal(store, partitions=1, own_store=False, policy=policy)
    await journal.open()
    heads: Counter[str] = Counter()
    rng = random.Random(5)
    for round_ in range(60):
        batch = [f"s{rng.randrange(30)}" for _ in range(20)]
        for a in batch:                                    # appended one after another
            await journal.append(commit(a, heads[a], 2))
            heads[a] += 2
        for a in set(batch):
            await journal.save_snapshot("counters", a, "old", Snapshot(heads[a], {"n": heads[a]}))
        if round_ % 7 == 0:
            await journal.flush()
    writer = await journal.writer(0)
    for a in heads:                                        # a new fingerprint: old ones go
        await journal.save_snapshot("counters", a, "new", Snapshot(heads[a], {"n": heads[a]}))
        await journal.load_aggregate("counters", a, "new")
    await asyncio.sleep(0)
    await journal.close()
    index = writer.index
    assert index.compactions >= 3, index.compactions
    assert len(index.manifest.runs) <= 12                  # a few per size tier
    # every table the manifest does not name was deleted
    listed = (await store.list_all(fmt.index_prefix(0))).keys
    assert sorted(k for k in listed if "/t-" in k) == sorted(index.manifest.tables())
    fresh = ObjectStoreJournal(store, partitions=1, own_store=False)
    await fresh.open()
    for a, head in heads.items():
        events = await fresh.read_stream("counters", a)
        assert [e.version for e in events] == list(range(1, head + 1)), a
        assert (await fresh.read_stream("counters", a, after_version=head - 3))[0].version \
            == head - 2
        assert await fresh.load_snapshot("counters", a, "old") is None
        snap, rest = await fresh.load_aggregate("counters", a, "new")
        assert snap.version == head and snap.state == {"n": head}
        assert [e.version for e in rest] == [head]
    assert sorted(await fresh.list_aggregate_ids("counters", limit=100)) == sorted(heads)


async def test_a_reader_without_the_writer_sees_tables_and_tail_across_compaction():
    store = MemoryObjectStore()
    writer_journal = ObjectStoreJournal(store, partitions=1, own_store=False,
                                        policy=WriterPolicy(index_memtable_bytes=2048))
    await writer_journal.open()
    await fill(writer_journal, [f"x{i}" for i in range(40)], events=3)
    await writer_journal.flush()
    counting = CountingObjectStore(store)
    # no cache: every lookup reads its blocks, from the tables its manifest names
    reader = ObjectStoreJournal(counting, owned=[], own_store=False,
                                policy=WriterPolicy(index_cache_bytes=0))
    await reader.open()
    assert [e.version for e in await reader.read_stream("counters", "x1")] == [1, 2, 3]
    await writer_journal.append(commit("x1", 3))           # only in the writer's memtable
    assert [e.version for e in await reader.read_stream("counters", "x1")] == [1, 2, 3, 4]
    before = requests(counting)
    assert len(await reader.read_stream("counters", "x2")) == 3
    assert requests(counting) - before == Counter({("get", "index"): 2,   # meta and block
                                                   ("get", "journal"): 1})  # no new segment
    for i in range(40, 200):
        await writer_journal.append(commit(f"x{i}", 0, 3))
    await writer_journal.flush()
    index = (await writer_journal.writer(0)).index
    known = reader._views[0].manifest
    await index._compact(list(index.manifest.runs), bottom=True)  # everything in one run
    assert not set(known.tables()) & set(index.manifest.tables())
    assert not set(known.tables()) & set((await store.list_all("index/")).keys)
    # the reader's manifest names deleted tables: it reads the manifest again
    assert [e.version for e in await reader.read_stream("counters", "x39")] == [1, 2, 3]
    assert reader._views[0].manifest.etag != known.etag
    assert [e.version for e in await reader.read_stream("counters", "x199")] == [1, 2, 3]
    assert len(await reader.list_aggregate_ids("counters", limit=1000)) == 200
    await writer_journal.close()


@pytest.mark.parametrize("shape", ["long", "create-once"])
async def test_puts_and_lists_stay_under_one_per_ten_commands(shape):
    store = CountingObjectStore(MemoryObjectStore())
    journal = ObjectStoreJournal(store, partitions=1, own_store=False,
                                 policy=WriterPolicy(index_memtable_bytes=64 * 1024))
    await journal.open()
    await journal.writer(0)
    commands = 0

    async def client(c: int) -> None:
        nonlocal commands
        if shape == "long":
            for v in range(150):
                await journal.append(commit(f"long-{c}", v))
                commands += 1
                if v % 50 == 49:
                    await journal.save_snapshot("counters", f"long-{c}", HASH,
                                                Snapshot(v + 1, {"n": v + 1}))
        else:
            for i in range(c, 3000, 64):
                for v in range(3):
                    await journal.append(commit(f"once-{i}", v))
                    commands += 1

    await asyncio.gather(*(client(c) for c in range(64)))
    writer = await journal.writer(0)
    await journal.close()
    assert writer.index.flushes >= 3 and writer.index.compactions >= 1
    puts, lists = store.calls["put"], store.calls["list"]
    assert puts / commands <= 0.1 and lists / commands <= 0.1, (puts, lists, commands)


def test_compaction_picks_runs_of_one_tier():
    def run(size: int) -> list:
        from talix_ray.journal.table import TableRef

        return [TableRef("k", size, 0, ("a",), ("b",), 1)]

    base = 1000
    assert [tier_of(s, base, 4) for s in (10, 1000, 1500, 3999, 4000, 15999, 16000, 64000)] \
        == [0, 0, 0, 0, 1, 1, 2, 3]
    assert pick_compaction([run(900)] * 3, base, 4, 12) is None
    assert pick_compaction([run(900)] * 3 + [run(1200), run(4500)], base, 4, 12) == (0, 4)
    assert pick_compaction([run(900), run(5000), run(5000), run(5000), run(5000)],
                           base, 4, 12) == (1, 4)
    many = [run(100 * 4 ** i) for i in range(13)]           # no tier of four: the smallest
    assert pick_compaction(many, base, 4, 12) == (0, 4)


def test_the_index_settings_reach_the_policy(monkeypatch):
    monkeypatch.setenv("TALIX_INDEX_MEMTABLE_BYTES", "65536")
    monkeypatch.setenv("TALIX_INDEX_LAG_SEGMENTS", "99")
    monkeypatch.setenv("TALIX_INDEX_TABLE_BYTES", "1048576")
    monkeypatch.setenv("TALIX_INDEX_CACHE_BYTES", "12345")
    policy = writer_policy(Settings()).index_policy()
    assert (policy.memtable_bytes, policy.lag_segments, policy.table_bytes,
            policy.cache_bytes) == (65536, 99, 1 << 20, 12345)


class SlowIndexStore(MemoryObjectStore):
    """Index tables land slowly (a busy or distant store): the log must not outrun them."""

    async def create(self, key: str, body: bytes) -> str:
        if key.startswith("index/") and "/t-" in key:
            await asyncio.sleep(0.3)
        return await super().create(key, body)


async def test_the_writer_waits_for_the_index_so_memory_stays_bounded():
    budget = 64 * 1024
    policy = WriterPolicy(index_memtable_bytes=budget)
    j = ObjectStoreJournal(SlowIndexStore(), partitions=1, policy=policy)
    await j.open()
    w = await j.writer(0)
    most = 0
    for start in range(0, 6_000, 200):
        await asyncio.gather(*(j.append(commit(f"slow-{i}", 0))
                               for i in range(start, start + 200)))
        most = max(most, w.index.unflushed_bytes)
    # at most the budget twice over, plus the one segment written after the last wait
    assert most <= 2 * budget + 40 * 1024, most
    await j.close()
