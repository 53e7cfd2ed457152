"""The defects of issue 9, one test (or more) each: liveness of the writer, snapshots that a
changed reducer cannot use, ids that storage keys cannot hold, bad data that must be loud,
memory and size bounds, durability and error mapping of the object stores."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import botocore.exceptions
import pytest
from pydantic import BaseModel

from talix_ray import (
    ConfigurationError,
    CorruptObject,
    Event,
    EventStore,
    EventType,
    LocalRuntime,
    Service,
    ValidationError,
    VersionConflict,
)
from talix_ray.engine.dispatcher import deadletter_key
from talix_ray.journal import Commit, MemoryJournal, ObjectStoreJournal, Snapshot, WriterPolicy
from talix_ray.journal import format as fmt
from talix_ray.model import Fenced, StorageError, StoredEvent, check_aggregate_id
from talix_ray.objectstore import (
    AmbiguousWrite,
    CountingObjectStore,
    Listing,
    LocalObjectStore,
    MemoryObjectStore,
    ObjectStore,
)
from talix_ray.settings import Settings

from . import domain
from .domain import Add, add, add_twice, counters
from .test_journal import commit, read_log, s3_store, streams_from_log

MAX_ID_BYTES = 200  # the documented limit of an aggregate id, in UTF-8 bytes


def local_journal(root: Path, **kw) -> ObjectStoreJournal:
    """A journal on a ``file://`` store, as a (re)started process opens it."""
    return ObjectStoreJournal(LocalObjectStore(root), partitions=1, **kw)


# -- 1. a read never changes what the writer believes ---------------------------------------
async def test_a_read_beyond_the_head_leaves_the_writer_alone(tmp_path):
    async with LocalRuntime(local_journal(tmp_path)).add(domain.plain_service).create() as rt:
        for _ in range(3):
            await rt.run(add, "x", Add(amount=1))
    async with LocalRuntime(local_journal(tmp_path)).add(domain.plain_service).create() as rt:
        writer = await rt.journal.writer(0)  # restarted: x is indexed, no head for it here
        assert ("counters", "x") not in writer.heads
        assert await rt.get_events(counters, "x", min_version=1000) == []
        assert await rt.journal.read_stream("counters", "x", after_version=500) == []
        assert ("counters", "x") not in writer.heads
        result = await rt.run(add, "x", Add(amount=1))  # was: VersionConflict at 999, forever
        assert result.version == 4
        assert (await rt.get_aggregate(counters, "x")).state.total == 4


# -- 2. after a handover the new writer reads the log before it rejects ----------------------
@pytest.fixture(params=["local", "s3"])
def shared_store(request, tmp_path) -> ObjectStore:
    """One store two runtimes share: a directory or a prefix on the SeaweedFS server."""
    if request.param == "local":
        return LocalObjectStore(tmp_path / "shared")
    return s3_store(request.getfixturevalue("s3_server"))


@pytest.mark.parametrize("index", ["table", "snapshot"])
async def test_a_new_writer_reads_the_log_before_rejecting_after_a_handover(shared_store, index):
    store = shared_store
    every = 4 if index == "snapshot" else None
    a_journal = ObjectStoreJournal(store, partitions=1, own_store=False)
    b_journal = ObjectStoreJournal(store, partitions=1, own_store=False)
    a = LocalRuntime(a_journal, snapshot_every=every, dispatch=False).add(domain.plain_service)
    b = LocalRuntime(b_journal, snapshot_every=every, dispatch=False).add(domain.plain_service)
    async with a.create():
        for _ in range(3):
            await a.run(add, "x", Add(amount=1))
        if index == "table":
            await a_journal.flush()                  # x@1-3 in an index table, seq 3
        async with b.create():
            wb = await b_journal.writer(0)           # B takes the partition: a new epoch
            assert (await b.get_aggregate(counters, "x")).version == 3
            assert await wb.head_of(("counters", "x")) == 3
            await b.passivate_all()
            late = await a.run(add, "x", Add(amount=1))  # A has not met B: its PUT lands
            assert late.version == 4
            if index == "table":
                await a_journal.flush()              # A's index is B's now: A writes none
                assert a_journal._writers[0].index.fenced is not None
            else:
                await a.host.drain()                 # A snapshots x@4 (in A's memory only)
            # B loads x at 3; its segment PUT meets A's x@4, B reads it and decides again
            got = await b.run(add, "x", Add(amount=1))  # was: VersionConflict at 3, forever
            assert got.version == 5
            assert (await b.get_aggregate(counters, "x")).state.total == 5
            with pytest.raises(Fenced):
                await a_journal.append(commit("y", 0))
    streams = streams_from_log(await read_log(store, 1))
    assert [e.version for e in streams[("counters", "x")]] == [1, 2, 3, 4, 5]
    await store.close()


