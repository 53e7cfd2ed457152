"""Shared services: what actions and commands get from ``ctx.get(...)``."""

from .clock import Clock, FixedClock, SystemClock
from .downloader import DownloadedFile, Downloader, FileTooLarge, Resolver, UrlNotAllowed
from .filenames import safe_file_name
from .files import FileStorage, MemoryFileStorage, ObjectStoreFileStorage
from .ids import IdGenerator, SequentialIds, UlidGenerator

__all__ = [
    "Clock", "DownloadedFile", "Downloader", "FileStorage", "FileTooLarge", "FixedClock",
    "IdGenerator", "MemoryFileStorage", "ObjectStoreFileStorage", "Resolver", "SequentialIds",
    "SystemClock", "UlidGenerator", "UrlNotAllowed", "safe_file_name",
]
