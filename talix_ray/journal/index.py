"""The load index of one partition: an LSM tree on object storage (DESIGN §3).

The log is the truth and the write-ahead log; the index re-sorts the partition's events by
(store, aggregate id, version) so that loading an aggregate, finding its head and listing
ids cost a bounded number of requests whatever the number of aggregates:

* the **memtable** (memory) holds what the segments above the manifest's ``seq`` added;
* **runs** of sorted **tables** (objects ``index/{p}/t-…``, :mod:`.table`) hold the rest, the
  newest run first; each table has a block index and a Bloom filter over its aggregates, so an
  aggregate that a table does not hold costs no request;
* the **manifest** ``index/{p}/manifest`` (compare-and-swap) names the runs and the last
  segment they cover (``seq``) and carries the epoch of the partition's writer; a writer takes
  it when it opens, so an older writer can no longer change it.

The writer flushes its memtable as a new run when it reaches ``index_memtable_bytes`` (or
``index_lag_segments`` segments): one table PUT and one manifest PUT. Runs of the same size
tier are merged by compaction (``index_fanout`` at a time), streaming, in tables of at most
``index_table_bytes``. A restart reads the segments above ``seq`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import logging
import random
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from ..model.errors import CorruptObject, Fenced, StorageError
from ..model.events import StoredEvent
from ..objectstore import ObjectExists, ObjectNotFound, ObjectStore, PreconditionFailed
from . import format as fmt
from . import table as tb
from .base import Commit
from .memtable import Memtable

log = logging.getLogger("talix.journal")
T = TypeVar("T")
Run = list[tb.TableRef]
_PY_FACTOR = 4        # memory a decoded block takes, per stored byte (measured: ~3-4)
_READ_CHUNK = 1 << 20  # compaction reads its inputs this many bytes at a time
_MAX_GET = 8 << 20     # a lookup fetches consecutive blocks in ranged GETs of at most this


@dataclass(frozen=True, slots=True)
class IndexPolicy:
    """Sizes of the load index (settings ``TALIX_INDEX_*``)."""

    memtable_bytes: int = 4 << 20
    lag_segments: int = 256
    table_bytes: int = 32 << 20
    block_bytes: int = 64 << 10
    fanout: int = 4
    max_runs: int = 12
    cache_bytes: int = 64 << 20


@dataclass(slots=True)
class Manifest:
    """The runs of a partition's index, the last segment they cover and the writer's epoch."""

    epoch: int = 0
    seq: int = 0
    runs: list[Run] = field(default_factory=list)
    next: int = 0
    write: str = ""
    etag: str | None = None

    def encode(self) -> bytes:
        """The manifest object."""
        return fmt.dumps({"epoch": self.epoch, "seq": self.seq, "next": self.next,
                          "w": self.write, "runs": [[t.to_json() for t in r] for r in self.runs]})

    @classmethod
    def decode(cls, key: str, body: bytes, etag: str) -> Manifest:
        """Parse a manifest; :class:`CorruptObject` naming ``key`` if damaged."""
        obj = fmt.loads(key, body, "index manifest")
        try:
            return cls(int(obj["epoch"]), int(obj["seq"]),
                       [[tb.TableRef.from_json(t) for t in r] for r in obj["runs"]],
                       int(obj["next"]), str(obj.get("w", "")), etag)
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptObject(f"{key}: damaged index manifest ({exc!r})") from None

    def tables(self) -> list[str]:
        """The keys of every table it names."""
        return [t.key for r in self.runs for t in r]


class TableGone(StorageError):
    """A table named by an older manifest was removed by compaction: read the manifest again."""


class BlockCache:
    """Table metas and blocks, least recently used first out, bounded in bytes."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.bytes = 0
        self._items: OrderedDict[tuple[str, int], tuple[Any, int]] = OrderedDict()

    def get(self, key: tuple[str, int]) -> Any:
        """A cached item or ``None``."""
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: tuple[str, int], value: Any, size: int) -> None:
        """Keep an item (not one larger than the whole budget)."""
        if size > self.budget or key in self._items:
            return
        self._items[key] = (value, size)
        self.bytes += size
        while self.bytes > self.budget:
            _, (_, gone) = self._items.popitem(last=False)
            self.bytes -= gone


