"""Object storage: one small interface, three backends (memory, local directory, S3)."""

from __future__ import annotations

from typing import Unpack
from urllib.parse import urlsplit

from .base import (
    AmbiguousWrite,
    Listing,
    ObjectExists,
    ObjectNotFound,
    ObjectStore,
    PreconditionFailed,
    S3Options,
    StoredObject,
)
from .counting import CountingObjectStore
from .faults import FaultyObjectStore
from .local import LocalObjectStore
from .memory import MemoryObjectStore
from .metered import MeteredObjectStore


def open_store(url: str, **s3_options: Unpack[S3Options]) -> ObjectStore:
    """``memory://``, ``file:///path`` or ``s3://bucket/prefix`` → an object store (requests
    to a directory or S3 counted in ``talix_objectstore_requests``)."""
    parts = urlsplit(url)
    if parts.scheme == "memory":
        return MemoryObjectStore()
    if parts.scheme == "file":
        if not parts.path:
            raise ValueError(f"invalid store URL {url!r}: file:///absolute/path")
        return MeteredObjectStore(LocalObjectStore(parts.path))
    if parts.scheme == "s3":
        from .s3 import S3ObjectStore

        return MeteredObjectStore(S3ObjectStore(parts.netloc, parts.path,
                                                **s3_options))
    raise ValueError(f"unsupported store URL {url!r}: use memory://, file:///path or "
                     "s3://bucket/prefix")


__all__ = ["AmbiguousWrite", "CountingObjectStore", "FaultyObjectStore", "Listing",
           "LocalObjectStore", "MemoryObjectStore", "MeteredObjectStore", "ObjectExists",
           "ObjectNotFound", "ObjectStore", "PreconditionFailed", "S3Options", "StoredObject",
           "open_store"]
