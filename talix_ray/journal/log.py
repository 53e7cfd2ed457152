"""The journal on object storage: a partitioned log of segments, per-aggregate chunks,
snapshots, consumer checkpoints and dead letters (DESIGN §3)."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from ..model.errors import ConfigurationError, Conflict, CorruptObject, StorageError
from ..model.events import StoredEvent
from ..model.names import check_name
from ..objectstore import (
    Listing,
    ObjectExists,
    ObjectNotFound,
    ObjectStore,
    PreconditionFailed,
)
from . import format as fmt
from .base import Commit, Journal, Segment, Snapshot
from .writer import PartitionWriter, WriterPolicy, with_retries

log = logging.getLogger("talix.journal")

DEFAULT_PARTITIONS = 4


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
        # segments read for consumers, with their stored size, bounded in bytes
        self._segments: OrderedDict[tuple[int, int], tuple[Segment, int]] = OrderedDict()
        self._segment_bytes = 0
        self._segment_cache = self.policy.segment_cache_bytes if segment_cache_bytes is None \
            else segment_cache_bytes
        self._background: set[asyncio.Task[Any]] = set()
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
                    await with_retries("manifest", lambda want=want: self.store.create(
                        key, fmt.dumps({"partitions": want})))
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
        w = PartitionWriter(self.store, p, self.policy, self.chunk_coverage)
        await w.open()
        self._writers[p] = w
        return w

    # -- writing ----------------------------------------------------------------------------
    async def append(self, commit: Commit) -> int:
        w = await self.writer(self.partition_of(commit.store, commit.aggregate_id))
        return await w.append(commit)

    async def passivated(self, store: str, aggregate_id: str) -> None:
        w = self._writers.get(self.partition_of(store, aggregate_id))
        if w is not None:
            w.chunk_later((store, aggregate_id))

    async def flush(self) -> None:
        """Chunk all tails and write watermarks (also done at close)."""
        for w in list(self._writers.values()):
            await w.flush()

    def stuck_streams(self) -> dict[str, str]:
        """Streams of this process's writers whose chunk keeps failing (``store/id`` → the
        last error). Their events are safe in the log and readable; the watermark of their
        partition waits below them until a retry succeeds."""
        return {f"{s}/{a}": why for w in self._writers.values() for (s, a), why in w.stuck.items()}

    # -- streams ------------------------------------------------------------------------------
    async def _chunk_keys(self, store: str, aggregate_id: str,
                          after_version: int = 0) -> list[tuple[int, int, str]]:
        """The chunks holding versions above ``after_version`` (sorted by first version).

        Chunk names start with their first version, so a listing that starts a little below
        ``after_version`` skips the history a snapshot made unnecessary; the window grows
        until it reaches the chunk holding ``after_version + 1`` (or the beginning).
        """
        prefix = fmt.stream_prefix(store, aggregate_id)
        span = 1024
        while True:
            start = after_version + 1 - span
            after_key = prefix + f"{start:012d}" if start > 1 else None
            listing = await with_retries("list chunks", lambda a=after_key: self.store.list_all(
                prefix, start_after=a))
            ranges = fmt.chunk_ranges(listing.keys)
            if after_key is None or (ranges and ranges[0][0] <= after_version + 1):
                return ranges
            span *= 8

    async def chunk_coverage(self, store: str, aggregate_id: str) -> int:
        """The last version held by the aggregate's chunks (0 if none)."""
        ranges = await self._chunk_keys(store, aggregate_id)
        return max((last for _, last, _ in ranges), default=0)

    async def _list_stream(self, store: str, aggregate_id: str) -> Listing:
        """One page of the aggregate's folder; listed by the partition's writer when it is
        here (the writer learns the stream's head from its own listing)."""
        writer = self._writers.get(self.partition_of(store, aggregate_id))
        if writer is not None:
            return await writer.list_stream((store, aggregate_id))
        prefix = fmt.stream_prefix(store, aggregate_id)
        return await with_retries("list stream", lambda: self.store.list(prefix))

    async def read_stream(self, store: str, aggregate_id: str, *,
                          after_version: int = 0) -> list[StoredEvent]:
        tail = await self._tail(store, aggregate_id)  # first: what leaves it is chunked by then
        ranges = await self._chunk_keys(store, aggregate_id, after_version)
        return await self._events(store, aggregate_id, after_version, tail, ranges)

    async def load_aggregate(self, store: str, aggregate_id: str, reducer_hash: str | None
                             ) -> tuple[Snapshot | None, list[StoredEvent]]:
        """One listing of the aggregate's folder finds its chunks and snapshots together
        (a new aggregate costs a single LIST)."""
        tail = await self._tail(store, aggregate_id)
        page = await self._list_stream(store, aggregate_id)
        snap = None
        if reducer_hash:
            if page.truncated:  # a long history: its snapshots sort last, list them directly
                every = fmt.snapshot_prefix(store, aggregate_id)
                found = (await with_retries("list snapshots",
                                            lambda: self.store.list_all(every))).keys
            else:
                found = [k for k in page.keys if fmt.is_snapshot(k)]
            mark = fmt.snapshot_prefix(store, aggregate_id, reducer_hash)
            usable = [k for k in found if k.startswith(mark)]
            stale = [k for k in found if not k.startswith(mark)]
            if stale:  # taken under another fingerprint: no current code can use them
                self._later(self._delete_all(stale))
            snap = await self._read_snapshot(max(usable)) if usable else None
        after = max(snap.version - 1, 0) if snap else 0
        ranges = await self._chunk_keys(store, aggregate_id, after) if page.truncated \
            else fmt.chunk_ranges(page.keys)
        return snap, await self._events(store, aggregate_id, after, tail, ranges)

    async def _tail(self, store: str, aggregate_id: str) -> list[StoredEvent]:
        p = self.partition_of(store, aggregate_id)
        writer = self._writers.get(p)
        if writer is not None:
            return writer.tail_events((store, aggregate_id))
        return await self._scan_tail(p, store, aggregate_id)

    async def _events(self, store: str, aggregate_id: str, after_version: int,
                      tail: list[StoredEvent], ranges: list[tuple[int, int, str]]
                      ) -> list[StoredEvent]:
        """Merge the tail and the chunks above ``after_version``; check the versions."""
        found: dict[int, StoredEvent] = {e.version: e for e in tail if e.version > after_version}
        low = min(found) if found else None
        wanted = [k for first, last, k in ranges
                  if last > after_version and (low is None or first < low)]
        bodies = await asyncio.gather(*(with_retries("get chunk", lambda k=k: self.store.get(k))
                                        for k in wanted))
        for k, obj in zip(wanted, bodies, strict=True):
            for e in fmt.decode_chunk(k, obj.body, store, aggregate_id):
                if e.version > after_version:
                    found.setdefault(e.version, e)
        events = [found[v] for v in sorted(found)]
        for i, e in enumerate(events):
            if e.version != after_version + 1 + i:
                raise CorruptObject(f"stream {store}/{aggregate_id}: version {e.version} "
                                    f"found where {after_version + 1 + i} was expected")
        return events

    async def _unchunked_commits(self, p: int) -> list[Commit]:
        """Without a local writer: the commits in segments above the partition's watermark
        (about ``chunk_lag`` segments: what the stream chunks do not hold yet)."""
        key = fmt.watermark_key(p)
        try:
            obj = await with_retries("watermark", lambda: self.store.get(key))
            after = fmt.field_of(key, obj.body, "watermark", "seq", int)
        except ObjectNotFound:
            after = 0
        out: list[Commit] = []
        while True:
            segments = await self.read_segments(p, after, 500)
            out += [c for seg in segments for c in seg.commits]
            if len(segments) < 500:
                return out
            after = segments[-1].seq

    async def _scan_tail(self, p: int, store: str, aggregate_id: str) -> list[StoredEvent]:
        """Without a local writer: the aggregate's events above the watermark."""
        return [e for c in await self._unchunked_commits(p)
                if c.store == store and c.aggregate_id == aggregate_id for e in c.events]

    async def list_aggregate_ids(self, store: str, *, limit: int = 100,
                                 after: str | None = None) -> list[str]:
        prefix = fmt.stream_prefix(store)
        listing = await with_retries("list streams", lambda: self.store.list_all(
            prefix, delimiter="/"))
        ids = {pfx[len(prefix):-1] for pfx in listing.prefixes}
        for p in range(self.partitions):
            w = self._writers.get(p)
            if w is not None:
                ids.update(a for (s, a) in w.tail if s == store)
            else:  # written elsewhere: the unchunked ids are in the segments above the mark
                ids.update(c.aggregate_id for c in await self._unchunked_commits(p)
                           if c.store == store)
        ordered = sorted(ids)
        if after is not None:
            ordered = ordered[bisect.bisect_right(ordered, after):]
        return ordered[:limit]

    # -- snapshots ----------------------------------------------------------------------------
    async def save_snapshot(self, store: str, aggregate_id: str, reducer_hash: str,
                            snapshot: Snapshot) -> None:
        key = fmt.snapshot_prefix(store, aggregate_id, reducer_hash) + f"{snapshot.version:012d}"
        body = fmt.dumps({"v": snapshot.version, "state": snapshot.state,
                          "recent": [list(r) for r in snapshot.recent_command_ids]})

        async def create() -> None:
            with contextlib.suppress(ObjectExists):
                await self.store.create(key, body)

        await with_retries(f"snapshot {key}", create)
        # keep the two newest of this fingerprint and none of another: loading lists this
        # folder, so it stays short (a snapshot no current code can use is only in the way)
        mark = fmt.snapshot_prefix(store, aggregate_id, reducer_hash)
        with contextlib.suppress(StorageError):
            listing = await self.store.list_all(fmt.snapshot_prefix(store, aggregate_id))
            ours = sorted(k for k in listing.keys if k.startswith(mark))
            await self._delete_all([k for k in listing.keys if not k.startswith(mark)]
                                   + ours[:-2])

    def _later(self, work: Any) -> None:
        """Run ``work`` off the caller's path (awaited at close)."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _delete_all(self, keys: list[str]) -> None:
        for key in keys:
            try:
                await self.store.delete(key)
            except StorageError as exc:  # the next save or load tries again
                log.debug("cannot delete %s: %s", key, exc)

    async def load_snapshot(self, store: str, aggregate_id: str, reducer_hash: str,
                            max_version: int | None = None) -> Snapshot | None:
        prefix = fmt.snapshot_prefix(store, aggregate_id, reducer_hash)
        listing = await with_retries("list snapshots", lambda: self.store.list_all(prefix))
        keys = sorted(k for k in listing.keys
                      if max_version is None or int(k.rsplit("-", 1)[1]) <= max_version)
        return await self._read_snapshot(keys[-1]) if keys else None

    async def _read_snapshot(self, key: str) -> Snapshot:
        obj = await with_retries("get snapshot", lambda: self.store.get(key))
        data = fmt.loads(key, obj.body, "snapshot")
        try:
            return Snapshot(int(data["v"]), data["state"],
                            tuple((str(c), int(v), int(n)) for c, v, n in data["recent"]), key)
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptObject(f"{key}: damaged snapshot ({exc!r})") from None

    # -- the log, for consumers ---------------------------------------------------------------
    async def head(self, partition: int) -> int:
        w = self._writers.get(partition)
        if w is not None:
            return w.head
        after = self._heads.get(partition, 0)
        while True:
            listing = await with_retries("list segments", lambda after=after: self.store.list(
                fmt.segment_prefix(partition),
                start_after=fmt.segment_key(partition, after) if after else None))
            if listing.keys:
                after = fmt.seq_of(listing.keys[-1])
            if not listing.truncated:
                break
        self._heads[partition] = after
        return after

    async def read_segments(self, partition: int, after_seq: int,
                            limit: int = 100) -> list[Segment]:
        out: list[Segment] = []
        cached = self._segments
        seq = after_seq + 1
        while len(out) < limit and (partition, seq) in cached:
            out.append(cached[(partition, seq)][0])
            seq += 1
        if len(out) == limit:
            return out
        listing = await with_retries("list segments", lambda: self.store.list(
            fmt.segment_prefix(partition),
            start_after=fmt.segment_key(partition, seq - 1) if seq > 1 else None,
            limit=limit - len(out)))
        keys = [k for k in listing.keys if fmt.seq_of(k) >= seq]
        bodies = await asyncio.gather(*(with_retries("get segment", lambda k=k: self.store.get(k))
                                        for k in keys))
        for k, obj in zip(keys, bodies, strict=True):
            if fmt.seq_of(k) != seq:
                break  # a gap in a listing: stop at what is contiguous
            rec = fmt.decode_segment(k, obj.body)  # CorruptObject unless its body is this one
            out.append(rec.segment)
            self._cache_segment(partition, seq, rec.segment, len(obj.body))
            seq += 1
        return out

    def _cache_segment(self, partition: int, seq: int, segment: Segment, size: int) -> None:
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
                obj = await with_retries("get dead letter", lambda k=k: self.store.get(k))
            except ObjectNotFound:
                continue
            out.append(fmt.loads(k, obj.body, "dead letter")["record"])
        return out

    async def delete_deadletter(self, consumer: str, key: str) -> None:
        okey = fmt.deadletter_key(check_name("consumer", consumer), key)
        await with_retries("delete dead letter", lambda: self.store.delete(okey))

