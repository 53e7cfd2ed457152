"""Event storage: the journal interface and its implementations."""

from .base import Commit, Journal, Segment, Snapshot, stable_partition
from .memory import MemoryJournal

__all__ = ["Commit", "Journal", "MemoryJournal", "Segment", "Snapshot", "stable_partition"]
