"""Event storage: the journal interface and its implementations."""

from .base import Commit, Journal, Segment, Snapshot, stable_partition
from .log import ObjectStoreJournal
from .memory import MemoryJournal
from .writer import WriterPolicy

__all__ = ["Commit", "Journal", "MemoryJournal", "ObjectStoreJournal", "Segment", "Snapshot",
           "WriterPolicy", "stable_partition"]