async def with_retries(what: str, op: Callable[[], Awaitable[T]], deadline: float = 60.0) -> T:
    """Run ``op()`` again on transient storage errors, with backoff, until ``deadline`` s."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    delay = 0.01
    while True:
        try:
            return await op()
        except TableGone:
            raise
        except StorageError as exc:
            if loop.time() + delay > end:
                raise
            log.debug("%s: %s; retrying", what, exc)
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)


class IndexReader:
    """Reads a partition's manifest and tables (metas and blocks through a shared cache)."""

    def __init__(self, store: ObjectStore, partition: int, cache: BlockCache) -> None:
        self.store = store
        self.p = partition
        self.cache = cache
        self.key = fmt.manifest_key(partition)

    async def read_manifest(self) -> Manifest:
        """The stored manifest (an empty one if there is none yet)."""
        try:
            obj = await with_retries("index manifest", lambda: self.store.get(self.key))
        except ObjectNotFound:
            return Manifest()
        return Manifest.decode(self.key, obj.body, obj.etag)

    async def meta(self, ref: tb.TableRef) -> tb.TableMeta:
        """A table's block index and filter (one ranged GET, then cached)."""
        cached = self.cache.get((ref.key, -1))
        if isinstance(cached, tb.TableMeta):  # what (key, -1) holds: the table's meta
            return cached
        raw = await self._range(ref.key, ref.meta_at, ref.size - ref.meta_at)
        meta = tb.decode_meta(ref.key, raw)
        self.cache.put((ref.key, -1), meta, meta.size)
        return meta

    async def _range(self, key: str, start: int, length: int) -> bytes:
        try:
            raw: bytes = await with_retries(f"get {key}", lambda: self.store.get_range(
                key, start, length))
        except ObjectNotFound:
            raise TableGone(f"{key} was compacted away") from None
        if len(raw) != length:
            raise CorruptObject(f"{key}: {len(raw)} bytes at {start} where the index "
                                f"expects {length}")
        return raw

    async def blocks(self, ref: tb.TableRef, meta: tb.TableMeta, which: range
                     ) -> list[tb.Entry]:
        """The entries of blocks ``which`` (consecutive uncached blocks in one ranged GET)."""
        out: list[tb.Entry] = []
        pending: list[int] = []

        async def fetch() -> None:
            if not pending:
                return
            start = meta.offsets[pending[0]]
            end = meta.offsets[pending[-1]] + meta.lengths[pending[-1]]
            raw = await self._range(ref.key, start, end - start)
            for i in pending:
                a = meta.offsets[i] - start
                entries = tb.decode_block(ref.key, raw[a:a + meta.lengths[i]])
                self.cache.put((ref.key, i), entries, meta.lengths[i] * _PY_FACTOR)
                out.extend(entries)
            pending.clear()

        for i in which:
            cached = self.cache.get((ref.key, i))
            if cached is not None:
                await fetch()
                out.extend(cached)
                continue
            if pending and meta.offsets[i] + meta.lengths[i] - meta.offsets[pending[0]] \
                    > _MAX_GET:
                await fetch()
            pending.append(i)
        await fetch()
        return out

    # -- one run ------------------------------------------------------------------------------
    async def run_range(self, run: Run, lo: tb.Key, hi: tb.Key, agg: bytes | None
                        ) -> list[tb.Entry]:
        """The entries of ``run`` in ``[lo, hi)`` (tables whose filter rules ``agg`` out are
        skipped without a request once their meta is known)."""
        out: list[tb.Entry] = []
        for ref in run:
            if not ref.overlaps(lo, hi):
                continue
            meta = await self.meta(ref)
            if agg is not None and agg not in meta.bloom:
                continue
            entries = await self.blocks(ref, meta, meta.blocks_in(lo, hi))
            out.extend(e for e in entries if lo <= e[0] < hi)
        return out

    async def run_last(self, run: Run, lo: tb.Key, hi: tb.Key, agg: bytes
                       ) -> tb.Entry | None:
        """The last entry of ``run`` in ``[lo, hi)`` (one block at most)."""
        for ref in reversed(run):
            if not ref.overlaps(lo, hi):
                continue
            meta = await self.meta(ref)
            if agg not in meta.bloom:
                continue
            which = meta.blocks_in(lo, hi)
            if not which:
                continue
            entries = await self.blocks(ref, meta, range(which[-1], which[-1] + 1))
            for e in reversed(entries):
                if lo <= e[0] < hi:
                    return e
        return None

    async def run_page(self, run: Run, lo: tb.Key, hi: tb.Key, limit: int) -> list[tb.Entry]:
        """The first ``limit`` entries of ``run`` in ``[lo, hi)``, a block at a time."""
        out: list[tb.Entry] = []
        for ref in run:
            if not ref.overlaps(lo, hi):
                continue
            meta = await self.meta(ref)
            for i in meta.blocks_in(lo, hi):
                for e in await self.blocks(ref, meta, range(i, i + 1)):
                    if lo <= e[0] < hi:
                        out.append(e)
                        if len(out) >= limit:
                            return out
        return out

    async def run_entries(self, run: Run) -> AsyncIterator[tb.Entry]:
        """Every entry of ``run`` in order, read ``_READ_CHUNK`` bytes at a time (uncached:
        what compaction reads)."""
        for ref in run:
            meta = await self.meta(ref)
            i, n = 0, len(meta.offsets)
            while i < n:
                j = i + 1
                while j < n and meta.offsets[j] + meta.lengths[j] - meta.offsets[i] \
                        <= _READ_CHUNK:
                    j += 1
                start = meta.offsets[i]
                raw = await self._range(ref.key, start,
                                        meta.offsets[j - 1] + meta.lengths[j - 1] - start)
                for k in range(i, j):
                    a = meta.offsets[k] - start
                    for entry in tb.decode_block(ref.key, raw[a:a + meta.lengths[k]]):
                        yield entry
                i = j


