"""File storage as a shared service: put bytes, get them back by key."""

from __future__ import annotations

import contextlib
import hashlib
from abc import ABC, abstractmethod

from ..model.errors import NotFound, ValidationError
from ..objectstore import ObjectExists, ObjectNotFound, ObjectStore


class FileStorage(ABC):
    """Content-addressed blob storage for uploaded files."""

    max_size: int = 50 * 1024 * 1024

    @abstractmethod
    async def put(self, content: bytes, content_type: str) -> str:
        """Store ``content``; return its key."""

    @abstractmethod
    async def get(self, key: str) -> bytes:
        """The content stored under ``key``; :class:`NotFound` otherwise."""

    def key_for(self, content: bytes, content_type: str) -> str:
        """The key of a content: ``files/<sha256>``, so a re-upload is idempotent."""
        if not isinstance(content, bytes | bytearray):
            raise ValidationError("file content must be bytes")
        if len(content) > self.max_size:
            raise ValidationError(f"file too large: {len(content)} bytes > {self.max_size}")
        if not isinstance(content_type, str) or "/" not in content_type:
            raise ValidationError(f"invalid content type {content_type!r}")
        return "files/" + hashlib.sha256(bytes(content)).hexdigest()


class MemoryFileStorage(FileStorage):
    """Files in a dict, for tests and the memory runtime."""

    def __init__(self) -> None:
        self._files: dict[str, bytes] = {}

    async def put(self, content: bytes, content_type: str) -> str:
        key = self.key_for(content, content_type)
        self._files[key] = bytes(content)
        return key

    async def get(self, key: str) -> bytes:
        try:
            return self._files[key]
        except KeyError:
            raise NotFound(f"no file stored under {key!r}") from None


class ObjectStoreFileStorage(FileStorage):
    """Files as objects (``files/<sha256>``) in the application's object store."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    async def put(self, content: bytes, content_type: str) -> str:
        key = self.key_for(content, content_type)
        with contextlib.suppress(ObjectExists):  # same content, same key: already stored
            await self.store.create(key, bytes(content))
        return key

    async def get(self, key: str) -> bytes:
        if not isinstance(key, str) or not key.startswith("files/"):
            raise NotFound(f"no file stored under {key!r}")
        try:
            return (await self.store.get(key)).body
        except ObjectNotFound:
            raise NotFound(f"no file stored under {key!r}") from None
