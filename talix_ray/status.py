"""Where a store stands, read from storage alone (what ``talix status`` prints).

Per partition: the head (newest segment), the epoch of its writer, the watermark of its load
index (the last segment the index tables cover) and the unindexed tail between them (what a
restarted writer replays). Per consumer (the action dispatcher, the calls recorder …) and per
view: how far behind the head it is, in segments and in seconds (the age of the oldest
segment it has not processed). The dead letters of each consumer.

Nothing here writes: the journal is opened read-only, and a store without an application
(no ``talix.json``) is an error rather than a new, empty application.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from .extras import installed
from .journal import ObjectStoreJournal, open_journal
from .journal import format as fmt
from .journal.index import Manifest
from .model.errors import CorruptObject, NotFound
from .objectstore import ObjectNotFound, ObjectStore
from .settings import Settings


class PartitionStatus(BaseModel):
    """One partition of the log."""

    partition: int
    head: int = Field(description="seq of the newest segment (0: empty)")
    writer_epoch: int = Field(description="epoch of the partition's current writer (0: none)")
    watermark: int = Field(description="last segment the load index tables cover")
    unindexed: int = Field(description="segments above the watermark (replayed on restart)")


class ConsumerStatus(BaseModel):
    """A consumer of the log (checkpoints) or a view (offsets in its table)."""

    name: str
    kind: str = Field(description="consumer or view")
    lag_segments: int = Field(description="segments written but not processed, all partitions")
    lag_seconds: float = Field(description="age of the oldest unprocessed segment (0: none)")
    behind: dict[int, int] = Field(default_factory=dict,
                                   description="segments behind, by partition (only > 0)")


class StoreStatus(BaseModel):
    """The whole store at one moment."""

    store: str
    checked_at: datetime
    partitions: list[PartitionStatus]
    consumers: list[ConsumerStatus]
    deadletters: dict[str, int] = Field(description="dead letters by consumer")


async def _get(store: ObjectStore, key: str) -> bytes | None:
    try:
        return (await store.get(key)).body
    except ObjectNotFound:
        return None


async def _partition(journal: ObjectStoreJournal, p: int) -> PartitionStatus:
    store = journal.store
    head = await journal.head(p)
    writer = await _get(store, fmt.writer_key(p))
    epoch = 0 if writer is None else fmt.field_of(fmt.writer_key(p), writer, "writer record",
                                                  "epoch", int)
    body = await _get(store, fmt.manifest_key(p))
    watermark = 0 if body is None else Manifest.decode(fmt.manifest_key(p), body, "").seq
    return PartitionStatus(partition=p, head=head, writer_epoch=epoch, watermark=watermark,
                           unindexed=max(0, head - watermark))


async def _oldest_unprocessed_us(journal: ObjectStoreJournal, p: int, offset: int) -> int | None:
    """Timestamp of the first event of segment ``offset + 1`` (None if it has none)."""
    segments = await journal.read_segments(p, offset, limit=1)
    stamps = [e.timestamp_us for s in segments[:1] for c in s.commits for e in c.events]
    return min(stamps) if stamps else None


async def _lag(journal: ObjectStoreJournal, name: str, kind: str, heads: dict[int, int],
               offsets: dict[int, int], now_us: int) -> ConsumerStatus:
    behind = {p: heads[p] - offsets.get(p, 0) for p in heads if heads[p] > offsets.get(p, 0)}
    stamps = await asyncio.gather(*(_oldest_unprocessed_us(journal, p, offsets.get(p, 0))
                                    for p in behind))
    oldest = min((s for s in stamps if s is not None), default=None)
    seconds = 0.0 if oldest is None else max(0.0, (now_us - oldest) / 1e6)
    return ConsumerStatus(name=name, kind=kind, lag_segments=sum(behind.values()),
                          lag_seconds=round(seconds, 3), behind=behind)


async def _consumers(store: ObjectStore) -> list[str]:
    listing = await store.list_all("checkpoints/", delimiter="/")
    return sorted(p[len("checkpoints/"):].rstrip("/") for p in listing.prefixes)


async def _deadletters(store: ObjectStore) -> dict[str, int]:
    listing = await store.list_all("deadletters/")
    counts: dict[str, int] = {}
    for key in listing.keys:
        consumer = key.split("/")[1]
        counts[consumer] = counts.get(consumer, 0) + 1
    return counts


def _view_offsets(settings: Settings, partitions: int) -> dict[str, dict[int, int]]:
    """Each view's committed offsets (no view support installed: none)."""
    if not installed("views"):
        return {}
    from .views import View, ViewLocation, delta, names  # the views extra
    location = ViewLocation.of_settings(settings)
    return {name: delta.offsets(View(name, location).table(), name, partitions)
            for name in names(settings)}


async def store_status(settings: Settings, *, views: bool = True) -> StoreStatus:
    """Read where every partition, consumer and view of the settings' store stands."""
    if settings.store == "memory://":
        raise NotFound("the store is memory:// (private to its process): set TALIX_STORE or "
                       "--store to a file:// or s3:// store")
    journal = open_journal(settings, read_only=True)
    assert isinstance(journal, ObjectStoreJournal)  # not memory://, so the log on a store
    store = journal.store
    try:
        if await _get(store, fmt.MANIFEST) is None:
            raise NotFound(f"no talix-ray application in {store.url} (no {fmt.MANIFEST})")
        await journal.open()
        parts = list(await asyncio.gather(*(_partition(journal, p)
                                            for p in range(journal.partitions))))
        heads = {s.partition: s.head for s in parts}
        now_us = time.time_ns() // 1000
        consumers = []
        for name in await _consumers(store):
            offsets = dict(await asyncio.gather(*(_checkpoint(journal, name, p)
                                                  for p in heads)))
            consumers.append(await _lag(journal, name, "consumer", heads, offsets, now_us))
        if views:
            offsets_of = await asyncio.to_thread(_view_offsets, settings, journal.partitions)
            for name, offsets in offsets_of.items():
                consumers.append(await _lag(journal, name, "view", heads, offsets, now_us))
        return StoreStatus(store=store.url, checked_at=datetime.now(UTC), partitions=parts,
                           consumers=consumers, deadletters=await _deadletters(store))
    except (KeyError, ValueError) as exc:
        raise CorruptObject(f"unexpected content in {store.url}: {exc}") from None
    finally:
        await journal.close()


async def _checkpoint(journal: ObjectStoreJournal, consumer: str, p: int) -> tuple[int, int]:
    seq, _ = await journal.load_checkpoint(consumer, p)
    return p, seq


__all__ = ["ConsumerStatus", "PartitionStatus", "StoreStatus", "store_status"]