async def test_a_writer_behind_still_rejects_a_real_conflict_after_reading_the_log():
    store = MemoryObjectStore()
    a = ObjectStoreJournal(store, partitions=1, own_store=False)
    b = ObjectStoreJournal(store, partitions=1, own_store=False)
    await a.open()
    await b.open()
    await a.writer(0)
    await b.writer(0)                                # B: the newer epoch
    await a.append(commit("x", 0))                  # A has not met B yet; B has not read it
    with pytest.raises(VersionConflict, match="at version 1, expected 5"):
        await b.append(commit("x", 5))               # above its head: B reads, then rejects
    assert await b.append(commit("x", 1)) == 2


# -- 3. a snapshot fingerprint that is deterministic and covers what the state depends on ----
SCORES = '''
from pydantic import BaseModel

from talix_ray import Event, EventStore, EventType, Service

FACTOR = {factor}


class Scored(BaseModel):
    points: int
{payload_extra}

class Score(BaseModel):
    total: int = 0
{state_extra}

scored = EventType("SCORES:SCORED", Scored, version={version},
                   upcasters={{v: (lambda p: p) for v in range(1, {version})}})


def weigh(points: int) -> int:
    return points * FACTOR


def reduce(state: Score | None, event: Event) -> Score:
    state = state or Score()
    bonus = sum([weigh(p) for p in [event.payload.points]])  # a comprehension: a code const
    return Score(total=state.total + bonus)


scores = EventStore("scores", [scored], reduce, snapshot_version={snapshot_version})


class Points(BaseModel):
    points: int


@scores.command
def score(state: Score | None, input: Points):
    return scored(points=input.points)


service = Service("scoring", stores=[scores])
'''


def scores_source(factor: int = 1, version: int = 1, snapshot_version: int = 0,
                  payload_extra: str = "", state_extra: str = "") -> str:
    return SCORES.format(factor=factor, version=version, snapshot_version=snapshot_version,
                         payload_extra=payload_extra, state_extra=state_extra)


@pytest.fixture
def load_scores(tmp_path):
    """``load_scores(**variant)``: a fresh module of the scores domain (its own file)."""
    names = []

    def load(**variant):
        name = f"scores_{uuid.uuid4().hex[:10]}"
        path = tmp_path / f"{name}.py"
        path.write_text(scores_source(**variant))
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        names.append(name)
        spec.loader.exec_module(module)
        return module

    yield load
    for name in names:
        sys.modules.pop(name, None)


def test_the_fingerprint_is_the_same_in_every_process(tmp_path):
    (tmp_path / "scores_mod.py").write_text(scores_source())
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import scores_mod; "
            "print(scores_mod.scores.reducer_hash)")
    root = Path(__file__).parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    runs = [subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                           text=True, timeout=120, env=env, check=True).stdout.strip()
            for _ in range(2)]
    assert runs[0] == runs[1] and len(runs[0]) == 16, runs


def test_the_fingerprint_covers_helpers_schemas_versions_and_snapshot_version(load_scores):
    base = load_scores().scores.reducer_hash
    assert load_scores().scores.reducer_hash == base           # same source: same fingerprint
    changed = {
        "a module constant a helper reads": load_scores(factor=2),
        "the state's schema": load_scores(state_extra="    bonus: int = 0\n"),
        "an event payload's schema": load_scores(payload_extra="    note: str = ''\n"),
        "an event type's version": load_scores(version=2),
        "snapshot_version": load_scores(snapshot_version=1),
    }
    for what, module in changed.items():
        assert module.scores.reducer_hash != base, f"{what} left the fingerprint unchanged"


