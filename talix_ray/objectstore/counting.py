"""A wrapper that counts the requests made, by kind (for budgets and benchmarks)."""

from __future__ import annotations

from collections import Counter

from .base import Listing, ObjectStore, StoredObject


def folder_of(key: str) -> str:
    """The top-level folder of a key or prefix (``journal``, ``index``, ``writers``…)."""
    return key.split("/", 1)[0]


class CountingObjectStore(ObjectStore):
    """Counts calls per operation (``calls``), PUTs per top-level folder (``puts``) and every
    request by operation and folder (``requests[("list", "journal")]``). A ranged read counts
    as a ``get``. Other engines reach the inner store's location directly
    (:meth:`table_location`): their requests are not counted here."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.url = inner.url
        self.calls: Counter[str] = Counter()
        self.puts: Counter[str] = Counter()
        self.requests: Counter[tuple[str, str]] = Counter()

    def _count(self, op: str, key: str) -> None:
        self.calls[op] += 1
        self.requests[(op, folder_of(key))] += 1
        if op == "put":
            self.puts[folder_of(key)] += 1

    def table_location(self, path: str) -> tuple[str, dict[str, str]] | None:
        return self.inner.table_location(path)

    async def create(self, key: str, body: bytes) -> str:
        self._count("put", key)
        return await self.inner.create(key, body)

    async def put_if_match(self, key: str, body: bytes, etag: str) -> str:
        self._count("put", key)
        return await self.inner.put_if_match(key, body, etag)

    async def get(self, key: str) -> StoredObject:
        self._count("get", key)
        return await self.inner.get(key)

    async def get_range(self, key: str, start: int, length: int) -> bytes:
        self._count("get", key)
        return await self.inner.get_range(key, start, length)

    async def list(self, prefix: str, *, start_after: str | None = None,
                   delimiter: str | None = None, limit: int = 1000,
                   token: str | None = None) -> Listing:
        self._count("list", prefix)
        return await self.inner.list(prefix, start_after=start_after, delimiter=delimiter,
                                     limit=limit, token=token)

    async def delete(self, key: str) -> None:
        self._count("delete", key)
        await self.inner.delete(key)

    async def close(self) -> None:
        await self.inner.close()
