"""The journal interface: the one contract between the engine and event storage.

Two implementations: :class:`~talix_ray.journal.memory.MemoryJournal` (in-process, for tests,
notebooks and benchmarks) and :class:`~talix_ray.journal.log.ObjectStoreJournal` (the
partitioned log on object storage of DESIGN §3). The engine only speaks to this interface.
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..model.events import StoredEvent


class Commit(NamedTuple):
    """The events of one command for one aggregate, appended atomically."""

    store: str
    aggregate_id: str
    expected_version: int
    events: tuple[StoredEvent, ...]
    command_id: str | None = None

    @property
    def first_version(self) -> int:
        """The version of the commit's first event."""
        return self.expected_version + 1

    @property
    def last_version(self) -> int:
        """The version of the commit's last event."""
        return self.expected_version + len(self.events)


@dataclass(frozen=True, slots=True)
class Segment:
    """One entry of a partition's log: a batch of commits with a contiguous sequence number."""

    partition: int
    seq: int
    commits: tuple[Commit, ...]


@dataclass(slots=True)
class SegmentColumns:
    """One segment's events column by column, in log order: one list per field of
    :class:`~talix_ray.model.events.StoredEvent`, in its order. For readers that want
    columns, without an object per event."""

    partition: int
    seq: int
    store: list[str] = field(default_factory=list)
    aggregate_id: list[str] = field(default_factory=list)
    version: list[int] = field(default_factory=list)
    type: list[str] = field(default_factory=list)
    payload: list[Any] = field(default_factory=list)
    timestamp_us: list[int] = field(default_factory=list)
    command_id: list[str | None] = field(default_factory=list)
    schema_version: list[int] = field(default_factory=list)
    metadata: list[Any] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.version)

    @classmethod
    def of(cls, segment: Segment) -> SegmentColumns:
        """The columns of a decoded segment."""
        events = [e for c in segment.commits for e in c.events]
        if not events:
            return cls(segment.partition, segment.seq)
        return cls(segment.partition, segment.seq,
                   *(list(col) for col in zip(*events, strict=True)))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A serialized aggregate state at a version, with the command ids it remembers
    (``(command id, version after it, number of events it appended)``) and, once read back,
    the key it was read from."""

    version: int
    state: Any
    recent_command_ids: tuple[tuple[str, int, int], ...] = ()
    key: str = ""


def stable_partition(store: str, aggregate_id: str, partitions: int) -> int:
    """``stable_hash(store, aggregate_id) % P`` — the same on every machine and run."""
    if partitions == 1:
        return 0
    return zlib.crc32(f"{store}\x00{aggregate_id}".encode()) % partitions


class Journal(ABC):
    """Durable, partitioned, append-only event storage with consumer checkpoints."""

    partitions: int = 1

    def partition_of(self, store: str, aggregate_id: str) -> int:
        """The partition an aggregate belongs to."""
        return stable_partition(store, aggregate_id, self.partitions)

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Prepare for use (read manifests, recover writers)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Flush what is pending and release resources."""

    # -- writing ----------------------------------------------------------------------------
    @abstractmethod
    async def append(self, commit: Commit) -> int:
        """Append a commit iff its stream is at ``expected_version``; return its segment seq.

        Raises :class:`~talix_ray.model.VersionConflict` otherwise. Returns only once the
        commit is durable.
        """

    async def passivated(self, store: str, aggregate_id: str) -> None:  # noqa: B027
        """A hint: the aggregate left memory (backends may ignore it)."""

    # -- reading streams ----------------------------------------------------------------------
    @abstractmethod
    async def read_stream(self, store: str, aggregate_id: str, *,
                          after_version: int = 0) -> list[StoredEvent]:
        """The aggregate's events with version > ``after_version``, in order."""

    @abstractmethod
    async def list_aggregate_ids(self, store: str, *, limit: int = 100,
                                 after: str | None = None) -> list[str]:
        """Aggregate ids of ``store`` in lexical order, after ``after``."""

    # -- snapshots ----------------------------------------------------------------------------
    async def save_snapshot(self, store: str, aggregate_id: str, reducer_hash: str,  # noqa: B027
                            snapshot: Snapshot) -> None:
        """Keep a snapshot (off the command path); backends may ignore it."""

    async def load_snapshot(self, store: str, aggregate_id: str, reducer_hash: str,
                            max_version: int | None = None) -> Snapshot | None:
        """The newest snapshot for this reducer at or below ``max_version``."""
        return None

    async def load_aggregate(self, store: str, aggregate_id: str, reducer_hash: str | None
                             ) -> tuple[Snapshot | None, list[StoredEvent]]:
        """Everything to rebuild an aggregate: its newest snapshot for ``reducer_hash`` (if
        given) and its events from the snapshot's version on (the snapshot's own last event
        included), or all of them."""
        snap = None
        if reducer_hash is not None:
            snap = await self.load_snapshot(store, aggregate_id, reducer_hash)
        after = max(snap.version - 1, 0) if snap is not None else 0
        return snap, await self.read_stream(store, aggregate_id, after_version=after)

    # -- the log, for consumers ---------------------------------------------------------------
    @abstractmethod
    async def head(self, partition: int) -> int:
        """The seq of the newest segment of ``partition`` (0 when empty)."""

    def known_head(self, partition: int) -> int:
        """The newest segment seq of ``partition`` this process knows of without asking
        storage (its writer's head, hints, what it read); 0 when it knows none. For gauges
        that must not cost requests."""
        return 0

    @abstractmethod
    async def read_segments(self, partition: int, after_seq: int,
                            limit: int = 100) -> list[Segment]:
        """Segments of ``partition`` with seq > ``after_seq``, in order."""

    async def read_segment_columns(self, partition: int, after_seq: int,
                                   limit: int = 100) -> list[SegmentColumns]:
        """:meth:`read_segments`, each segment's events as columns (a journal that stores
        segments decodes them straight into columns)."""
        return [SegmentColumns.of(s)
                for s in await self.read_segments(partition, after_seq, limit)]

    @abstractmethod
    async def wait_for_segment(self, partition: int, after_seq: int, timeout: float) -> bool:
        """Wait until a segment above ``after_seq`` exists (hint or poll); False on timeout."""

    @abstractmethod
    async def load_checkpoint(self, consumer: str, partition: int) -> tuple[int, str | None]:
        """A consumer's offset in a partition and the token for :meth:`save_checkpoint`."""

    @abstractmethod
    async def save_checkpoint(self, consumer: str, partition: int, seq: int,
                              token: str | None) -> str:
        """Move a consumer's offset (compare-and-swap on ``token``); returns the new token.

        Raises :class:`~talix_ray.model.Conflict` when another copy of the consumer moved it.
        """

    # -- dead letters -------------------------------------------------------------------------
    @abstractmethod
    async def put_deadletter(self, consumer: str, key: str, record: dict[str, Any]) -> None:
        """Record a message a consumer gave up on."""

    @abstractmethod
    async def list_deadletters(self, consumer: str) -> list[dict[str, Any]]:
        """The dead letters of a consumer."""

    @abstractmethod
    async def delete_deadletter(self, consumer: str, key: str) -> None:
        """Forget a dead letter (after a successful retry)."""
