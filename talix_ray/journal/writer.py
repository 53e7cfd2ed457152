"""The journal writer of one partition: group commit by conditional create, fencing, index.

One writer per partition appends segments ``journal/{p}/{seq}`` with ``If-None-Match: *``.
It writes as soon as it is idle and, while a PUT is in flight, gathers the commits that
arrive into the next segment (no timer). Because a writer that creates seq n has read every
segment below n, its index of stream heads is authoritative for the expected-version check.
A 412 means another writer exists: read its segments, re-check the batch against them, reject
what now conflicts and retry at the next seq — or step down when the other writer carries a
newer epoch. A write with an unknown outcome is resolved by reading the segment back and
comparing batch ids.

Every segment the writer writes or reads goes into its partition's load index
(:mod:`.index`): the memtable first, sorted tables later, off the command path. A restarted
writer reads the segments above the index manifest's ``seq`` only.

The index of stream heads is bounded in bytes: a head may be forgotten and is looked up again
in the load index when needed (no request for an aggregate the index's filters rule out). A
head is only ever set by the writer itself — from a segment it applied or a lookup in its own
index — and a command whose expected version is above the head it knows makes the writer read
the log to its end before it decides (another writer may have appended since).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from ..model.errors import Fenced, StorageError, VersionConflict
from ..objectstore import ObjectExists, ObjectNotFound, ObjectStore, PreconditionFailed
from ..observability.metrics import SEGMENT_BYTES, SEGMENT_COMMITS
from . import format as fmt
from .base import Commit, Segment
from .index import IndexPolicy, IndexReader, PartitionIndex, read_head, with_retries

log = logging.getLogger("talix.journal")
Key = tuple[str, str]
_Pending = tuple[Commit, "asyncio.Future[int]", int]  # a commit, its caller, its size in bytes

__all__ = ["PartitionWriter", "WriterPolicy", "with_retries"]


@dataclass(frozen=True, slots=True)
class WriterPolicy:
    """Group commit, size limits, memory bounds and the load index of the journal."""

    max_batch: int = 2000
    retry_deadline: float = 60.0
    max_event_bytes: int = fmt.MAX_EVENT_BYTES   # one event as stored
    max_commit_bytes: int = fmt.MAX_COMMIT_BYTES  # one command's events; also a segment's
    heads_bytes: int = 64 * fmt.MiB               # the writer's index of stream heads
    segment_cache_bytes: int = 64 * fmt.MiB       # segments kept for consumers (as stored)
    index_memtable_bytes: int = 4 * fmt.MiB       # a partition's unflushed index, as stored
    index_lag_segments: int = 256                 # ... or this many segments: a restart's tail
    index_table_bytes: int = 32 * fmt.MiB         # largest index table compaction writes
    index_cache_bytes: int = 64 * fmt.MiB         # table metas and blocks a journal keeps
    index_fanout: int = 4                         # runs of one size tier merged together

    def index_policy(self) -> IndexPolicy:
        """The load index's part."""
        return IndexPolicy(memtable_bytes=self.index_memtable_bytes,
                           lag_segments=self.index_lag_segments,
                           table_bytes=self.index_table_bytes,
                           cache_bytes=self.index_cache_bytes, fanout=self.index_fanout)


def _head_bytes(key: Key) -> int:
    """What one entry of the head index costs (measured: ~250 bytes with a 12-byte id)."""
    return 240 + len(key[0]) + len(key[1])


