"""Objects in a dict (tests, the memory:// store)."""

from __future__ import annotations

import bisect
import hashlib
import itertools

from .base import (
    Listing,
    ObjectExists,
    ObjectNotFound,
    ObjectStore,
    PreconditionFailed,
    StoredObject,
    check_key,
)


class MemoryObjectStore(ObjectStore):
    """An in-process object store with real create-if-absent and compare-and-swap semantics."""

    def __init__(self) -> None:
        self.url = "memory://"
        self._objects: dict[str, StoredObject] = {}
        self._keys: list[str] = []
        self._gen = itertools.count(1)

    def _etag(self, body: bytes) -> str:
        return f'"{hashlib.md5(body).hexdigest()}-{next(self._gen)}"'

    async def create(self, key: str, body: bytes) -> str:
        check_key(key)
        if key in self._objects:
            raise ObjectExists(f"{key} exists")
        obj = self._objects[key] = StoredObject(bytes(body), self._etag(body))
        bisect.insort(self._keys, key)
        return obj.etag

    async def put_if_match(self, key: str, body: bytes, etag: str) -> str:
        check_key(key)
        current = self._objects.get(key)
        if current is None or current.etag != etag:
            raise PreconditionFailed(f"{key} changed")
        obj = self._objects[key] = StoredObject(bytes(body), self._etag(body))
        return obj.etag

    async def get(self, key: str) -> StoredObject:
        try:
            return self._objects[key]
        except KeyError:
            raise ObjectNotFound(f"no object {key}") from None

    async def get_range(self, key: str, start: int, length: int) -> bytes:
        return (await self.get(key)).body[start:start + length]

    async def list(self, prefix: str, *, start_after: str | None = None,
                   delimiter: str | None = None, limit: int = 1000,
                   token: str | None = None) -> Listing:
        if token is not None:  # this store lists in byte order: the token is the last entry
            start_after = token
        start = bisect.bisect_left(self._keys, prefix)
        if start_after is not None and start_after >= prefix:
            start = bisect.bisect_right(self._keys, start_after)
        keys: list[str] = []
        prefixes: list[str] = []
        for key in itertools.islice(self._keys, start, None):
            if not key.startswith(prefix):
                break
            if len(keys) + len(prefixes) >= limit:
                return Listing(keys, prefixes, True, max([*keys, *prefixes]))
            if delimiter:
                cut = key.find(delimiter, len(prefix))
                if cut >= 0:
                    common = key[: cut + len(delimiter)]
                    if (not prefixes or prefixes[-1] != common) and \
                            (start_after is None or common > start_after):
                        prefixes.append(common)
                    continue
            keys.append(key)
        return Listing(keys, prefixes, False)

    async def delete(self, key: str) -> None:
        if self._objects.pop(key, None) is not None:
            self._keys.remove(key)