@dataclass(frozen=True, slots=True)
class Sources:
    """What a lookup reads: memtables and runs, each list newest first."""

    mems: list[Memtable]
    runs: list[Run]


def _events_of(key: str, store: str, agg: str, entries: list[tb.Entry]) -> list[StoredEvent]:
    return [fmt.decode_event(key, store, agg, int(k[4]), v) for k, v in entries]


async def read_events(reader: IndexReader, src: Sources, store: str, agg: str,
                      after: int) -> list[StoredEvent]:
    """The aggregate's events above ``after``, in order, checked consecutive.

    Every source holds a consecutive range of the stream, newer sources the newer versions, so
    the sources are read newest first, each below the lowest version found so far, and the
    reading stops once it reaches ``after``.
    """
    found: dict[int, StoredEvent] = {}
    low: int | None = None
    for mem in src.mems:
        for e in mem.stream(store, agg):
            if e.version > after and (low is None or e.version < low):
                found[e.version] = e
        if found:
            low = min(found)
        if low == after + 1:
            break
    if low != after + 1:
        bloom = tb.bloom_key(store, agg)
        hi_key = ("a", store, agg, 1)
        for run in src.runs:
            hi = tb.event_key(store, agg, low) if low is not None else hi_key
            entries = await reader.run_range(run, tb.event_key(store, agg, after + 1), hi, bloom)
            for e in _events_of(fmt.index_prefix(reader.p), store, agg, entries):
                found.setdefault(e.version, e)
            if found:
                low = min(found)
            if low == after + 1:
                break
    events = [found[v] for v in sorted(found)]
    for i, e in enumerate(events):
        if e.version != after + 1 + i:
            raise CorruptObject(f"stream {store}/{agg} in {fmt.index_prefix(reader.p)}: "
                                f"version {e.version} found where {after + 1 + i} was expected")
    return events


async def read_head(reader: IndexReader, src: Sources, store: str, agg: str) -> int:
    """The version of the aggregate's last event (0 if it has none)."""
    for mem in src.mems:
        stream = mem.stream(store, agg)
        if stream:
            return stream[-1].version
    bloom = tb.bloom_key(store, agg)
    for run in src.runs:
        last = await reader.run_last(run, ("a", store, agg, 0), ("a", store, agg, 1), bloom)
        if last is not None:
            return int(last[0][4])
    return 0