class PartitionWriter:
    """Appends commits of one partition; owns its stream-head index and its load index."""

    def __init__(self, store: ObjectStore, partition: int, policy: WriterPolicy,
                 reader: IndexReader) -> None:
        self.store = store
        self.p = partition
        self.policy = policy
        self.index = PartitionIndex(store, partition, policy.index_policy(), reader,
                                    policy.retry_deadline)
        self.epoch = 0
        self.head = 0
        self.heads: OrderedDict[Key, int] = OrderedDict()  # least recently used first
        self._heads_bytes = 0
        self._evictions = 0  # heads forgotten so far: a lookup that saw one change is stale
        self.fenced: Fenced | None = None
        self._pending: deque[_Pending] = deque()
        self._flusher: asyncio.Task[None] | None = None
        self._signal = asyncio.Event()
        self.segments_written = 0
        self.commits_written = 0
        self.listeners: list[Any] = []  # called with (partition, seq) when a segment lands
        self.on_segment: Any = None  # called with (seq, segment, stored size) as one is applied

    @property
    def stuck(self) -> dict[str, str]:
        """Why the load index cannot be written (empty when it can): its events are safe in
        the log and readable from memory; a restart replays them."""
        return {f"index/{self.p:04d}": self.index.error} if self.index.error else {}

    # -- start-up -----------------------------------------------------------------------------
    async def open(self) -> None:
        """Take a new epoch (fencing older writers), take the index, read the log above it."""
        await with_retries("epoch", self._take_epoch)
        self.head = await self.index.take(self.epoch)
        await self._catch_up()

    async def _take_epoch(self) -> None:
        key = fmt.writer_key(self.p)
        while True:
            try:
                obj = await self.store.get(key)
            except ObjectNotFound:
                try:
                    await self.store.create(key, fmt.dumps({"epoch": 1}))
                    self.epoch = 1
                    return
                except ObjectExists:
                    continue
            epoch = fmt.field_of(key, obj.body, "writer record", "epoch", int) + 1
            try:
                await self.store.put_if_match(key, fmt.dumps({"epoch": epoch}), obj.etag)
                self.epoch = epoch
                return
            except PreconditionFailed:
                continue

    async def _catch_up(self) -> None:
        """Read and apply every segment above ``head``."""
        while True:
            listing = await with_retries("list segments", lambda: self.store.list(
                fmt.segment_prefix(self.p), start_after=fmt.segment_key(self.p, self.head)))
            keys = listing.keys
            if not keys:
                return
            bodies = await asyncio.gather(*(
                with_retries("get", functools.partial(self.store.get, k)) for k in keys))
            for key, obj in zip(keys, bodies, strict=True):
                if fmt.seq_of(key) != self.head + 1:
                    raise StorageError(f"{key}: segment gap after {self.head}")
                rec = fmt.decode_segment(key, obj.body)  # CorruptObject unless it is this one
                self._apply(rec.segment.seq, rec.segment.commits)
                self._segment_landed(rec.segment, len(obj.body))
                if rec.epoch > self.epoch:
                    self._fence(rec.epoch)
            if not listing.truncated:
                return

    # -- appending ----------------------------------------------------------------------------
    async def append(self, commit: Commit) -> int:
        """Queue a commit; returns its segment seq once the segment is durable.

        A commit whose ids or sizes storage cannot take is refused with ``ValidationError``
        before anything is queued.
        """
        if self.fenced is not None:
            raise self.fenced
        size = fmt.check_commit(commit, self.policy.max_event_bytes,
                                self.policy.max_commit_bytes)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((commit, fut, size))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop())
        return await fut

    async def _flush_loop(self) -> None:
        wrote = False
        while self._pending:
            if wrote:
                # Not a timer: one turn of the event loop lets the clients acknowledged a
                # moment ago submit their next commands, so they join this batch instead of
                # forming a second, half-size group that alternates with the first.
                await asyncio.sleep(0)
            wrote = True
            await self.index.room()  # memory stays bounded when the index falls behind
            batch: list[_Pending] = []
            size = 0
            while self._pending and len(batch) < self.policy.max_batch:
                if batch and size + self._pending[0][2] > self.policy.max_commit_bytes:
                    break  # a segment holds at most one commit's worth of bytes, or one commit
                batch.append(self._pending.popleft())
                size += batch[-1][2]
            try:
                await self._write(batch)
            except BaseException as exc:  # keep the writer alive; fail this batch
                for _, fut, _ in batch:
                    if not fut.done():
                        fut.set_exception(exc if isinstance(exc, Exception)
                                          else StorageError(f"writer stopped: {exc!r}"))
                if not isinstance(exc, Exception):
                    raise
            if self.fenced is not None:
                while self._pending:
                    _, fut, _ = self._pending.popleft()
                    if not fut.done():
                        fut.set_exception(self.fenced)

    def _known_head(self, key: Key) -> int | None:
        """A stream's head from memory: the index of heads, or the memtables."""
        v = self.heads.get(key)
        if v is not None:
            self.heads.move_to_end(key)
            return v
        for mem in self.index.sources().mems:
            stream = mem.stream(*key)
            if stream:
                return stream[-1].version
        return None

    async def head_of(self, key: Key) -> int:
        """The version of a stream as this writer knows it (looking it up in the load index
        when it does not: every event the writer applied is there, in memory or in tables)."""
        v = self._known_head(key)
        if v is not None:
            return v
        evictions = self._evictions
        v = await self.index.query(lambda src: read_head(self.index.reader, src, *key))
        if key in self.heads or evictions == self._evictions:  # else: v may be stale to keep
            self._set_head(key, v)
            v = self.heads[key]
            self._trim_heads()
        return v

    async def _write(self, batch: list[_Pending]) -> None:
        caught_up = False  # whether this writer has read the log to its end for this batch
        while batch:
            if self.fenced is not None:
                raise self.fenced
            accepted: list[_Pending] = []
            provisional: dict[Key, int] = {}
            behind = False
            for item in batch:
                commit, fut, _ = item
                if fut.done():
                    continue
                key = (commit.store, commit.aggregate_id)
                current = provisional.get(key)
                if current is None:
                    current = await self.head_of(key)
                    if commit.expected_version > current and not caught_up:
                        # the caller saw a version this writer has not read: another writer
                        # appended since; read the log to its end before deciding
                        behind = True
                        break
                if current != commit.expected_version:
                    fut.set_exception(VersionConflict(
                        f"{commit.store}/{commit.aggregate_id} is at version {current}, "
                        f"expected {commit.expected_version}", current_version=current))
                    continue
                provisional[key] = commit.last_version
                accepted.append(item)
            if behind:
                await self._catch_up()
                caught_up = True
                continue
            if not accepted:
                return
            commits = [c for c, _, _ in accepted]
            if await self._put_segment(commits, [size for _, _, size in accepted]):
                seq = self.head
                for _, fut, _ in accepted:
                    if not fut.done():
                        fut.set_result(seq)
                return
            batch = accepted  # another writer got the seq: re-check against its segments
            caught_up = True  # ... which _put_segment read to the end of the log

    async def _put_segment(self, commits: list[Commit], sizes: list[int]) -> bool:
        """Write the next segment; True if ours landed, False if another writer's did."""
        batch_id = uuid.uuid4().hex
        seq = self.head + 1
        body = fmt.encode_segment(self.p, seq, self.epoch, batch_id, commits)
        key = fmt.segment_key(self.p, seq)
        loop = asyncio.get_running_loop()
        end = loop.time() + self.policy.retry_deadline
        delay = 0.01
        while True:
            try:
                await self.store.create(key, body)
                outcome = "ours"
            except ObjectExists:
                outcome = await self._resolve(key, batch_id)
            except StorageError as exc:  # ambiguous or transient: did it land?
                log.debug("segment %s: %s; reading back", key, exc)
                outcome = await self._resolve(key, batch_id)
            if outcome == "ours":
                self._apply(seq, commits, sizes)
                self._segment_landed(Segment(self.p, seq, tuple(commits)), len(body))
                self.segments_written += 1
                self.commits_written += len(commits)
                SEGMENT_BYTES.observe(value=len(body))
                SEGMENT_COMMITS.observe(value=len(commits))
                return True
            if outcome == "theirs":
                await self._catch_up()
                return False
            if loop.time() > end:
                raise StorageError(f"segment {key}: storage unavailable for "
                                   f"{self.policy.retry_deadline}s")
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)

    async def _resolve(self, key: str, batch_id: str) -> str:
        """Read a segment back: ``ours``, ``theirs`` (applied) or ``absent``."""
        try:
            obj = await with_retries("read back", lambda: self.store.get(key),
                                     self.policy.retry_deadline)
        except ObjectNotFound:
            return "absent"
        rec = fmt.decode_segment(key, obj.body)
        if rec.batch == batch_id:
            return "ours"
        self._apply(rec.segment.seq, rec.segment.commits)
        self._segment_landed(rec.segment, len(obj.body))
        if rec.epoch > self.epoch:
            self._fence(rec.epoch)
        return "theirs"

    def _segment_landed(self, segment: Segment, size: int) -> None:
        """Hand a segment to this process's consumers (they need not read it back)."""
        if self.on_segment is not None:
            self.on_segment(segment, size)

    def _fence(self, epoch: int) -> None:
        if self.fenced is None:
            log.warning("partition %d: writer epoch %d steps down for epoch %d", self.p,
                        self.epoch, epoch)
            self.fenced = Fenced(f"partition {self.p}: this writer (epoch {self.epoch}) was "
                                 f"superseded by epoch {epoch}")

    # -- applying segments --------------------------------------------------------------------
    def _apply(self, seq: int, commits: tuple[Commit, ...] | list[Commit],
               sizes: list[int] | None = None) -> None:
        if seq != self.head + 1:
            raise StorageError(f"partition {self.p}: applying segment {seq} after {self.head}")
        self.head = seq
        for c in commits:
            self._set_head((c.store, c.aggregate_id), c.last_version)
        self.index.apply(seq, commits, sizes)
        self._signal.set()
        self._signal = asyncio.Event()
        for listener in self.listeners:
            try:
                listener(self.p, seq)
            except Exception:
                log.exception("segment listener failed")
        self._trim_heads()

    def _set_head(self, key: Key, version: int) -> None:
        """Record a stream's head (versions only grow) as the most recently used."""
        heads = self.heads
        old = heads.get(key)
        if old is None:
            heads[key] = version
            self._heads_bytes += _head_bytes(key)
        else:
            if version > old:
                heads[key] = version
            heads.move_to_end(key)

    def _trim_heads(self) -> None:
        """Forget the least recently used heads beyond the memory budget. Nothing is lost: the
        load index holds every stream's events."""
        heads = self.heads
        budget = self.policy.heads_bytes
        while self._heads_bytes > budget and heads:
            key, _ = heads.popitem(last=False)
            self._heads_bytes -= _head_bytes(key)
            self._evictions += 1

    async def wait(self, after_seq: int, timeout: float) -> bool:
        """Wait for a segment above ``after_seq`` (the hint consumers use)."""
        if self.head > after_seq:
            return True
        signal = self._signal
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await signal.wait()
        return self.head > after_seq

    # -- the load index -----------------------------------------------------------------------
    async def flush(self) -> None:
        """Write the load index's memtable as a table (and let compaction run)."""
        if self.fenced is None:
            await self.index.flush()

    async def close(self, flush: bool = True) -> None:
        """Finish pending appends, then (optionally) write the index's memtable."""
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher
        if flush and self.fenced is None:
            try:
                await self.flush()
            except Fenced:
                pass
            except StorageError as exc:  # the log holds it all: the next writer replays it
                log.warning("partition %d: index not written at close (%s); the next writer "
                            "replays the log above segment %d", self.p, exc,
                            self.index.manifest.seq)
        await self.index.close()
