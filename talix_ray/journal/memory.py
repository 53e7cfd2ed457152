"""An in-process journal: the journal contract kept in Python dicts and lists."""

from __future__ import annotations

import asyncio
import bisect
from typing import Any

import orjson

from ..model.errors import Conflict, VersionConflict
from ..model.events import StoredEvent
from .base import Commit, Journal, Segment, Snapshot
from .format import MAX_COMMIT_BYTES, MAX_EVENT_BYTES, decode_events, encode_events, gc_paused


class MemoryJournal(Journal):
    """The whole journal in memory; one segment per commit. Lost when the process ends.

    Events are kept encoded, as a store keeps them: every read decodes them into new objects
    (what a caller does to events it read never reaches the journal), and a payload that does
    not survive JSON does not survive here either. It refuses what the log on object storage
    would refuse (ids storage keys cannot hold, events or commits above the size limits), so
    code tested here runs there too.
    """

    def __init__(self, partitions: int = 1, *, max_event_bytes: int = MAX_EVENT_BYTES,
                 max_commit_bytes: int = MAX_COMMIT_BYTES) -> None:
        if partitions < 1:
            raise ValueError("partitions must be >= 1")
        self.partitions = partitions
        self.max_event_bytes = max_event_bytes
        self.max_commit_bytes = max_commit_bytes
        # a stream: (version, position of its last commit in its partition's log). Tuples of
        # numbers and log records of strings and bytes: nothing here for the cyclic garbage
        # collector to scan again and again, however many aggregates the journal holds.
        self._streams: dict[tuple[str, str], tuple[int, int]] = {}
        self._ids: dict[str, list[str]] = {}
        self._unsorted: set[str] = set()
        # a partition's log, one record per commit: (store, aggregate id, first version,
        # command id, events as stored (a JSON array), position of the stream's previous commit
        # in this log or -1)
        self._log: list[list[tuple[str, str, int, str | None, bytes, int]]] = [
            [] for _ in range(partitions)]
        self._signals: list[asyncio.Event | None] = [None] * partitions
        self._checkpoints: dict[tuple[str, int], tuple[int, int]] = {}
        self._snapshots: dict[tuple[str, str, str], list[Snapshot]] = {}
        self._deadletters: dict[str, dict[str, dict[str, Any]]] = {}

    async def append(self, commit: Commit) -> int:
        records = encode_events(commit, self.max_event_bytes, self.max_commit_bytes)
        key = (commit.store, commit.aggregate_id)
        current, last = self._streams.get(key, (0, -1))
        if current != commit.expected_version:
            raise VersionConflict(
                f"{commit.store}/{commit.aggregate_id} is at version {current}, "
                f"expected {commit.expected_version}", current_version=current)
        p = self.partition_of(commit.store, commit.aggregate_id)
        log = self._log[p]
        # a real store writes an empty commit too; it reads as nothing and makes no stream
        body = b"[" + b",".join(records) + b"]" if records else b"[]"
        log.append((commit.store, commit.aggregate_id, current + 1, commit.command_id, body,
                    last))
        if records:
            if last < 0:
                self._ids.setdefault(commit.store, []).append(commit.aggregate_id)
                self._unsorted.add(commit.store)
            self._streams[key] = (current + len(records), len(log) - 1)
        signal = self._signals[p]
        if signal is not None:
            signal.set()
            self._signals[p] = None
        return len(log)

    def _decode(self, store: str, aggregate_id: str, after_version: int) -> list[StoredEvent]:
        version, at = self._streams.get((store, aggregate_id), (0, -1))
        if after_version >= version:
            return []
        after_version = max(after_version, 0)
        log = self._log[self.partition_of(store, aggregate_id)]
        chain = []  # the stream's commits from the last back to the one holding after + 1
        while at >= 0:
            rec = log[at]
            chain.append(rec)
            if rec[2] <= after_version + 1:
                break
            at = rec[5]
        out: list[StoredEvent] = []
        with gc_paused():
            for _, _, first, cid, body, _ in reversed(chain):
                out.extend(decode_events(store, aggregate_id, first, orjson.loads(body), cid))
        skip = after_version + 1 - chain[-1][2]
        return out[skip:] if skip else out

    async def read_stream(self, store: str, aggregate_id: str, *,
                          after_version: int = 0) -> list[StoredEvent]:
        return self._decode(store, aggregate_id, after_version)

    async def load_aggregate(self, store: str, aggregate_id: str, reducer_hash: str | None
                             ) -> tuple[Snapshot | None, list[StoredEvent]]:
        if reducer_hash is not None:
            return await super().load_aggregate(store, aggregate_id, reducer_hash)
        return None, self._decode(store, aggregate_id, 0)

    async def list_aggregate_ids(self, store: str, *, limit: int = 100,
                                 after: str | None = None) -> list[str]:
        ids = self._ids.get(store, [])
        if store in self._unsorted:
            ids.sort()
            self._unsorted.discard(store)
        start = bisect.bisect_right(ids, after) if after is not None else 0
        return ids[start:start + limit]

    async def save_snapshot(self, store: str, aggregate_id: str, reducer_hash: str,
                            snapshot: Snapshot) -> None:
        snaps = self._snapshots.setdefault((store, aggregate_id, reducer_hash), [])
        snaps.append(snapshot)
        snaps.sort(key=lambda s: s.version)

    async def load_snapshot(self, store: str, aggregate_id: str, reducer_hash: str,
                            max_version: int | None = None) -> Snapshot | None:
        for snap in reversed(self._snapshots.get((store, aggregate_id, reducer_hash), [])):
            if max_version is None or snap.version <= max_version:
                return snap
        return None

    async def head(self, partition: int) -> int:
        return len(self._log[partition])

    def known_head(self, partition: int) -> int:
        return len(self._log[partition])

    async def read_segments(self, partition: int, after_seq: int,
                            limit: int = 100) -> list[Segment]:
        out = []
        with gc_paused():
            for i, (store, agg, first, cid, body, _) in enumerate(
                    self._log[partition][after_seq:after_seq + limit], start=after_seq + 1):
                events = decode_events(store, agg, first, orjson.loads(body), cid)
                out.append(Segment(partition, i, (Commit(store, agg, first - 1, events, cid),)))
        return out

    async def wait_for_segment(self, partition: int, after_seq: int, timeout: float) -> bool:
        if len(self._log[partition]) > after_seq:
            return True
        signal = self._signals[partition]
        if signal is None:
            signal = self._signals[partition] = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):  # not wait_for: it can swallow a cancel (3.11)
                await signal.wait()
        except TimeoutError:
            return False
        return len(self._log[partition]) > after_seq

    async def load_checkpoint(self, consumer: str, partition: int) -> tuple[int, str | None]:
        seq, gen = self._checkpoints.get((consumer, partition), (0, 0))
        return seq, (str(gen) if gen else None)

    async def save_checkpoint(self, consumer: str, partition: int, seq: int,
                              token: str | None) -> str:
        _, gen = self._checkpoints.get((consumer, partition), (0, 0))
        if (str(gen) if gen else None) != token:
            raise Conflict(f"checkpoint {consumer}/{partition} was moved by another consumer")
        self._checkpoints[(consumer, partition)] = (seq, gen + 1)
        return str(gen + 1)

    async def put_deadletter(self, consumer: str, key: str, record: dict[str, Any]) -> None:
        self._deadletters.setdefault(consumer, {})[key] = record

    async def list_deadletters(self, consumer: str) -> list[dict[str, Any]]:
        return [dict(v) for _, v in sorted(self._deadletters.get(consumer, {}).items())]

    async def delete_deadletter(self, consumer: str, key: str) -> None:
        self._deadletters.get(consumer, {}).pop(key, None)