async def test_a_snapshot_taken_under_other_code_is_not_used_and_is_deleted(tmp_path,
                                                                            load_scores):
    old, new = load_scores(factor=1), load_scores(factor=10)
    root = tmp_path / "store"
    async with LocalRuntime(local_journal(root), snapshot_every=2).add(old.service) \
            .create() as rt:
        for _ in range(4):
            await rt.run(old.score, "s", old.Points(points=1))
        await rt.host.drain()

    async def snapshot(fingerprint: str) -> Snapshot | None:
        journal = local_journal(root)
        await journal.open()
        try:
            return await journal.load_snapshot("scores", "s", fingerprint)
        finally:
            await journal.close()

    assert (await snapshot(old.scores.reducer_hash)).version == 4
    async with LocalRuntime(local_journal(root), snapshot_every=2).add(new.service) \
            .create() as rt:
        # a full replay under the new code: 4 x 10, not the old snapshot's 4
        assert (await rt.get_aggregate(new.scores, "s")).state.total == 40
        await rt.run(new.score, "s", new.Points(points=1))
        await rt.host.drain()
    assert await snapshot(old.scores.reducer_hash) is None, \
        "snapshots no current code can use are kept"
    assert (await snapshot(new.scores.reducer_hash)).version == 5


def test_snapshot_version_is_checked():
    with pytest.raises(ConfigurationError, match="snapshot_version must be an integer"):
        EventStore("bad", [domain.added], domain.reduce, snapshot_version=-1)


