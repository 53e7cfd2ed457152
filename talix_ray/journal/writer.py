"""The journal writer of one partition: group commit by conditional create, fencing, chunks.

One writer per partition appends segments ``journal/{p}/{seq}`` with ``If-None-Match: *``.
It writes as soon as it is idle and, while a PUT is in flight, gathers the commits that
arrive into the next segment (no timer). Because a writer that creates seq n has read every
segment below n, its index of stream heads is authoritative for the expected-version check.
A 412 means another writer exists: read its segments, re-check the batch against them, reject
what now conflicts and retry at the next seq — or step down when the other writer carries a
newer epoch. A write with an unknown outcome is resolved by reading the segment back and
comparing batch ids.

Per-aggregate stream chunks (the index that makes loading cheap) are written off the command
path, and a watermark records up to which segment everything is chunked, so a restarted writer
rebuilds its state from the segments above it only.

The index of stream heads is bounded in bytes: a head whose events are all chunked may be
forgotten, and is looked up again (chunk coverage) when needed. A head is only ever set by the
writer itself — from a segment it applied or a coverage lookup it made — and a command whose
expected version is above the head it knows makes the writer read the log to its end before it
decides (another writer may have appended since).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from ..model.errors import Fenced, StorageError, VersionConflict
from ..model.events import StoredEvent
from ..objectstore import (
    Listing,
    ObjectExists,
    ObjectNotFound,
    ObjectStore,
    PreconditionFailed,
)
from . import format as fmt
from .base import Commit

log = logging.getLogger("talix.journal")
Key = tuple[str, str]
_Pending = tuple[Commit, "asyncio.Future[int]", int]  # a commit, its caller, its size in bytes


@dataclass(slots=True)
class _Tail:
    """An aggregate's events not yet chunked, with the segment each came from."""

    events: list[StoredEvent] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    chunking: bool = False
    failures: int = 0        # chunk attempts failed in a row
    retry_at: float = 0.0    # loop time before which a failed chunk is not tried again


@dataclass(frozen=True, slots=True)
class WriterPolicy:
    """Group commit, chunking, size limits and memory bounds of the journal."""

    max_batch: int = 2000
    chunk_events: int = 256
    chunk_lag: int = 256
    watermark_every: int = 64
    retry_deadline: float = 60.0
    max_event_bytes: int = fmt.MAX_EVENT_BYTES   # one event as stored
    max_commit_bytes: int = fmt.MAX_COMMIT_BYTES  # one command's events; also a segment's
    heads_bytes: int = 64 * fmt.MiB               # the writer's index of stream heads
    segment_cache_bytes: int = 64 * fmt.MiB       # segments kept for consumers (as stored)
    chunk_retry_max: float = 300.0                # longest pause between failing chunk attempts


def _head_bytes(key: Key) -> int:
    """What one entry of the head index costs (measured: ~250 bytes with a 12-byte id)."""
    return 240 + len(key[0]) + len(key[1])


