"""Fault injection: an object store wrapper that fails a chosen fraction of calls."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal, TypeVar

from ..model.errors import StorageError
from .base import AmbiguousWrite, Listing, ObjectStore, StoredObject

Fault = Literal["error", "reset", "timeout", "lost_response"]
ALL_FAULTS: tuple[Fault, ...] = ("error", "reset", "timeout", "lost_response")
T = TypeVar("T")


class FaultyObjectStore(ObjectStore):
    """Wraps a real store; each call fails with probability ``rate``.

    * ``error``: a 5xx before anything happened;
    * ``reset``: the connection drops before the request arrived (ambiguous for writes);
    * ``timeout``: the call hangs ``timeout_s`` then fails; the request may or may not have
      been carried out (it is, half the time);
    * ``lost_response``: the call is carried out but its response is lost (ambiguous).
    """

    def __init__(self, inner: ObjectStore, rate: float, *, seed: int | None = None,
                 faults: Sequence[Fault] = ALL_FAULTS, timeout_s: float = 0.05) -> None:
        if not 0 <= rate < 1:
            raise ValueError("rate must be in [0, 1)")
        self.inner = inner
        self.url = inner.url
        self.rate = rate
        self.faults = tuple(faults)
        self.timeout_s = timeout_s
        self._rng = random.Random(seed)
        self.injected: Counter[str] = Counter()
        self.enabled = True

    def _pick(self) -> Fault | None:
        if not self.enabled or self._rng.random() >= self.rate:
            return None
        fault = self._rng.choice(self.faults)
        self.injected[fault] += 1
        return fault

    async def _around(self, op: str, write: bool, call: Callable[[], Awaitable[T]]) -> T:
        fault = self._pick()
        exc_type = AmbiguousWrite if write else StorageError
        if fault == "error":
            raise StorageError(f"injected 503 on {op}")
        if fault == "reset":
            raise exc_type(f"injected connection reset on {op}")
        if fault == "timeout":
            await asyncio.sleep(self.timeout_s)
            if self._rng.random() < 0.5:
                await call()
            raise exc_type(f"injected timeout on {op}")
        result = await call()
        if fault == "lost_response":
            raise exc_type(f"injected lost response on {op}")
        return result

    async def create(self, key: str, body: bytes) -> str:
        return await self._around(f"create {key}", True, lambda: self.inner.create(key, body))

    async def put_if_match(self, key: str, body: bytes, etag: str) -> str:
        return await self._around(f"put {key}", True,
                                  lambda: self.inner.put_if_match(key, body, etag))

    async def get(self, key: str) -> StoredObject:
        return await self._around(f"get {key}", False, lambda: self.inner.get(key))

    async def get_range(self, key: str, start: int, length: int) -> bytes:
        return await self._around(f"get {key}", False,
                                  lambda: self.inner.get_range(key, start, length))

    async def list(self, prefix: str, *, start_after: str | None = None,
                   delimiter: str | None = None, limit: int = 1000,
                   token: str | None = None) -> Listing:
        return await self._around(f"list {prefix}", False, lambda: self.inner.list(
            prefix, start_after=start_after, delimiter=delimiter, limit=limit, token=token))

    async def delete(self, key: str) -> None:
        await self._around(f"delete {key}", True, lambda: self.inner.delete(key))

    async def close(self) -> None:
        await self.inner.close()
