"""The partitioned log on object storage: faults, zombies, recovery, corruption."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter, defaultdict

import pytest

from talix_ray import ConfigurationError, CorruptObject, LocalRuntime, VersionConflict
from talix_ray.journal import Commit, ObjectStoreJournal, WriterPolicy
from talix_ray.journal import format as fmt
from talix_ray.model import Fenced, StoredEvent, Unavailable
from talix_ray.objectstore import (
    CountingObjectStore,
    FaultyObjectStore,
    MemoryObjectStore,
    ObjectStore,
)

from . import domain
from .domain import Add, add, counters
from .waiting import eventually


def s3_store(server) -> ObjectStore:
    from talix_ray.objectstore.s3 import S3ObjectStore

    return S3ObjectStore(server.bucket, f"j-{uuid.uuid4().hex[:12]}", **server.store_options())


def commit(agg: str, expected: int, n: int = 1, cid: str | None = None,
           store: str = "counters") -> Commit:
    events = tuple(StoredEvent(store, agg, expected + i + 1, "COUNTERS:ADDED", {"amount": 1},
                               0, cid) for i in range(n))
    return Commit(store, agg, expected, events, cid)


async def read_log(store: ObjectStore, partitions: int) -> dict[int, list]:
    """Every segment of every partition, checked contiguous."""
    out = {}
    for p in range(partitions):
        listing = await store.list_all(fmt.segment_prefix(p))
        segs = []
        for i, key in enumerate(sorted(listing.keys), start=1):
            rec = fmt.decode_segment(key, (await store.get(key)).body)
            assert rec.segment.seq == i, f"partition {p}: segment gap at {i}"
            segs.append(rec)
        out[p] = segs
    return out


def streams_from_log(log: dict[int, list]) -> dict[tuple[str, str], list[StoredEvent]]:
    """Per-aggregate event lists rebuilt from the log; a fork would show as a version twice."""
    streams: dict[tuple[str, str], list[StoredEvent]] = defaultdict(list)
    for segs in log.values():
        for rec in segs:
            for c in rec.segment.commits:
                s = streams[(c.store, c.aggregate_id)]
                assert c.expected_version == len(s), f"fork in {c.store}/{c.aggregate_id}"
                s.extend(c.events)
    return streams


async def test_faults_lose_no_acknowledged_command_and_fork_nothing(s3_server):
    real = s3_store(s3_server)
    faulty = FaultyObjectStore(real, 0.10, seed=7, timeout_s=0.02)
    journal = ObjectStoreJournal(faulty, partitions=2, own_store=False, poll_interval=0.05,
                                 policy=WriterPolicy(index_memtable_bytes=8192,
                                                     index_lag_segments=16, retry_deadline=30))
    acked: dict[str, int] = {}
    failures: Counter[str] = Counter()
    rt = LocalRuntime(journal).add(domain.plain_service).create()
    rt.snapshot_every = 50

    async def client(c: int) -> None:
        rng = random.Random(c)
        for i in range(100):
            cid = f"client{c}-{i}"
            agg = f"agg-{rng.randrange(40)}"
            for _attempt in range(20):
                try:
                    r = await rt.run(add, agg, Add(amount=1), command_id=cid)
                    acked[cid] = r.version
                    break
                except Exception as exc:  # a client retries with the same command id
                    failures[type(exc).__name__] += 1
                    await asyncio.sleep(0.01)

    async with rt:
        await asyncio.gather(*(client(c) for c in range(50)))
        rt.host.passivate_all()
        await rt.host.drain()
        indexes = [w.index for w in journal._writers.values()]
    assert sum(faulty.injected.values()) > 100, faulty.injected
    assert len(acked) == 5000, f"{5000 - len(acked)} commands never acknowledged: {failures}"

    log = await read_log(real, 2)
    streams = streams_from_log(log)
    in_log = Counter(e.command_id for evs in streams.values() for e in evs)
    assert all(in_log[cid] == 1 for cid in acked), "an acknowledged command is missing or twice"
    assert max(in_log.values()) == 1, "a command was applied twice"
    # faults hit the index too: it was written (flushed, compacted) under them
    assert sum(i.flushes for i in indexes) >= 8, [i.flushes for i in indexes]
    assert sum(i.compactions for i in indexes) >= 1, [i.compactions for i in indexes]
    # the per-aggregate streams (index + tail, read by a fresh process) equal the log
    fresh = ObjectStoreJournal(real, own_store=False)
    await fresh.open()
    for (store, agg), events in streams.items():
        got = await fresh.read_stream(store, agg)
        assert [(e.version, e.command_id) for e in got] == \
            [(e.version, e.command_id) for e in events], f"{store}/{agg} differs from the log"
    # and a runtime on it agrees on every total
    async with LocalRuntime(ObjectStoreJournal(real, own_store=False)).add(
            domain.plain_service).create() as rt2:
        total = 0
        for i in range(40):
            total += (await rt2.get_aggregate(counters, f"agg-{i}")).state.total
        assert total == 5000


async def test_a_zombie_writer_steps_down_and_nothing_forks():
    store = MemoryObjectStore()
    a = ObjectStoreJournal(store, partitions=1, own_store=False)
    b = ObjectStoreJournal(store, partitions=1, own_store=False)
    await a.open()
    await b.open()
    wa = await a.writer(0)
    wb = await b.writer(0)
    assert wb.epoch > wa.epoch
    assert await a.append(commit("x", 0)) == 1          # the old writer has not seen b yet
    with pytest.raises(VersionConflict):                 # b reads a's segment, re-checks
        await b.append(commit("x", 0))
    assert await b.append(commit("x", 1)) == 2
    with pytest.raises(Fenced):                          # a hits b's segment: newer epoch
        await a.append(commit("y", 0))
    with pytest.raises(Fenced):                          # and stays down
        await a.append(commit("z", 0))
    assert await b.append(commit("y", 0)) == 3
    streams = streams_from_log(await read_log(store, 1))
    assert [e.version for e in streams[("counters", "x")]] == [1, 2]


async def test_two_runtimes_contesting_one_store_do_not_fork():
    store = MemoryObjectStore()
    old = LocalRuntime(ObjectStoreJournal(store, partitions=1, own_store=False)) \
        .add(domain.plain_service).create()
    new = LocalRuntime(ObjectStoreJournal(store, partitions=1, own_store=False)) \
        .add(domain.plain_service).create()
    async with old:
        await old.run(add, "shared", Add(amount=1))
        async with new:
            outcomes: Counter[str] = Counter()

            async def hit(rt: LocalRuntime, who: str, i: int) -> None:
                try:
                    await rt.run(add, f"k{i % 5}", Add(amount=1), command_id=f"{who}-{i}")
                    outcomes[f"{who}:ok"] += 1
                except (Fenced, VersionConflict, Unavailable) as exc:
                    outcomes[f"{who}:{type(exc).__name__}"] += 1

            for r in range(5):  # contested rounds: both write to the same aggregates
                await asyncio.gather(*(hit(rt, who, i) for i in range(8 * r, 8 * r + 8)
                                       for rt, who in ((old, "old"), (new, "new"))))
            assert outcomes["new:ok"] == 40, outcomes
            assert outcomes["old:Fenced"] >= 1, outcomes
    streams = streams_from_log(await read_log(store, 1))
    for (_, _agg), events in streams.items():
        assert [e.version for e in events] == list(range(1, len(events) + 1))


async def test_recovery_reads_only_the_segments_above_the_index():
    inner = MemoryObjectStore()
    policy = WriterPolicy(index_lag_segments=32)
    j1 = ObjectStoreJournal(inner, partitions=1, own_store=False, policy=policy)
    await j1.open()
    for i in range(600):  # one commit per segment: appended one by one
        await j1.append(commit(f"a{i % 7}", i // 7))
    w = await j1.writer(0)
    await eventually(lambda: w.index.manifest.seq >= 600 - 32, timeout=30,
                     what="background index writes up to 32 segments behind the head")
    assert w.head == 600
    # crash: no flush, no close
    counting = CountingObjectStore(inner)
    j2 = ObjectStoreJournal(counting, partitions=1, own_store=False, policy=policy)
    await j2.open()
    w2 = await j2.writer(0)
    assert w2.head == 600
    segment_gets = counting.requests[("get", "journal")]
    assert segment_gets <= 32 + 1, f"recovery read {segment_gets} segments"
    total = 0
    for a in range(7):
        events = await j2.read_stream("counters", f"a{a}")
        assert [e.version for e in events] == list(range(1, len(events) + 1))
        total += len(events)
    assert total == 600
    assert await j2.append(commit("a0", 86)) == 601


async def test_corrupted_objects_name_their_key():
    store = MemoryObjectStore()
    j = ObjectStoreJournal(store, partitions=1, own_store=False)
    await j.open()
    await j.append(commit("x", 0))
    await j.flush()                                  # x is in an index table now
    table = (await j._reader(0).read_manifest()).runs[0][0]
    body = (await store.get(table.key)).body
    await store.delete(table.key)
    await store.create(table.key, b"[x" + body[2:])  # its first block no longer parses
    fresh = ObjectStoreJournal(store, own_store=False)
    await fresh.open()
    with pytest.raises(CorruptObject, match=table.key):
        await fresh.read_stream("counters", "x")
    await store.create(fmt.segment_key(0, 2), b"{not json")
    with pytest.raises(CorruptObject, match="journal/0000/00000000000000000002"):
        await j.read_segments(0, 1)
    await store.create(fmt.segment_key(0, 3), b'{"f": 99}')
    with pytest.raises(CorruptObject, match="unknown segment format 99"):
        await ObjectStoreJournal(store, own_store=False).read_segments(0, 2)
    bad = MemoryObjectStore()
    await bad.create(fmt.MANIFEST, b'{"f":1}')
    with pytest.raises(CorruptObject, match=r"talix\.json"):
        await ObjectStoreJournal(bad).open()
    bad_index = MemoryObjectStore()
    await bad_index.create(fmt.manifest_key(0), b'{"f":1,"epoch":1}')
    reader = ObjectStoreJournal(bad_index, partitions=1)
    await reader.open()
    with pytest.raises(CorruptObject, match="index/0000/manifest"):
        await reader.read_stream("counters", "x")


async def test_the_partition_count_is_fixed_at_creation():
    store = MemoryObjectStore()
    await ObjectStoreJournal(store, partitions=3, own_store=False).open()
    j = ObjectStoreJournal(store, own_store=False)
    await j.open()
    assert j.partitions == 3
    with pytest.raises(ConfigurationError, match="created with 3 partitions"):
        await ObjectStoreJournal(store, partitions=5, own_store=False).open()


async def test_group_commit_batches_concurrent_commands():
    store = CountingObjectStore(MemoryObjectStore())
    j = ObjectStoreJournal(store, partitions=1, own_store=False)
    await j.open()
    await j.writer(0)
    seqs = await asyncio.gather(*(j.append(commit(f"g{i}", 0)) for i in range(500)))
    w = await j.writer(0)
    assert w.commits_written == 500 and w.segments_written < 10, w.segments_written
    assert len(set(seqs)) == w.segments_written


async def test_snapshots_are_keyed_by_the_reducer():
    from talix_ray.journal import Snapshot

    j = ObjectStoreJournal(MemoryObjectStore(), partitions=1)
    await j.open()
    await j.save_snapshot("counters", "s", "hash-a", Snapshot(10, {"total": 10}))
    await j.save_snapshot("counters", "s", "hash-a", Snapshot(20, {"total": 20}))
    assert (await j.load_snapshot("counters", "s", "hash-a")).version == 20
    assert (await j.load_snapshot("counters", "s", "hash-a", max_version=15)).version == 10
    assert await j.load_snapshot("counters", "s", "hash-b") is None


async def test_store_settings_validate(tmp_path, monkeypatch):
    from pydantic import ValidationError

    from talix_ray.settings import Settings

    monkeypatch.setenv("TALIX_STORE", "ftp://nope")
    with pytest.raises(ValidationError, match="memory://, file:///path or s3://"):
        Settings()
    monkeypatch.setenv("TALIX_STORE", f"file://{tmp_path}/events")
    async with LocalRuntime.from_settings().add(domain.plain_service).create() as rt:
        await rt.run(add, "f1", Add(amount=3))
    async with LocalRuntime.from_settings().add(domain.plain_service).create() as rt:
        assert (await rt.get_aggregate(counters, "f1")).state.total == 3
    assert (tmp_path / "events" / "talix.json").exists()
