"""Shared services: what actions and commands get from ``ctx.get(...)``."""

from .clock import Clock, FixedClock, SystemClock
from .downloader import DownloadedFile, Downloader
from .files import FileStorage, MemoryFileStorage, ObjectStoreFileStorage
from .ids import IdGenerator, SequentialIds, UlidGenerator

__all__ = [
    "Clock", "DownloadedFile", "Downloader", "FileStorage", "FixedClock", "IdGenerator",
    "MemoryFileStorage", "ObjectStoreFileStorage", "SequentialIds", "SystemClock", "UlidGenerator",
]