# -- 4. ids are limited in bytes; one stream's storage failure is never silent --------------
def test_aggregate_ids_are_limited_in_utf8_bytes():
    assert check_aggregate_id("a" * MAX_ID_BYTES)
    assert check_aggregate_id("😀" * (MAX_ID_BYTES // 4))
    for bad in ["a" * 256, "a" * (MAX_ID_BYTES + 1), "😀" * 70, "é" * (MAX_ID_BYTES // 2 + 1),
                "x\ud800y"]:
        with pytest.raises(ValidationError, match="aggregate id"):
            check_aggregate_id(bad)


async def test_the_longest_ids_are_stored_on_a_file_store(tmp_path):
    longest = "😀" * (MAX_ID_BYTES // 4)
    async with LocalRuntime(local_journal(tmp_path)).add(domain.plain_service).create() as rt:
        await rt.run(add, longest, Add(amount=2))
        await rt.journal.flush()
        writer = await rt.journal.writer(0)
        assert writer.index.manifest.seq == writer.head and not rt.journal.stuck_streams()
    async with LocalRuntime(local_journal(tmp_path)).add(domain.plain_service).create() as rt:
        assert (await rt.get_aggregate(counters, longest)).state.total == 2
        assert (await rt.list_aggregate_ids(counters)).ids == [longest]


async def test_dead_letters_of_the_longest_ids_fit_in_a_key(tmp_path):
    journal = local_journal(tmp_path)
    await journal.open()
    record = StoredEvent("counters", "é" * (MAX_ID_BYTES // 2), 12, "COUNTERS:ADDED",
                         {"amount": 1}, 0)
    key = deadletter_key("mirror_" + "x" * 56, record)  # the longest action name
    assert len(key.encode()) > 255                  # as a file name it could not exist
    await journal.put_deadletter("dispatcher", key, {"key": key, "n": 1})
    await journal.put_deadletter("dispatcher", key, {"key": key, "n": 2})  # replaced
    assert await journal.list_deadletters("dispatcher") == [{"key": key, "n": 2}]
    await journal.delete_deadletter("dispatcher", key)
    assert await journal.list_deadletters("dispatcher") == []
    await journal.close()


class _IndexWritesFail(MemoryObjectStore):
    """A real in-memory store whose index writes fail while ``failing`` (a bucket policy
    refusing that folder, say): what a partition's index does when it cannot be written."""

    failing = True

    async def create(self, key: str, body: bytes) -> str:
        if self.failing and key.startswith("index/") and "/t-" in key:
            raise StorageError(f"injected 403 on create {key}")
        return await super().create(key, body)


async def test_an_index_that_cannot_be_written_is_surfaced_and_retried(caplog):
    store = _IndexWritesFail()
    # an id from before the byte limit (300 bytes) is in the log: the index holds it fine
    legacy = "L" * 300
    await store.create(fmt.MANIFEST, fmt.dumps({"partitions": 1}))
    old = StoredEvent("counters", legacy, 1, "COUNTERS:ADDED", {"amount": 5}, 0)
    await store.create(fmt.segment_key(0, 1), fmt.encode_segment(
        0, 1, 1, "legacy", [Commit("counters", legacy, 0, (old,))]))
    journal = ObjectStoreJournal(store, partitions=1, own_store=False,
                                 policy=WriterPolicy(retry_deadline=0.2))
    await journal.open()
    await journal.append(commit("fine", 0))
    with caplog.at_level(logging.ERROR, logger="talix.journal"), \
            pytest.raises(StorageError, match="index not written"):
        await journal.flush()
    stuck = journal.stuck_streams()
    assert list(stuck) == ["index/0000"] and "injected 403" in stuck["index/0000"]
    assert any("index flush failed" in r.getMessage() and "replays the log above segment 0"
               in r.getMessage() for r in caplog.records)
    writer = await journal.writer(0)
    assert writer.index.manifest.seq == 0              # held below the unwritten events ...
    assert [e.version for e in await journal.read_stream("counters", legacy)] == [1]
    assert [e.version for e in await journal.read_stream("counters", "fine")] == [1]
    with caplog.at_level(logging.ERROR, logger="talix.journal"), pytest.raises(StorageError):
        caplog.clear()
        await journal.flush()                        # tried again, still surfaced
    assert any("attempt 2" in r.getMessage() for r in caplog.records)
    store.failing = False
    await journal.flush()                            # storage is back: written, cleared
    assert not journal.stuck_streams() and writer.index.manifest.seq == writer.head == 2
    await journal.close()
    reopened = ObjectStoreJournal(store, partitions=1, own_store=False)
    await reopened.open()
    assert [e.payload for e in await reopened.read_stream("counters", legacy)] == \
        [{"amount": 5}]
    assert (await reopened.list_aggregate_ids("counters")) == sorted(["fine", legacy])


# -- 5. a repeated command id returns its first result, whatever the journal holds ----------
async def test_a_command_id_known_only_from_an_older_snapshot_returns_its_events():
    store = MemoryObjectStore()

    def runtime() -> LocalRuntime:
        return LocalRuntime(ObjectStoreJournal(store, partitions=1, own_store=False),
                            snapshot_every=3).add(domain.plain_service)

    async with runtime().create() as rt:
        first = await rt.run(add_twice, "s", Add(amount=2), command_id="twice")  # v1-2
        await rt.run(add, "s", Add(amount=1))          # v3: snapshot 3 remembers "twice"
        await rt.passivate_all()
        await rt.host.drain()
        for _ in range(3):                             # reload from snapshot 3, then v4-6:
            await rt.run(add, "s", Add(amount=1))      # snapshot 6 remembers "twice" too
        await rt.passivate_all()
        await rt.host.drain()
    async with runtime().create() as rt:
        again = await rt.run(add_twice, "s", Add(amount=2), command_id="twice")
        assert again.duplicate and again.version == first.version == 2
        assert [(e.version, e.payload.amount) for e in again.events] == [(1, 2), (2, 2)]
        assert (await rt.get_aggregate(counters, "s")).version == 6


async def test_the_command_id_window_is_a_setting(monkeypatch):
    monkeypatch.setenv("TALIX_REMEMBER_COMMANDS", "2")
    settings = Settings(store="memory://")
    assert settings.remember_commands == 2
    async with LocalRuntime.from_settings(settings).add(domain.plain_service).create() as rt:
        for cid in ("c1", "c2", "c3"):
            await rt.run(add, "w", Add(amount=1), command_id=cid)
        assert (await rt.run(add, "w", Add(amount=1), command_id="c3")).duplicate
        forgotten = await rt.run(add, "w", Add(amount=1), command_id="c1")
        assert not forgotten.duplicate and forgotten.version == 4


# -- 6. bad data is loud ----------------------------------------------------------------------
async def test_a_segment_whose_body_disagrees_with_its_key_is_corrupt():
    store = MemoryObjectStore()
    j = ObjectStoreJournal(store, partitions=2, own_store=False)
    await j.open()
    await store.create(fmt.segment_key(0, 1), fmt.encode_segment(0, 1, 1, "b1",
                                                                 [commit("x", 0)]))
    await store.create(fmt.segment_key(0, 2), fmt.encode_segment(0, 3, 1, "b2",
                                                                 [commit("x", 1)]))
    with pytest.raises(CorruptObject, match=r"journal/0000/00000000000000000002.*seq 3"):
        await j.read_segments(0, 0)
    with pytest.raises(CorruptObject, match=r"journal/0000/00000000000000000002"):
        await j.writer(0)                            # the writer's catch-up checks it too
    await store.create(fmt.segment_key(1, 1), fmt.encode_segment(0, 1, 1, "b3",
                                                                 [commit("y", 0)]))
    with pytest.raises(CorruptObject, match=r"journal/0001/00000000000000000001.*partition 0"):
        await ObjectStoreJournal(store, own_store=False).read_segments(1, 0)


async def test_a_snapshot_that_no_longer_validates_is_named_and_replayed(tmp_path, caplog):
    root = tmp_path / "store"
    async with LocalRuntime(local_journal(root), snapshot_every=2) \
            .add(domain.plain_service).create() as rt:
        for _ in range(4):
            await rt.run(add, "v", Add(amount=1))
        await rt.host.drain()
    journal = local_journal(root)
    await journal.open()
    snap = await journal.load_snapshot("counters", "v", counters.reducer_hash)
    assert snap is not None and snap.version == 4
    # the state of an older schema, say, under the same key: it replaces the good one
    await journal.save_snapshot("counters", "v", counters.reducer_hash,
                                Snapshot(4, {"total": "many"}, ()))
    await journal.close()
    journal = local_journal(root)
    await journal.open()
    bad = await journal.load_snapshot("counters", "v", counters.reducer_hash)
    assert bad.state == {"total": "many"} and "counters/v@4" in bad.key
    await journal.close()
    with caplog.at_level(logging.WARNING, logger="talix.entities"):
        async with LocalRuntime(local_journal(root), snapshot_every=2) \
                .add(domain.plain_service).create() as rt:
            agg = await rt.get_aggregate(counters, "v")
            assert agg.version == 4 and agg.state.total == 4
    assert any(bad.key in r.getMessage() and "replaying" in r.getMessage()
               for r in caplog.records)


# -- 7. memory bounded in bytes, sizes limited --------------------------------------------
async def test_the_writers_head_index_is_bounded_in_bytes():
    policy = WriterPolicy(heads_bytes=64 * 1024, index_memtable_bytes=256 * 1024)
    j = ObjectStoreJournal(MemoryObjectStore(), partitions=1, policy=policy)
    await j.open()
    w = await j.writer(0)
    for start in range(0, 20_000, 500):                # 20,000 create-once aggregates
        await asyncio.gather(*(j.append(commit(f"once-{i}", 0))
                               for i in range(start, start + 500)))
        assert w.index.unflushed_bytes <= 2 * policy.index_memtable_bytes  # bounded too
    await j.flush()
    assert w.commits_written == 20_000 and w.index.flushes >= 10
    assert w._heads_bytes <= policy.heads_bytes and len(w.heads) < 400, len(w.heads)
    # a forgotten head is read again from storage: right versions, real conflicts
    assert await j.append(commit("once-0", 1)) > 0
    with pytest.raises(VersionConflict, match="at version 1, expected 0"):
        await j.append(commit("once-1", 0))
    assert [e.version for e in await j.read_stream("counters", "once-0")] == [1, 2]
    await j.close()


async def test_the_segment_cache_is_bounded_in_bytes():
    store = MemoryObjectStore()
    writer = ObjectStoreJournal(store, partitions=1, own_store=False)
    await writer.open()
    big = "z" * 5000
    for i in range(40):
        ev = StoredEvent("counters", f"s{i}", 1, "COUNTERS:NOTE", {"text": big}, 0)
        await writer.append(Commit("counters", f"s{i}", 0, (ev,)))
    reader = ObjectStoreJournal(store, owned=[], own_store=False, segment_cache_bytes=50_000)
    await reader.open()
    assert len(await reader.read_segments(0, 0, 100)) == 40
    cached = reader._segments
    assert 0 < len(cached) < 40 and reader._segment_bytes <= 50_000
    assert sum(size for _, size in cached.values()) == reader._segment_bytes


async def test_segments_read_from_storage_are_cached_as_stored():
    # A decoded copy takes several times its stored size and its events would be scanned by
    # every full garbage collection: the cache keeps what it read as bytes, within the budget
    # (their true size), and each consumer gets its own decoded segments without a second GET.
    store = CountingObjectStore(MemoryObjectStore())
    writer = ObjectStoreJournal(store, partitions=1, own_store=False)
    await writer.open()
    for i in range(10):
        ev = StoredEvent("counters", f"s{i}", 1, "COUNTERS:NOTE", {"text": f"t{i}"}, 7, f"c{i}")
        await writer.append(Commit("counters", f"s{i}", 0, (ev,), f"c{i}"))
    reader = ObjectStoreJournal(store, owned=[], own_store=False)
    await reader.open()
    first = await reader.read_segments(0, 0, 100)
    gets = store.requests[("get", "journal")]
    again = await reader.read_segments(0, 0, 10)
    assert store.requests[("get", "journal")] == gets  # served from the cache
    assert again == first and len(first) == 10
    assert again[0].commits[0].events[0] is not first[0].commits[0].events[0]
    assert all(isinstance(body, bytes) for body, _ in reader._segments.values())
    sizes = [len((await store.inner.get(fmt.segment_key(0, s))).body) for s in range(1, 11)]
    assert reader._segment_bytes == sum(sizes)


class Note(BaseModel):
    text: str


class Notes(BaseModel):
    texts: list[str]


noted = EventType("NOTES:NOTED", Note)


def reduce_notes(state: int | None, event: Event) -> int:
    return (state or 0) + 1


notes = EventStore("notes", [noted], reduce_notes)


@notes.command
def write(state: int | None, input: Notes):
    return [noted(text=t) for t in input.texts]


notes_service = Service("notes", stores=[notes])


@pytest.mark.parametrize("kind", ["objectstore", "memory"])
async def test_events_and_commits_above_the_limits_are_refused_before_storage(kind):
    limits = {"max_event_bytes": 10_000, "max_commit_bytes": 25_000}
    store = CountingObjectStore(MemoryObjectStore())
    journal = ObjectStoreJournal(store, partitions=1, own_store=False,
                                 policy=WriterPolicy(**limits)) \
        if kind == "objectstore" else MemoryJournal(**limits)
    async with LocalRuntime(journal).add(notes_service).create() as rt:
        with pytest.raises(ValidationError, match=r"NOTES:NOTED for notes/n1 is \d+ bytes.*"
                                                  r"at most 10000 bytes.*MAX_EVENT_BYTES") as e:
            await rt.run(write, "n1", Notes(texts=["q" * 12_000]))
        assert "qqq" not in str(e.value)
        with pytest.raises(ValidationError, match=r"3 events for notes/n1 take \d+ bytes.*"
                                                  r"at most 25000 bytes.*MAX_COMMIT_BYTES"):
            await rt.run(write, "n1", Notes(texts=["q" * 9_000] * 3))
        assert store.puts["journal"] == 0
        assert await rt.journal.read_stream("notes", "n1") == []
        assert (await rt.run(write, "n1", Notes(texts=["q" * 9_000] * 2))).version == 2
    assert Settings().max_event_bytes == 1 << 20 and Settings().max_commit_bytes == 8 << 20


async def test_a_segment_holds_at_most_a_commits_worth_of_bytes():
    store = MemoryObjectStore()
    j = ObjectStoreJournal(store, partitions=1, own_store=False,
                           policy=WriterPolicy(max_event_bytes=10_000, max_commit_bytes=25_000))
    await j.open()
    await j.writer(0)

    def big(agg: str) -> Commit:
        ev = StoredEvent("notes", agg, 1, "NOTES:NOTED", {"text": "q" * 9_000}, 0)
        return Commit("notes", agg, 0, (ev,))

    await asyncio.gather(*(j.append(big(f"b{i}")) for i in range(10)))
    listing = await store.list_all(fmt.segment_prefix(0))
    sizes = [len((await store.get(k)).body) for k in listing.keys]
    assert len(sizes) >= 4 and max(sizes) <= 25_000 + 1_000, sizes


# -- 8. durability and error mapping of the object stores ----------------------------------
async def test_the_local_store_fsyncs_content_and_folders(tmp_path, monkeypatch):
    import talix_ray.objectstore.local as local

    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:  # the real fsync, observed: which file or folder it made durable
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(local.os, "fsync", spy)
    root = (tmp_path / "objects").resolve()
    store = LocalObjectStore(root)
    etag = await store.create("a/b/c", b"one")
    assert str(root / "a" / "b") in synced             # the new name, after link()
    assert str(root / "a") in synced and str(root) in synced  # the new folders' names
    assert any(Path(p).name.startswith(".tmp-") for p in synced)  # the content
    synced.clear()
    await store.put_if_match("a/b/c", b"two", etag)
    assert str(root / "a" / "b") in synced              # after replace()
    synced.clear()
    await store.delete("a/b/c")
    assert str(root / "a" / "b") in synced


class _TruncatingS3(BaseHTTPRequestHandler):
    """A loopback HTTP server that answers every request with a body cut short."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.send_header("ETag", '"abc"')
        self.end_headers()
        self.wfile.write(b"x" * 10)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


async def test_s3_transport_errors_are_storage_errors(s3_server):
    from talix_ray.objectstore.s3 import S3ObjectStore

    # TLS spoken to a plain-HTTP server: an SSLError, outside the errors mapped before
    tls = s3_server.endpoint.replace("http://", "https://")
    store = S3ObjectStore(s3_server.bucket, "tls", **{**s3_server.store_options(),
                                                      "endpoint_url": tls, "max_attempts": 1})
    ops = {"create": (store.create("k", b"x"), AmbiguousWrite),
           "put_if_match": (store.put_if_match("k", b"x", '"e"'), AmbiguousWrite),
           "get": (store.get("k"), StorageError),
           "list": (store.list(""), StorageError),
           "delete": (store.delete("k"), StorageError)}
    for name, (call, expected) in ops.items():
        with pytest.raises(expected) as caught:
            await call
        assert not isinstance(caught.value, botocore.exceptions.BotoCoreError), name
        assert "SSL" in str(caught.value), name
    await store.close()
    # a response body cut short: botocore raises while the body is read
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TruncatingS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        store = S3ObjectStore("bucket", "", endpoint_url=f"http://127.0.0.1:{server.server_port}",
                              access_key="k", secret_key="s", max_attempts=1)
        with pytest.raises(StorageError) as caught:
            await store.get("k")
        assert not isinstance(caught.value, botocore.exceptions.BotoCoreError)
        await store.close()
    finally:
        server.shutdown()
        server.server_close()


LISTED = ["a/v", "a/w-", "a/w/1", "a/w/2", "a/x-1", "a/x.b", "a/x/1", "a/x/2", "a/x/z/1", "a/x0",
          "a/y"]


async def test_list_all_is_complete_and_unique_in_any_server_order(object_store):
    # SeaweedFS lists folder by folder ("a/w/1" before "a/w-"): pages must follow its order
    for key in LISTED:
        await object_store.create(key, b"1")
    for limit in (1, 2, 3, 1000):
        flat = await object_store.list_all("a/", limit=limit)
        assert flat.keys == LISTED, limit
        level = await object_store.list_all("a/", delimiter="/", limit=limit)
        assert level.keys == ["a/v", "a/w-", "a/x-1", "a/x.b", "a/x0", "a/y"], limit
        assert level.prefixes == ["a/w/", "a/x/"], limit


class _StuckServer(MemoryObjectStore):
    """A misbehaving server (none here does this): every page says 'more', same token."""

    async def list(self, prefix, *, start_after=None, delimiter=None, limit=1000, token=None):
        page = await super().list(prefix, start_after=start_after, delimiter=delimiter,
                                  limit=limit)
        return Listing(page.keys, page.prefixes, True, "same")


async def test_list_all_never_loops_on_a_server_that_does_not_progress():
    store = _StuckServer()
    await store.create("p/1", b"1")
    with pytest.raises(StorageError, match="does not progress"):
        await asyncio.wait_for(store.list_all("p/"), 5)


def test_the_new_settings_are_documented():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for name in ("TALIX_REMEMBER_COMMANDS", "TALIX_MAX_EVENT_BYTES", "TALIX_MAX_COMMIT_BYTES",
                 "TALIX_WRITER_HEADS_BYTES", "TALIX_SEGMENT_CACHE_BYTES", "snapshot_version",
                 "TALIX_INDEX_MEMTABLE_BYTES", "TALIX_INDEX_LAG_SEGMENTS",
                 "TALIX_INDEX_TABLE_BYTES", "TALIX_INDEX_CACHE_BYTES"):
        assert name in readme, name
