"""Event storage: the journal interface and its implementations."""

from .base import Commit, Journal, Segment, Snapshot, stable_partition
from .log import ObjectStoreJournal
from .memory import MemoryJournal
from .opening import open_journal, writer_policy
from .writer import WriterPolicy

__all__ = ["Commit", "Journal", "MemoryJournal", "ObjectStoreJournal", "Segment", "Snapshot",
           "WriterPolicy", "open_journal", "stable_partition", "writer_policy"]