async def read_snapshots(reader: IndexReader, src: Sources, store: str, agg: str
                         ) -> dict[tb.Key, Any]:
    """The aggregate's live snapshot entries (the newest source wins; tombstones hide)."""
    merged: dict[tb.Key, Any] = {}
    for mem in src.mems:
        for k, v in mem.snapshots(store, agg).items():
            merged.setdefault(k, v)
    bloom = tb.bloom_key(store, agg)
    lo, hi = tb.snapshots_lo(store, agg), tb.snapshots_hi(store, agg)
    found = await asyncio.gather(*(reader.run_range(run, lo, hi, bloom) for run in src.runs))
    for entries in found:
        for k, v in entries:
            merged.setdefault(k, v)
    return {k: v for k, v in merged.items() if v is not None}


async def read_ids(reader: IndexReader, src: Sources, store: str, after: str | None,
                   limit: int) -> list[str]:
    """A page of the store's aggregate ids above ``after``."""
    ids: set[str] = set()
    for mem in src.mems:
        ids.update(mem.ids(store, after, limit))
    lo, hi = tb.ids_lo(store, after), tb.ids_hi(store)
    pages = await asyncio.gather(*(reader.run_page(run, lo, hi, limit) for run in src.runs))
    for entries in pages:
        ids.update(str(k[2]) for k, _ in entries)
    return sorted(ids)[:limit]


def tier_of(size: int, base: int, fanout: int) -> int:
    """The size tier of a run: 0 below ``fanout * base`` bytes (a memtable's table, give or
    take), then one more per ``fanout`` times."""
    tier, limit = 0, max(base, 1) * fanout
    while size >= limit:
        tier += 1
        limit *= fanout
    return tier


def pick_compaction(runs: list[Run], base: int, fanout: int, max_runs: int
                    ) -> tuple[int, int] | None:
    """The runs to merge next, ``(first, count)`` (newest first), or ``None``: ``fanout``
    consecutive runs of one size tier (the smallest such tier), else — beyond ``max_runs`` —
    the consecutive ``fanout`` with the fewest bytes."""
    sizes = [sum(t.size for t in r) for r in runs]
    tiers = [tier_of(s, base, fanout) for s in sizes]
    best: tuple[int, int] | None = None
    for i in range(len(runs) - fanout + 1):
        if len(set(tiers[i:i + fanout])) == 1 and (best is None or tiers[i] < best[0]):
            best = (tiers[i], i)
    if best is not None:
        return best[1], fanout
    if len(runs) > max_runs:
        i = min(range(len(runs) - fanout + 1), key=lambda j: sum(sizes[j:j + fanout]))
        return i, fanout
    return None


