"""The journal that :class:`~talix_ray.settings.Settings` describe."""

from __future__ import annotations

from ..objectstore import open_store
from ..settings import Settings
from .base import Journal
from .log import ObjectStoreJournal
from .memory import MemoryJournal
from .writer import WriterPolicy


def writer_policy(settings: Settings) -> WriterPolicy:
    """The journal's policy (size limits, memory bounds, load index) from the settings."""
    s = settings
    return WriterPolicy(max_event_bytes=s.max_event_bytes,
                        max_commit_bytes=s.max_commit_bytes,
                        heads_bytes=s.writer_heads_bytes,
                        segment_cache_bytes=s.segment_cache_bytes,
                        index_memtable_bytes=s.index_memtable_bytes,
                        index_lag_segments=s.index_lag_segments,
                        index_table_bytes=s.index_table_bytes,
                        index_cache_bytes=s.index_cache_bytes)


def open_journal(settings: Settings | None = None, *, read_only: bool = False) -> Journal:
    """The journal the settings describe: a MemoryJournal for ``memory://``, otherwise the
    partitioned log on the object store (``read_only``: one that never writes the log, for
    tools reading it beside a running application)."""
    s = settings or Settings()
    if s.store == "memory://":
        return MemoryJournal(partitions=s.partitions or 1, max_event_bytes=s.max_event_bytes,
                             max_commit_bytes=s.max_commit_bytes)
    store = open_store(s.store, **s.store_options())
    return ObjectStoreJournal(store, partitions=s.partitions, owned=[] if read_only else None,
                              policy=writer_policy(s))


__all__ = ["open_journal", "writer_policy"]
