"""The newest part of the load index, in memory: what the tables do not hold yet.

The partition's writer applies every segment it writes or reads to its memtable; a reader
without a writer builds one from the segments above the manifest. Sizes are counted as stored
(the event's JSON), the figure the byte budget (``TALIX_INDEX_MEMTABLE_BYTES``) bounds.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any

from ..model.events import StoredEvent
from . import table as tb
from .base import Commit
from .format import event_record, event_size

Agg = tuple[str, str]
_ENTRY_OVERHEAD = 48  # key and framing of an entry, as stored


class Memtable:
    """Events, snapshots and new ids of some consecutive segments (``seq``: the last one)."""

    def __init__(self, seq: int = 0) -> None:
        self.seq = seq
        self.events: dict[Agg, list[StoredEvent]] = {}
        self.snaps: dict[tb.Key, Any] = {}          # snapshot key -> value, or None (deleted)
        self._snaps_of: dict[Agg, set[tb.Key]] = {}
        self._ids: dict[str, list[str]] = {}         # store -> ids created here
        self._unsorted: set[str] = set()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self.events) + len(self.snaps)

    def add(self, seq: int, commits: Iterable[Commit], sizes: Iterable[int] | None = None
            ) -> None:
        """Apply one segment's commits (``sizes``: their stored sizes, when known)."""
        self.seq = seq
        sizes_it = iter(sizes) if sizes is not None else None
        for c in commits:
            size = next(sizes_it) if sizes_it is not None else None
            if not c.events:
                continue
            key = (c.store, c.aggregate_id)
            stream = self.events.get(key)
            if stream is None:
                stream = self.events[key] = []
                self.bytes += 2 * _ENTRY_OVERHEAD + len(key[0]) + len(key[1])
            if c.events[0].version == 1:
                self._ids.setdefault(c.store, []).append(c.aggregate_id)
                self._unsorted.add(c.store)
            stream.extend(c.events)
            self.bytes += (size if size is not None else sum(event_size(e) for e in c.events)) \
                + _ENTRY_OVERHEAD * len(c.events)

    def put_snapshot(self, key: tb.Key, value: Any, size: int) -> None:
        """Keep a snapshot (``value`` ``None``: delete the one under ``key``)."""
        agg = (key[1], key[2])
        if key not in self.snaps:
            self.bytes += _ENTRY_OVERHEAD + size
        self.snaps[key] = value
        self._snaps_of.setdefault(agg, set()).add(key)

    # -- reading ------------------------------------------------------------------------------
    def stream(self, store: str, aggregate_id: str) -> list[StoredEvent]:
        """The aggregate's events held here (consecutive versions)."""
        return self.events.get((store, aggregate_id), [])

    def snapshots(self, store: str, aggregate_id: str) -> dict[tb.Key, Any]:
        """The aggregate's snapshot entries held here (tombstones included)."""
        keys = self._snaps_of.get((store, aggregate_id))
        return {k: self.snaps[k] for k in keys} if keys else {}

    def holds(self, store: str, aggregate_id: str) -> bool:
        """Whether anything of the aggregate is here."""
        return (store, aggregate_id) in self.events or (store, aggregate_id) in self._snaps_of

    def ids(self, store: str, after: str | None, limit: int) -> list[str]:
        """Ids of ``store`` created here, above ``after``, in order."""
        ids = self._ids.get(store)
        if not ids:
            return []
        if store in self._unsorted:
            ids.sort()
            self._unsorted.discard(store)
        start = bisect.bisect_right(ids, after) if after is not None else 0
        return ids[start:start + limit]

    def entries(self) -> list[tb.Entry]:
        """Everything here as sorted table entries."""
        out: list[tb.Entry] = []
        for (store, agg), events in self.events.items():
            out.extend((tb.event_key(store, agg, e.version), event_record(e)) for e in events)
        out.extend(self.snaps.items())
        for store, ids in self._ids.items():
            out.extend((tb.id_key(store, a), 1) for a in ids)
        out.sort(key=lambda entry: entry[0])
        return out
