"""The journal on object storage: a partitioned log of segments, its load index (with the
snapshots), consumer checkpoints and dead letters (DESIGN §3)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from ..model.errors import ConfigurationError, Conflict, CorruptObject, StorageError
from ..model.events import StoredEvent
from ..model.names import check_name
from ..objectstore import (
    ObjectExists,
    ObjectNotFound,
    ObjectStore,
    PreconditionFailed,
)
from . import format as fmt
from . import table as tb
from .base import Commit, Journal, Segment, SegmentColumns, Snapshot
from .index import (
    BlockCache,
    IndexReader,
    Manifest,
    Sources,
    TableGone,
    read_events,
    read_ids,
    read_snapshots,
)
from .memtable import Memtable
from .writer import PartitionWriter, WriterPolicy, with_retries

log = logging.getLogger("talix.journal")

DEFAULT_PARTITIONS = 4
T = TypeVar("T")
S = TypeVar("S")  # what a segment is read as: a Segment or its columns
Lookup = Callable[[IndexReader, Sources], Awaitable[T]]  # a read of one partition's index


def _decode_segment(key: str, body: bytes) -> Segment:
    return fmt.decode_segment(key, body).segment


def _as_segment(segment: Segment) -> Segment:
    return segment


class ObjectStoreJournal(Journal):
    """The journal contract over an :class:`ObjectStore`.

    ``partitions`` is fixed when the store is first used (``talix.json``); ``owned`` lists the
    partitions this process writes (all by default — a Ray shard owns its own). Reading works
    from any process. Reading never changes what a writer believes.
    """

    def __init__(self, store: ObjectStore, *, partitions: int | None = None,
                 owned: Iterable[int] | None = None, policy: WriterPolicy | None = None,
                 poll_interval: float = 1.0, segment_cache_bytes: int | None = None,
                 own_store: bool = True) -> None:
        if partitions is not None and not 1 <= partitions <= 4096:
            raise ConfigurationError("partitions must be between 1 and 4096")
        self.store = store
        self._own_store = own_store
        self._requested_partitions = partitions
        self.partitions = partitions or DEFAULT_PARTITIONS
        self._owned_arg = None if owned is None else sorted(set(owned))
        self.policy = policy or WriterPolicy()
        self.poll_interval = poll_interval
        self._writers: dict[int, PartitionWriter] = {}
        self._opening: dict[int, asyncio.Task[PartitionWriter]] = {}
        # segments for consumers, with their stored size, bounded in bytes: those this
        # process's writers landed (as objects: they exist anyway) and those read from storage
        # (as stored, decoded on every read: a decoded copy takes several times its stored size,
        # and the garbage collector would scan every event in it again and again)
        self._segments: OrderedDict[tuple[int, int], tuple[Segment | bytes, int]] = \
            OrderedDict()
        self._segment_bytes = 0
        self._segment_cache = self.policy.segment_cache_bytes if segment_cache_bytes is None \
            else segment_cache_bytes
        self._background: set[asyncio.Task[Any]] = set()
        self._cache = BlockCache(self.policy.index_cache_bytes)
        self._readers: dict[int, IndexReader] = {}
        self._views: dict[int, _ReaderView] = {}
        self._heads: dict[int, int] = {}
        self._hints: dict[int, asyncio.Event] = {}
        self._opened = False

    # -- life cycle -------------------------------------------------------------------------
    async def open(self) -> None:
        if self._opened:
            return
        key = fmt.MANIFEST
        while True:
            try:
                obj = await with_retries("manifest", lambda: self.store.get(key))
                parts = fmt.field_of(key, obj.body, "manifest", "partitions", int)
                break
            except ObjectNotFound:
                want = self._requested_partitions or DEFAULT_PARTITIONS
                with contextlib.suppress(ObjectExists):
                    await with_retries("manifest", functools.partial(
                        self.store.create, key, fmt.dumps({"partitions": want})))
        if self._requested_partitions is not None and parts != self._requested_partitions:
            raise ConfigurationError(
                f"{self.store.url} was created with {parts} partitions, not "
                f"{self._requested_partitions}; the number is fixed at creation")
        self.partitions = parts
        owned = self._owned_arg if self._owned_arg is not None else range(parts)
        self.owned = [p for p in owned if 0 <= p < parts]
        self._opened = True

    async def close(self) -> None:
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
        for writer in list(self._writers.values()):
            await writer.close()
        self._writers.clear()
        self._opened = False
        if self._own_store:
            await self.store.close()

    async def writer(self, p: int) -> PartitionWriter:
        """This process's writer for partition ``p`` (opened on first use)."""
        w = self._writers.get(p)
        if w is not None:
            return w
        if p not in self.owned:
            raise ConfigurationError(f"partition {p} is not written by this journal "
                                     f"(owns {self.owned})")
        task = self._opening.get(p)
        if task is None:
            task = self._opening[p] = asyncio.ensure_future(self._open_writer(p))
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._opening.pop(p, None)

    async def _open_writer(self, p: int) -> PartitionWriter:
        w = PartitionWriter(self.store, p, self.policy, self._reader(p))
        w.on_segment = lambda seg, size: self._cache_segment(seg.partition, seg.seq, seg, size)
        await w.open()
        self._writers[p] = w
        return w

    # -- writing ----------------------------------------------------------------------------
    async def append(self, commit: Commit) -> int:
        w = await self.writer(self.partition_of(commit.store, commit.aggregate_id))
        return await w.append(commit)

    async def flush(self) -> None:
        """Write every writer's index memtable as tables (also done at close); raises
        :class:`StorageError` if storage keeps failing."""
        for w in list(self._writers.values()):
            await w.flush()

    def stuck_streams(self) -> dict[str, str]:
        """Partitions of this process whose load index cannot be written (``index/{p}`` →
        the last error). Their events are safe in the log and served from memory; a restart
        replays the log above the index."""
        return {k: why for w in self._writers.values() for k, why in w.stuck.items()}

    # -- the load index -----------------------------------------------------------------------
    def _reader(self, p: int) -> IndexReader:
        r = self._readers.get(p)
        if r is None:
            r = self._readers[p] = IndexReader(self.store, p, self._cache)
        return r

    async def _query(self, store: str, aggregate_id: str, lookup: Lookup[T]) -> T:
        """``lookup(reader, sources)`` on the aggregate's partition: through its writer when
        this process writes it (memtables and tables), else on the stored tables and the
        segments above them."""
        p = self.partition_of(store, aggregate_id)
        return await self._query_partition(p, lookup)

    async def _query_partition(self, p: int, lookup: Lookup[T]) -> T:
        w = self._writers.get(p)
        if w is not None:
            return await w.index.query(lambda src: lookup(w.index.reader, src))
        view = self._views.get(p)
        if view is None:
            view = self._views[p] = _ReaderView(self, p)
        for attempt in range(5):
            src = await view.sources(refresh=attempt > 0)
            try:
                return await lookup(view.reader, src)
            except TableGone:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    async def read_stream(self, store: str, aggregate_id: str, *,
                          after_version: int = 0) -> list[StoredEvent]:
        return await self._query(store, aggregate_id, lambda r, src: read_events(
            r, src, store, aggregate_id, max(after_version, 0)))

    async def _snapshots(self, store: str, aggregate_id: str
                         ) -> dict[tb.Key, Any]:
        return await self._query(store, aggregate_id, lambda r, src: read_snapshots(
            r, src, store, aggregate_id))

    def _snapshot_of(self, key: tb.Key, value: Any) -> Snapshot:
        name = f"{fmt.index_prefix(self.partition_of(key[1], key[2]))}{key[1]}/{key[2]}" \
               f"@{key[5]}#{key[4]}"
        try:
            return Snapshot(int(value["v"]), value["state"],
                            tuple((str(c), int(v), int(n)) for c, v, n in value["recent"]), name)
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptObject(f"{name}: damaged snapshot ({exc!r})") from None

    async def load_aggregate(self, store: str, aggregate_id: str, reducer_hash: str | None
                             ) -> tuple[Snapshot | None, list[StoredEvent]]:
        """The newest snapshot taken under ``reducer_hash`` and the events from its version
        on; snapshots taken under another fingerprint are deleted (by this process's writer
        of the partition, when there is one). An aggregate the index's filters rule out costs
        no request."""
        snap = None
        if reducer_hash:
            found = await self._snapshots(store, aggregate_id)
            usable = [k for k in found if k[4] == reducer_hash]
            stale = [k for k in found if k[4] != reducer_hash]
            if stale:  # taken under another fingerprint: no current code can use them
                self._later(self._delete_snapshots(store, aggregate_id, stale))
            if usable:
                newest = max(usable, key=lambda k: k[5])
                snap = self._snapshot_of(newest, found[newest])
        after = max(snap.version - 1, 0) if snap else 0
        return snap, await self.read_stream(store, aggregate_id, after_version=after)

    async def _delete_snapshots(self, store: str, aggregate_id: str,
                                keys: list[tb.Key]) -> None:
        """Tombstones for ``keys`` in the partition's index, when this process writes it."""
        p = self.partition_of(store, aggregate_id)
        if p not in self.owned:
            return
        try:
            w = await self.writer(p)
        except Exception as exc:  # a later load tries again
            log.debug("stale snapshots of %s/%s kept for now: %s", store, aggregate_id, exc)
            return
        for k in keys:
            w.index.put_snapshot(k, None)

    def _later(self, work: Any) -> None:
        """Run ``work`` off the caller's path (awaited at close)."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def list_aggregate_ids(self, store: str, *, limit: int = 100,
                                 after: str | None = None) -> list[str]:
        """A page of ids in lexical order: each partition's index walks its sorted ids from
        ``after`` (a block per run), whatever the number of aggregates."""
        check_name("event store", store)
        limit = max(0, limit)
        if limit == 0:
            return []
        pages = await asyncio.gather(*(self._query_partition(p, lambda r, src: read_ids(
            r, src, store, after, limit)) for p in range(self.partitions)))
        return sorted({i for page in pages for i in page})[:limit]

    # -- snapshots ----------------------------------------------------------------------------
    async def save_snapshot(self, store: str, aggregate_id: str, reducer_hash: str,
                            snapshot: Snapshot) -> None:
        """Keep a snapshot in the partition's load index (durable with its next table); a
        process that does not write the partition keeps none."""
        p = self.partition_of(store, aggregate_id)
        if p not in self.owned:
            log.debug("snapshot of %s/%s not kept: partition %d is written elsewhere",
                      store, aggregate_id, p)
            return
        w = await self.writer(p)
        w.index.put_snapshot(tb.snapshot_key(store, aggregate_id, reducer_hash,
                                             snapshot.version),
                             {"v": snapshot.version, "state": snapshot.state,
                              "recent": [list(r) for r in snapshot.recent_command_ids]})

    async def load_snapshot(self, store: str, aggregate_id: str, reducer_hash: str,
                            max_version: int | None = None) -> Snapshot | None:
        found = await self._snapshots(store, aggregate_id)
        keys = [k for k in found if k[4] == reducer_hash
                and (max_version is None or k[5] <= max_version)]
        if not keys:
            return None
        newest = max(keys, key=lambda k: k[5])
        return self._snapshot_of(newest, found[newest])

    # -- the log, for consumers ---------------------------------------------------------------
    async def head(self, partition: int) -> int:
        w = self._writers.get(partition)
        if w is not None:
            return w.head
        after = self._heads.get(partition, 0)
        while True:
            listing = await with_retries("list segments", functools.partial(
                self.store.list, fmt.segment_prefix(partition),
                start_after=fmt.segment_key(partition, after) if after else None))
            if listing.keys:
                after = fmt.seq_of(listing.keys[-1])
            if not listing.truncated:
                break
        self._heads[partition] = after
        return after

    def known_head(self, partition: int) -> int:
        w = self._writers.get(partition)
        return max(self._heads.get(partition, 0), w.head if w is not None else 0)

    async def read_segments(self, partition: int, after_seq: int,
                            limit: int = 100) -> list[Segment]:
        return await self._read_segments(partition, after_seq, limit, _decode_segment,
                                         _as_segment)

    async def read_segment_columns(self, partition: int, after_seq: int,
                                   limit: int = 100) -> list[SegmentColumns]:
        return await self._read_segments(partition, after_seq, limit,
                                         fmt.decode_segment_columns, SegmentColumns.of)

    async def _read_segments(self, partition: int, after_seq: int, limit: int,
                             decode: Callable[[str, bytes], S],
                             convert: Callable[[Segment], S]) -> list[S]:
        """Up to ``limit`` segments after ``after_seq``, from the cache or storage, each
        made by ``decode`` (from a stored body) or ``convert`` (from a decoded segment)."""
        out: list[S] = []
        seq = after_seq + 1
        while len(out) < limit:
            seg = self._cached(partition, seq, decode, convert)
            if seg is None:
                break
            out.append(seg)
            seq += 1
        if len(out) == limit:
            return out
        # Segments are contiguous from 1: read them by key, without a listing. Up to the
        # head this process knows (its writer's, or a writer's hint) they exist; above it, a
        # GET probes for the next one and finds out (a miss costs one GET, no LIST).
        w = self._writers.get(partition)
        known = max(self._heads.get(partition, 0), w.head if w is not None else 0)
        probe = 1
        while len(out) < limit:
            want = min(limit - len(out), 64)
            n = min(max(known - seq + 1, 0), want) or min(probe, want)
            keys = [fmt.segment_key(partition, s) for s in range(seq, seq + n)]
            bodies = await with_retries("get segments",
                                       functools.partial(self.store.get_many, keys))
            for k, obj in zip(keys, bodies, strict=True):
                if obj is None:
                    return out  # not there (yet): stop at what is contiguous
                out.append(decode(k, obj.body))  # CorruptObject unless it is this one
                self._cache_segment(partition, seq, obj.body, len(obj.body))
                seq += 1
            self._heads[partition] = max(self._heads.get(partition, 0), seq - 1)
            probe = min(probe * 4, 64)
        return out

    def _cached(self, partition: int, seq: int, decode: Callable[[str, bytes], S],
                convert: Callable[[Segment], S]) -> S | None:
        """A cached segment, made by ``decode`` if it is kept as stored, else by ``convert``."""
        hit = self._segments.get((partition, seq))
        if hit is None:
            return None
        seg = hit[0]
        if isinstance(seg, bytes):
            return decode(fmt.segment_key(partition, seq), seg)
        return convert(seg)

    def _cache_segment(self, partition: int, seq: int, segment: Segment | bytes,
                       size: int) -> None:
        """Keep a segment for the next consumer, the oldest going beyond the byte budget."""
        cached = self._segments
        if size > self._segment_cache or (partition, seq) in cached:
            return
        cached[(partition, seq)] = (segment, size)
        self._segment_bytes += size
        while self._segment_bytes > self._segment_cache:
            _, (_, gone) = cached.popitem(last=False)
            self._segment_bytes -= gone

    async def wait_for_segment(self, partition: int, after_seq: int, timeout: float) -> bool:
        w = self._writers.get(partition)
        if w is not None:
            return await w.wait(after_seq, timeout)
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            if await self.head(partition) > after_seq:
                return True
            left = end - loop.time()
            if left <= 0:
                return False
            hint = self._hints.setdefault(partition, asyncio.Event())
            with contextlib.suppress(TimeoutError):  # a writer's hint, or the poll interval
                async with asyncio.timeout(min(self.poll_interval, left)):
                    await hint.wait()
            hint.clear()

    def hint(self, partition: int, seq: int) -> None:
        """A writer elsewhere says segment ``seq`` of ``partition`` exists."""
        self._heads[partition] = max(self._heads.get(partition, 0), seq - 1)
        self._hints.setdefault(partition, asyncio.Event()).set()

    # -- checkpoints --------------------------------------------------------------------------
    async def load_checkpoint(self, consumer: str, partition: int) -> tuple[int, str | None]:
        check_name("consumer", consumer)
        key = fmt.checkpoint_key(consumer, partition)
        try:
            obj = await with_retries("checkpoint", lambda: self.store.get(key))
        except ObjectNotFound:
            return 0, None
        return fmt.field_of(key, obj.body, "checkpoint", "seq", int), obj.etag

    async def save_checkpoint(self, consumer: str, partition: int, seq: int,
                              token: str | None) -> str:
        check_name("consumer", consumer)
        key = fmt.checkpoint_key(consumer, partition)
        write_id = uuid.uuid4().hex
        body = fmt.dumps({"seq": seq, "w": write_id})
        for _ in range(20):
            try:
                if token is None:
                    return await self.store.create(key, body)
                return await self.store.put_if_match(key, body, token)
            except (ObjectExists, PreconditionFailed, StorageError) as exc:
                # our own write may have landed (a lost response, an SDK retry): read back
                try:
                    obj = await with_retries("checkpoint", lambda: self.store.get(key))
                except ObjectNotFound:
                    if isinstance(exc, StorageError):
                        await asyncio.sleep(0.05)
                        continue
                    raise Conflict(f"checkpoint {key} vanished") from None
                if fmt.loads(key, obj.body, "checkpoint").get("w") == write_id:
                    return obj.etag
                if isinstance(exc, StorageError) and obj.etag == token:
                    await asyncio.sleep(0.05)  # ours did not land: try again
                    continue
                raise Conflict(f"checkpoint {key} was moved by another copy of "
                               f"{consumer}") from None
        raise StorageError(f"checkpoint {key}: storage unavailable")

    # -- dead letters -------------------------------------------------------------------------
    async def put_deadletter(self, consumer: str, key: str, record: dict[str, Any]) -> None:
        okey = fmt.deadletter_key(check_name("consumer", consumer), key)
        body = fmt.dumps({"record": record})

        async def put() -> None:
            try:
                await self.store.create(okey, body)
            except ObjectExists:
                obj = await self.store.get(okey)
                await self.store.put_if_match(okey, body, obj.etag)

        await with_retries(f"dead letter {okey}", put)

    async def list_deadletters(self, consumer: str) -> list[dict[str, Any]]:
        prefix = fmt.deadletter_prefix(check_name("consumer", consumer))
        listing = await with_retries("list dead letters", lambda: self.store.list_all(prefix))
        out = []
        for k in sorted(listing.keys):
            try:
                obj = await with_retries("get dead letter", functools.partial(self.store.get, k))
            except ObjectNotFound:
                continue
            out.append(fmt.loads(k, obj.body, "dead letter")["record"])
        return out

    async def delete_deadletter(self, consumer: str, key: str) -> None:
        okey = fmt.deadletter_key(check_name("consumer", consumer), key)
        await with_retries("delete dead letter", lambda: self.store.delete(okey))



class _ReaderView:
    """A partition read by a process that does not write it: the stored manifest's tables and
    a memtable of the segments above them, read forward on every lookup (a GET that finds
    no new segment costs one request)."""

    def __init__(self, journal: ObjectStoreJournal, p: int) -> None:
        self.journal = journal
        self.p = p
        self.reader = journal._reader(p)
        self.manifest: Manifest | None = None
        self.tail = Memtable()
        self._lock = asyncio.Lock()

    async def sources(self, refresh: bool = False) -> Sources:
        """The current manifest's runs and the tail above it."""
        async with self._lock:
            policy = self.journal.policy
            if self.manifest is None or refresh or \
                    self.tail.bytes > 2 * policy.index_memtable_bytes or \
                    self.tail.seq - self.manifest.seq > 2 * policy.index_lag_segments:
                manifest = await self.reader.read_manifest()
                if self.manifest is None or manifest.etag != self.manifest.etag:
                    self.manifest = manifest
                    self.tail = Memtable(manifest.seq)
            await self._read_forward()
            return Sources([self.tail], list(self.manifest.runs))

    async def _read_forward(self) -> None:
        while True:
            seq = self.tail.seq + 1
            cached = self.journal._cached(self.p, seq, _decode_segment, _as_segment)
            if cached is not None:
                self.tail.add(seq, cached.commits)
                continue
            key = fmt.segment_key(self.p, seq)
            try:
                obj = await with_retries("get segment",
                                         functools.partial(self.journal.store.get, key))
            except ObjectNotFound:
                return
            rec = fmt.decode_segment(key, obj.body)
            self.journal._cache_segment(self.p, seq, obj.body, len(obj.body))
            self.tail.add(seq, rec.segment.commits)
