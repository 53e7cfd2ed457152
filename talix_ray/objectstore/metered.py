"""An object store that counts its requests in the ``talix_objectstore_requests`` metric."""

from __future__ import annotations

from typing import Any

from ..observability.metrics import STORE_REQUESTS
from .base import Listing, ObjectStore, StoredObject
from .counting import folder_of


class MeteredObjectStore(ObjectStore):
    """Wraps a store: every request adds one to ``talix_objectstore_requests{op, kind}``
    (``op``: get, put, list, delete — a ranged read is a get; ``kind``: the key's top-level
    folder, such as ``journal``, ``index``, ``checkpoints`` or ``files``). Other attributes
    (``bucket``, ``root`` …) are the inner store's."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.url = inner.url

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def table_location(self, path: str) -> tuple[str, dict[str, str]] | None:
        return self.inner.table_location(path)

    async def create(self, key: str, body: bytes) -> str:
        STORE_REQUESTS.inc("put", folder_of(key))
        return await self.inner.create(key, body)

    async def put_if_match(self, key: str, body: bytes, etag: str) -> str:
        STORE_REQUESTS.inc("put", folder_of(key))
        return await self.inner.put_if_match(key, body, etag)

    async def get(self, key: str) -> StoredObject:
        STORE_REQUESTS.inc("get", folder_of(key))
        return await self.inner.get(key)

    async def get_range(self, key: str, start: int, length: int) -> bytes:
        STORE_REQUESTS.inc("get", folder_of(key))
        return await self.inner.get_range(key, start, length)

    async def list(self, prefix: str, *, start_after: str | None = None,
                   delimiter: str | None = None, limit: int = 1000,
                   token: str | None = None) -> Listing:
        STORE_REQUESTS.inc("list", folder_of(prefix))
        return await self.inner.list(prefix, start_after=start_after, delimiter=delimiter,
                                     limit=limit, token=token)

    async def delete(self, key: str) -> None:
        STORE_REQUESTS.inc("delete", folder_of(key))
        await self.inner.delete(key)

    async def close(self) -> None:
        await self.inner.close()