class PartitionIndex:
    """The writer's side of a partition's index: memtables, flushes, compaction, the manifest.

    Only the partition's current writer changes the manifest: :meth:`take` stamps its epoch
    into it, and a manifest that changed under an older writer fences that writer's index.
    """

    def __init__(self, store: ObjectStore, partition: int, policy: IndexPolicy,
                 reader: IndexReader, retry_deadline: float = 60.0) -> None:
        self.store = store
        self.p = partition
        self.policy = policy
        self.reader = reader
        self.retry_deadline = retry_deadline
        self.epoch = 0
        self.manifest = Manifest()
        self.active = Memtable()
        self.frozen: list[Memtable] = []
        self._flushing: asyncio.Task[None] | None = None
        self._backoff = False   # the flush task waits before trying again
        self._once = False      # a caller waits for one attempt (flush): no retry loop
        self._compacting: asyncio.Task[None] | None = None
        self._manifest_lock = asyncio.Lock()
        self._tables_written = 0
        self.error: str | None = None   # the last failure of a flush or compaction
        self.failures = 0
        self.fenced: Fenced | None = None
        self.flushes = 0
        self.compactions = 0

    # -- start-up -----------------------------------------------------------------------------
    async def take(self, epoch: int) -> int:
        """Stamp ``epoch`` into the manifest (fencing older writers' index); returns the last
        segment the tables cover. Tables no manifest names (a write that crashed before its
        manifest update, a fenced writer's) are deleted."""
        self.epoch = epoch
        while True:
            m = await self.reader.read_manifest()
            if m.epoch > epoch:
                raise Fenced(f"partition {self.p}: the index belongs to epoch {m.epoch}, "
                             f"this writer is epoch {epoch}")
            m.epoch = epoch
            try:
                await self._put_manifest(m)
                break
            except PreconditionFailed:
                continue
        self.active = Memtable(self.manifest.seq)
        await self._sweep()
        return self.manifest.seq

    async def _sweep(self) -> None:
        named = set(self.manifest.tables())
        try:
            listing = await with_retries("list index", lambda: self.store.list_all(
                fmt.index_prefix(self.p)), self.retry_deadline)
        except StorageError as exc:  # the next start tries again
            log.warning("partition %d: index tables not swept: %s", self.p, exc)
            return
        for key in listing.keys:
            if key.rsplit("/", 1)[1].startswith("t-") and key not in named:
                with contextlib.suppress(StorageError):
                    await self.store.delete(key)

    # -- the manifest -------------------------------------------------------------------------
    async def _put_manifest(self, m: Manifest) -> None:
        """Replace the manifest with ``m`` (compare-and-swap on the one read or written last);
        :class:`PreconditionFailed` if another writer changed it, resolving lost responses by
        reading back."""
        m.write = uuid.uuid4().hex
        body = m.encode()
        loop = asyncio.get_running_loop()
        end = loop.time() + self.retry_deadline
        while True:
            try:
                if m.etag is None:
                    etag = await self.store.create(self.reader.key, body)
                else:
                    etag = await self.store.put_if_match(self.reader.key, body, m.etag)
                m.etag = etag
                self.manifest = m
                return
            except (ObjectExists, PreconditionFailed, StorageError) as exc:
                stored = await self.reader.read_manifest()
                if stored.write == m.write:  # ours landed; its response was lost
                    m.etag = stored.etag
                    self.manifest = m
                    return
                if isinstance(exc, StorageError) and stored.etag == m.etag \
                        and loop.time() < end:
                    await asyncio.sleep(0.05 * (0.5 + random.random()))
                    continue  # ours did not land: again
                if isinstance(exc, StorageError) and stored.etag == m.etag:
                    raise
                raise PreconditionFailed(f"{self.reader.key} changed") from None

    async def _commit(self, change: Callable[[list[Run]], list[Run]], seq: int | None) -> None:
        """Apply ``change`` to the runs (and move ``seq``) in a new manifest version."""
        async with self._manifest_lock:
            if self.fenced is not None:
                raise self.fenced
            cur = self.manifest
            new = Manifest(cur.epoch, max(cur.seq, seq or 0), change(cur.runs),
                           max(cur.next, self._tables_written), "", cur.etag)
            try:
                await self._put_manifest(new)
            except PreconditionFailed:
                stored = await self.reader.read_manifest()
                self.fenced = Fenced(f"partition {self.p}: the index was taken by epoch "
                                     f"{stored.epoch} (this writer is epoch {self.epoch})")
                raise self.fenced from None

    # -- the memtable -------------------------------------------------------------------------
    def sources(self) -> Sources:
        """What lookups read now (consistent: taken without awaiting)."""
        return Sources([self.active, *reversed(self.frozen)], list(self.manifest.runs))

    async def query(self, lookup: Callable[[Sources], Awaitable[T]]) -> T:
        """Run ``lookup`` on the current sources (again if compaction removed a table it
        was reading meanwhile)."""
        for attempt in range(5):
            try:
                return await lookup(self.sources())
            except TableGone:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def apply(self, seq: int, commits: tuple[Commit, ...] | list[Commit],
              sizes: list[int] | None = None) -> None:
        """Add a segment the writer wrote or read; flush when the memtable is full."""
        self.active.add(seq, commits, sizes)
        if self.active.bytes >= self.policy.memtable_bytes or \
                seq - self.covered_seq() >= self.policy.lag_segments:
            self.flush_later()

    def covered_seq(self) -> int:
        """The last segment in the tables or in a memtable being written."""
        return self.frozen[-1].seq if self.frozen else self.manifest.seq

    def put_snapshot(self, key: tb.Key, value: Any) -> None:
        """Keep (or with ``None`` delete) a snapshot entry."""
        size = len(orjson.dumps(value)) if value is not None else 0
        self.active.put_snapshot(key, value, size)
        if self.active.bytes >= self.policy.memtable_bytes:
            self.flush_later()

    @property
    def unflushed_bytes(self) -> int:
        """Bytes held by the memtables."""
        return self.active.bytes + sum(m.bytes for m in self.frozen)

    async def room(self) -> None:
        """Backpressure: hold the writer's next segment while the memtables hold more than
        twice their budget (a flush behind, or failing: memory stays bounded either way)."""
        limit = 2 * self.policy.memtable_bytes
        while self.unflushed_bytes > limit and self.fenced is None:
            task = self._flushing
            if task is None or task.done():
                self.flush_later()
                task = self._flushing
                if task is None or task.done():
                    return  # nothing to flush (everything is frozen and written)
            await asyncio.wait([task], timeout=1.0)

    # -- flushing -----------------------------------------------------------------------------
    def flush_later(self) -> None:
        """Freeze the memtable and write it as a run, off the command path."""
        if self.fenced is not None:
            return
        if len(self.active) or self.active.seq > self.covered_seq():
            self.frozen.append(self.active)
            self.active = Memtable(self.active.seq)
        if self.frozen and (self._flushing is None or self._flushing.done()):
            self._flushing = asyncio.ensure_future(self._flush_all())

    async def _flush_all(self) -> None:
        while self.frozen and self.fenced is None:
            mt = self.frozen[0]
            try:
                entries = mt.entries()
                run = [await self._write_table(entries)] if entries else []
                await self._commit(functools.partial(_prepend, run), mt.seq)
            except Fenced:
                log.warning("partition %d: index fenced; this writer steps down", self.p)
                return
            except Exception as exc:  # storage gone beyond the deadline: keep it, retry later
                self._failed("flush", exc)
                if self._once:
                    return
                self._backoff = True
                try:
                    await asyncio.sleep(min(300.0, 2.0 ** self.failures))
                finally:
                    self._backoff = False
                continue
            self.frozen.pop(0)
            self.flushes += 1
            self._recovered()
        self.compact_later()

    def _failed(self, what: str, exc: Exception) -> None:
        self.failures += 1
        self.error = f"{type(exc).__name__}: {exc}"
        log.error("partition %d: index %s failed (attempt %d: %s); %d bytes wait in memory "
                  "and a restart replays the log above segment %d", self.p, what,
                  self.failures, self.error, self.unflushed_bytes, self.manifest.seq)

    def _recovered(self) -> None:
        if self.error is not None:
            log.warning("partition %d: the index writes again", self.p)
        self.error, self.failures = None, 0

    async def _write_table(self, entries: list[tb.Entry]) -> tb.TableRef:
        builder, body, meta_at = await asyncio.to_thread(tb.build_table, entries,
                                                         self.policy.block_bytes)
        return await self._store_table(builder, body, meta_at)

    async def _store_table(self, builder: tb.TableBuilder, body: bytes, meta_at: int
                           ) -> tb.TableRef:
        self._tables_written = max(self._tables_written, self.manifest.next) + 1
        key = fmt.table_key(self.p, self.epoch, self._tables_written)

        async def create() -> None:
            with contextlib.suppress(ObjectExists):  # our own earlier attempt landed
                await self.store.create(key, body)

        await with_retries(f"table {key}", create, self.retry_deadline)
        return builder.ref(key, body, meta_at)

    async def flush(self) -> None:
        """Write everything in memory (and compact); raises if storage keeps failing."""
        task = self._flushing
        if task is not None and not task.done() and self._backoff:
            task.cancel()  # waiting after a failure: try now instead
            with contextlib.suppress(BaseException):
                await task
        self.flush_later()
        self._once = True
        try:
            while self._flushing is not None and not self._flushing.done():
                await asyncio.shield(self._flushing)
        finally:
            self._once = False
        if self.frozen and self.fenced is None:
            raise StorageError(f"partition {self.p}: index not written: {self.error}")
        while self._compacting is not None and not self._compacting.done():
            await asyncio.shield(self._compacting)

    # -- compaction ---------------------------------------------------------------------------
    def compact_later(self) -> None:
        """Merge runs of one size tier, off the command path."""
        if self.fenced is None and (self._compacting is None or self._compacting.done()):
            self._compacting = asyncio.ensure_future(self._compact_all())

    async def _compact_all(self) -> None:
        pol = self.policy
        while self.fenced is None:
            runs = self.manifest.runs
            pick = pick_compaction(runs, pol.memtable_bytes, pol.fanout, pol.max_runs)
            if pick is None:
                return
            first, count = pick
            inputs = runs[first:first + count]
            try:
                await self._compact(inputs, bottom=first + count == len(runs))
            except Fenced:
                return
            except Exception as exc:  # tried again after the next flush
                self._failed("compaction", exc)
                return

    async def _compact(self, inputs: list[Run], bottom: bool) -> None:
        outputs: Run = []
        builder = tb.TableBuilder(self.policy.block_bytes)
        n = 0
        async for key, value in self._merged(inputs, bottom):
            builder.add(key, value)
            n += 1
            if n % 2000 == 0:
                await asyncio.sleep(0)
            if builder.size >= self.policy.table_bytes:
                body, meta_at = await asyncio.to_thread(builder.finish)
                outputs.append(await self._store_table(builder, body, meta_at))
                builder = tb.TableBuilder(self.policy.block_bytes)
        if builder.entries:
            body, meta_at = await asyncio.to_thread(builder.finish)
            outputs.append(await self._store_table(builder, body, meta_at))
        want = [[t.key for t in r] for r in inputs]

        def change(runs: list[Run]) -> list[Run]:
            keys = [[t.key for t in r] for r in runs]
            for j in range(len(runs) - len(want) + 1):
                if keys[j:j + len(want)] == want:
                    return runs[:j] + ([outputs] if outputs else []) + runs[j + len(want):]
            raise StorageError("compaction inputs left the manifest")

        await self._commit(change, None)
        self.compactions += 1
        for table_key in (k for r in want for k in r):
            with contextlib.suppress(StorageError):
                await self.store.delete(table_key)

    async def _merged(self, inputs: list[Run], bottom: bool) -> AsyncIterator[tb.Entry]:
        """The entries of ``inputs`` (newest first) merged: one per key, the newest; at most
        the two newest snapshots per aggregate and fingerprint; no tombstones at the bottom."""
        iters = [self.reader.run_entries(run) for run in inputs]
        heap: list[tuple[tb.Key, int, Any]] = []
        for rank, it in enumerate(iters):
            first = await anext(it, None)
            if first is not None:
                heap.append((first[0], rank, first[1]))
        heapq.heapify(heap)
        group: list[tb.Entry] = []
        group_id: tuple[Any, ...] | None = None

        def flush_group() -> list[tb.Entry]:
            live = [k for k, v in group if v is not None]
            keep = set(live[-2:])
            return [(k, v) for k, v in group if k in keep or (v is None and not bottom)]

        while heap:
            key, rank, value = heapq.heappop(heap)
            nxt = await anext(iters[rank], None)
            if nxt is not None:
                heapq.heappush(heap, (nxt[0], rank, nxt[1]))
            while heap and heap[0][0] == key:  # the same key in an older run: shadowed
                _, older, _ = heapq.heappop(heap)
                nxt = await anext(iters[older], None)
                if nxt is not None:
                    heapq.heappush(heap, (nxt[0], older, nxt[1]))
            is_snapshot = key[0] == "a" and key[3] == 1
            gid = (key[1], key[2], key[4]) if is_snapshot else None
            if group and gid != group_id:
                for entry in flush_group():
                    yield entry
                group = []
            if is_snapshot:
                group_id = gid
                group.append((key, value))
                continue
            group_id = None
            if value is None and bottom:
                continue
            yield key, value
        for entry in flush_group():
            yield entry

    async def close(self) -> None:
        """Stop background work (what is not flushed is replayed from the log)."""
        for task in (self._flushing, self._compacting):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task


def _prepend(run: Run, runs: list[Run]) -> list[Run]:
    """The manifest's runs with ``run`` (a new table's run, if any) in front."""
    return ([run] if run else []) + runs
