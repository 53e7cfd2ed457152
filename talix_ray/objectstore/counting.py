"""A wrapper that counts the requests made, by kind (for budgets and benchmarks)."""

from __future__ import annotations

from collections import Counter

from .base import Listing, ObjectStore, StoredObject


class CountingObjectStore(ObjectStore):
    """Counts calls per operation and per top-level key folder (``journal``, ``streams``…)."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.url = inner.url
        self.calls: Counter[str] = Counter()
        self.puts: Counter[str] = Counter()

    def _put(self, key: str) -> None:
        self.calls["put"] += 1
        self.puts[key.split("/", 1)[0]] += 1

    async def create(self, key: str, body: bytes) -> str:
        self._put(key)
        return await self.inner.create(key, body)

    async def put_if_match(self, key: str, body: bytes, etag: str) -> str:
        self._put(key)
        return await self.inner.put_if_match(key, body, etag)

    async def get(self, key: str) -> StoredObject:
        self.calls["get"] += 1
        return await self.inner.get(key)

    async def list(self, prefix: str, *, start_after: str | None = None,
                   delimiter: str | None = None, limit: int = 1000,
                   token: str | None = None) -> Listing:
        self.calls["list"] += 1
        return await self.inner.list(prefix, start_after=start_after, delimiter=delimiter,
                                     limit=limit, token=token)

    async def delete(self, key: str) -> None:
        self.calls["delete"] += 1
        await self.inner.delete(key)

    async def close(self) -> None:
        await self.inner.close()