async def with_retries(what: str, op: Any, deadline: float = 60.0) -> Any:
    """Run ``op()`` again on transient storage errors, with backoff, until ``deadline`` s."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    delay = 0.01
    while True:
        try:
            return await op()
        except StorageError as exc:
            if loop.time() + delay > end:
                raise
            log.debug("%s: %s; retrying", what, exc)
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)


class PartitionWriter:
    """Appends commits of one partition; owns its stream-head index and unchunked tail."""

    def __init__(self, store: ObjectStore, partition: int, policy: WriterPolicy,
                 chunk_coverage: Any) -> None:
        self.store = store
        self.p = partition
        self.policy = policy
        self._chunk_coverage = chunk_coverage  # async (store, id) -> last chunked version
        self.epoch = 0
        self.head = 0
        self.heads: OrderedDict[Key, int] = OrderedDict()  # least recently used first
        self._heads_bytes = 0
        self._evictions = 0  # heads forgotten so far: a lookup that saw one change is stale
        self.tail: dict[Key, _Tail] = {}
        self._firsts: Counter[int] = Counter()  # how many tails start at each segment seq
        self.stuck: dict[Key, str] = {}  # streams whose chunk keeps failing, and why
        self.fenced: Fenced | None = None
        self.watermark = 0
        self._watermark_etag: str | None = None
        self._watermark_written = 0
        self._pending: deque[_Pending] = deque()
        self._flusher: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._signal = asyncio.Event()
        self.segments_written = 0
        self.commits_written = 0
        self._last_lag_scan = 0
        self.listeners: list[Any] = []  # called with (partition, seq) when a segment lands

    # -- start-up -----------------------------------------------------------------------------
    async def open(self) -> None:
        """Take a new epoch (fencing older writers) and rebuild state above the watermark."""
        await with_retries("epoch", self._take_epoch)
        self.watermark, self._watermark_etag = await with_retries("watermark",
                                                                  self._read_watermark)
        self._watermark_written = self.watermark
        self.head = self.watermark
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

    async def _read_watermark(self) -> tuple[int, str | None]:
        key = fmt.watermark_key(self.p)
        try:
            obj = await self.store.get(key)
        except ObjectNotFound:
            return 0, None
        return fmt.field_of(key, obj.body, "watermark", "seq", int), obj.etag

    async def _catch_up(self) -> None:
        """Read and apply every segment above ``head``."""
        while True:
            listing = await with_retries("list segments", lambda: self.store.list(
                fmt.segment_prefix(self.p), start_after=fmt.segment_key(self.p, self.head)))
            keys = listing.keys
            if not keys:
                return
            bodies = await asyncio.gather(*(with_retries("get", lambda k=k: self.store.get(k))
                                            for k in keys))
            for key, obj in zip(keys, bodies, strict=True):
                if fmt.seq_of(key) != self.head + 1:
                    raise StorageError(f"{key}: segment gap after {self.head}")
                rec = fmt.decode_segment(key, obj.body)  # CorruptObject unless it is this one
                self._apply(rec.segment.seq, rec.segment.commits)
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
        """A stream's head from memory: the index, or the last of its unchunked events."""
        v = self.heads.get(key)
        if v is not None:
            self.heads.move_to_end(key)
            return v
        tail = self.tail.get(key)
        return tail.events[-1].version if tail is not None and tail.events else None

    async def head_of(self, key: Key) -> int:
        """The version of a stream as this writer knows it (looking its chunks up when it does
        not know it: every event of a stream without a head or a tail here is chunked)."""
        v = self._known_head(key)
        if v is not None:
            return v
        evictions = self._evictions
        v = await self._chunk_coverage(*key)
        if key in self.heads or evictions == self._evictions:  # else: v may be stale to keep
            self._set_head(key, v)
            v = self.heads[key]
            self._trim_heads()
        return v

    async def list_stream(self, key: Key) -> Listing:
        """One page of the aggregate's stream folder (its chunks and snapshots), listed by the
        writer: when the page is complete and the writer has no head for the stream, the
        chunk coverage it shows is the head (a lookup of its own, saving one later)."""
        known = self._known_head(key) is not None
        evictions = self._evictions
        page: Listing = await with_retries("list stream", lambda: self.store.list(
            fmt.stream_prefix(*key)))
        if not (known or page.truncated or self._known_head(key) is not None) \
                and evictions == self._evictions:
            self._set_head(key, fmt.coverage_of(page.keys))
            self._trim_heads()
        return page

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
            if await self._put_segment(commits):
                seq = self.head
                for _, fut, _ in accepted:
                    if not fut.done():
                        fut.set_result(seq)
                return
            batch = accepted  # another writer got the seq: re-check against its segments
            caught_up = True  # ... which _put_segment read to the end of the log

    async def _put_segment(self, commits: list[Commit]) -> bool:
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
                self._apply(seq, commits)
                self.segments_written += 1
                self.commits_written += len(commits)
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
        if rec.epoch > self.epoch:
            self._fence(rec.epoch)
        return "theirs"

    def _fence(self, epoch: int) -> None:
        if self.fenced is None:
            log.warning("partition %d: writer epoch %d steps down for epoch %d", self.p,
                        self.epoch, epoch)
            self.fenced = Fenced(f"partition {self.p}: this writer (epoch {self.epoch}) was "
                                 f"superseded by epoch {epoch}")

    # -- the index ----------------------------------------------------------------------------
    def _apply(self, seq: int, commits: tuple[Commit, ...] | list[Commit]) -> None:
        if seq != self.head + 1:
            raise StorageError(f"partition {self.p}: applying segment {seq} after {self.head}")
        self.head = seq
        for c in commits:
            key = (c.store, c.aggregate_id)
            self._set_head(key, c.last_version)
            if not c.events:
                continue
            tail = self.tail.get(key)
            if tail is None:
                tail = self.tail[key] = _Tail()
            if not tail.seqs:
                self._firsts[seq] += 1
            tail.events.extend(c.events)
            tail.seqs.extend([seq] * len(c.events))
            if len(tail.events) >= self.policy.chunk_events:
                self.chunk_later(key)
        self._signal.set()
        self._signal = asyncio.Event()
        for listener in self.listeners:
            try:
                listener(self.p, seq)
            except Exception:
                log.exception("segment listener failed")
        if seq - self._last_lag_scan >= max(1, self.policy.chunk_lag // 8):
            self._last_lag_scan = seq
            limit = seq - self.policy.chunk_lag
            for key, tail in list(self.tail.items()):
                if tail.seqs and tail.seqs[0] <= limit:
                    self.chunk_later(key)
            self._advance_watermark()
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
        """Forget the least recently used heads beyond the memory budget. Nothing is lost: a
        stream with unchunked events has its head in its tail, any other one in its chunks."""
        heads = self.heads
        budget = self.policy.heads_bytes
        while self._heads_bytes > budget and heads:
            key, _ = heads.popitem(last=False)
            self._heads_bytes -= _head_bytes(key)
            self._evictions += 1

    def tail_events(self, key: Key) -> list[StoredEvent]:
        """A copy of an aggregate's unchunked events."""
        tail = self.tail.get(key)
        return list(tail.events) if tail else []

    async def wait(self, after_seq: int, timeout: float) -> bool:
        """Wait for a segment above ``after_seq`` (the hint consumers use)."""
        if self.head > after_seq:
            return True
        signal = self._signal
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await signal.wait()
        return self.head > after_seq

    # -- chunks and the watermark -------------------------------------------------------------
    def chunk_later(self, key: Key, force: bool = False) -> None:
        """Write the aggregate's unchunked events as a chunk, off the command path (a chunk
        that failed waits for its backoff unless ``force``)."""
        tail = self.tail.get(key)
        if tail is None or tail.chunking or not tail.events:
            return
        if not force and tail.retry_at > asyncio.get_running_loop().time():
            return
        tail.chunking = True
        task = asyncio.create_task(self._chunk(key, tail))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _chunk(self, key: Key, tail: _Tail) -> None:
        store, agg = key
        try:
            events = list(tail.events)
            covered = await with_retries("coverage", lambda: self._chunk_coverage(store, agg))
            todo = [e for e in events if e.version > covered]
            if todo:
                ckey = fmt.chunk_key(store, agg, todo[0].version, todo[-1].version)
                body = fmt.encode_chunk(todo)

                async def create() -> None:
                    with contextlib.suppress(ObjectExists):  # idempotent: same range, same body
                        await self.store.create(ckey, body)

                await with_retries(f"chunk {ckey}", create, self.policy.retry_deadline)
            n = len(events)
            first = tail.seqs[0]
            del tail.events[:n]
            del tail.seqs[:n]
            self._firsts[first] -= 1
            if not self._firsts[first]:
                del self._firsts[first]
            if tail.seqs:
                self._firsts[tail.seqs[0]] += 1
            elif self.tail.get(key) is tail:
                del self.tail[key]
            tail.failures = 0
            if self.stuck.pop(key, None) is not None:
                log.warning("partition %d: %s/%s is chunked again; the watermark moves on",
                            self.p, store, agg)
        except Exception as exc:
            # Bounded: with_retries gave up after retry_deadline. The events stay in the tail
            # (readers still get them) and the watermark waits below them, so a restart
            # re-reads them from the log; the stream is listed in `stuck` and logged, and
            # tried again with backoff.
            tail.failures += 1
            pause = min(self.policy.chunk_retry_max, 2.0 ** tail.failures)
            tail.retry_at = asyncio.get_running_loop().time() + pause
            self.stuck[key] = f"{type(exc).__name__}: {exc}"
            log.error("partition %d: cannot chunk %s/%s (attempt %d: %s: %s); the watermark "
                      "waits below segment %d; next attempt in %.0f s", self.p, store, agg,
                      tail.failures, type(exc).__name__, exc,
                      tail.seqs[0] if tail.seqs else self.head, pause)
        finally:
            tail.chunking = False
        self._trim_heads()
        self._advance_watermark()

    def _advance_watermark(self, force: bool = False) -> None:
        mark = (min(self._firsts) - 1) if self._firsts else self.head
        self.watermark = max(self.watermark, mark)
        if force or self.watermark - self._watermark_written >= self.policy.watermark_every:
            task = asyncio.create_task(self._write_watermark())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _write_watermark(self) -> None:
        key = fmt.watermark_key(self.p)
        mark = self.watermark
        if mark <= self._watermark_written:
            return
        try:
            for _ in range(10):
                body = fmt.dumps({"seq": mark})
                try:
                    if self._watermark_etag is None:
                        self._watermark_etag = await self.store.create(key, body)
                    else:
                        self._watermark_etag = await self.store.put_if_match(
                            key, body, self._watermark_etag)
                    self._watermark_written = max(self._watermark_written, mark)
                    return
                except (ObjectExists, PreconditionFailed, StorageError):
                    # moved by another writer, or unknown outcome: re-read, never go back
                    current, self._watermark_etag = await self._read_watermark()
                    if current >= mark:
                        self._watermark_written = max(self._watermark_written, mark)
                        return
        except Exception:
            log.exception("partition %d: watermark not written", self.p)

    async def flush(self) -> None:
        """Chunk every tail, write the watermark, wait for background work."""
        for key in list(self.tail):
            self.chunk_later(key, force=True)
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
        self._advance_watermark(force=True)
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def close(self, flush: bool = True) -> None:
        """Finish pending appends, then (optionally) chunk and checkpoint everything."""
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher
        if flush and self.fenced is None:
            await self.flush()
        for task in list(self._background):
            task.cancel()
