"""The object store interface: five operations, and the errors they raise.

Conditional create (``If-None-Match: *``) and compare-and-swap (``If-Match``) are the two
atomic primitives the journal is built on (DESIGN §3).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

from ..model.errors import StorageError, TalixError

if TYPE_CHECKING:
    from ..secrets import Secret


class ObjectExists(TalixError):
    """A create-if-absent found the key taken (HTTP 412)."""

    code = "object_exists"
    status = 412


class PreconditionFailed(TalixError):
    """A put-if-match found another version of the object (HTTP 412)."""

    code = "precondition_failed"
    status = 412


class ObjectNotFound(TalixError):
    """No object under that key."""

    code = "object_not_found"
    status = 404


class AmbiguousWrite(StorageError):
    """A write whose outcome is unknown (timeout, reset, lost response): read it back."""

    code = "ambiguous_write"


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An object's content and entity tag."""

    body: bytes
    etag: str


@dataclass(frozen=True, slots=True)
class Listing:
    """A page of a listing: keys, common prefixes (with a delimiter), whether it was cut and,
    if so, where the next page starts (``next_token``, for :meth:`ObjectStore.list`)."""

    keys: list[str] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    truncated: bool = False
    next_token: str | None = None


class S3Options(TypedDict, total=False):
    """Keyword arguments of an S3 store (``open_store("s3://…", **options)``)."""

    endpoint_url: str | None
    region: str | None
    access_key: str | None
    secret_key: Secret | None
    max_attempts: int
    connect_timeout: float
    read_timeout: float
    max_connections: int


class ObjectStore(ABC):
    """A flat key space of immutable-by-default objects."""

    url: str = ""

    @abstractmethod
    async def create(self, key: str, body: bytes) -> str:
        """Create ``key`` iff absent; returns the etag. :class:`ObjectExists` otherwise."""

    @abstractmethod
    async def put_if_match(self, key: str, body: bytes, etag: str) -> str:
        """Replace ``key`` iff its etag is ``etag``; :class:`PreconditionFailed` otherwise."""

    @abstractmethod
    async def get(self, key: str) -> StoredObject:
        """The object under ``key``; :class:`ObjectNotFound` otherwise."""

    async def get_many(self, keys: Sequence[str]) -> list[StoredObject | None]:
        """The objects under ``keys``, in order, ``None`` for each one absent: concurrent
        GETs (a backend may read them in one go)."""
        async def one(key: str) -> StoredObject | None:
            try:
                return await self.get(key)
            except ObjectNotFound:
                return None
        return list(await asyncio.gather(*(one(k) for k in keys)))

    async def get_range(self, key: str, start: int, length: int) -> bytes:
        """``length`` bytes of the object under ``key`` from offset ``start`` (fewer at its
        end); :class:`ObjectNotFound` if there is none. Backends read only that range."""
        body = (await self.get(key)).body
        return body[start:start + length]

    @abstractmethod
    async def list(self, prefix: str, *, start_after: str | None = None,
                   delimiter: str | None = None, limit: int = 1000,
                   token: str | None = None) -> Listing:
        """Keys under ``prefix`` after ``start_after``; one page.

        Within one folder level keys come in byte order; across levels a server may list
        folder by folder (SeaweedFS). ``token`` is a previous page's ``next_token``: the
        page that follows it in the server's own order.
        """

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove ``key`` (no error if absent)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def table_location(self, path: str) -> tuple[str, dict[str, Any]] | None:
        """Where other engines (Delta Lake) reach ``path`` of this store: a URI and its
        storage options (secrets among them as ``SecretStr``); ``None`` when the store is
        private to this process."""
        return None

    async def list_all(self, prefix: str, *, start_after: str | None = None,
                       delimiter: str | None = None, limit: int = 1000) -> Listing:
        """Every page of a listing (``limit`` entries a page), each key once, in byte order.

        Pages follow each other by the server's continuation token, so the listing is
        complete whatever order the server lists in; a key repeated across pages is kept
        once, and a server that hands out a token twice ends in :class:`StorageError`
        instead of a loop.
        """
        keys: dict[str, None] = {}
        prefixes: dict[str, None] = {}
        token: str | None = None
        tokens: set[str] = set()
        while True:
            page = await self.list(prefix, start_after=start_after, delimiter=delimiter,
                                   limit=limit, token=token)
            keys.update(dict.fromkeys(page.keys))
            prefixes.update(dict.fromkeys(page.prefixes))
            if not page.truncated:
                return Listing(sorted(keys), sorted(prefixes))
            token = page.next_token
            if token is None or token in tokens:
                raise StorageError(f"listing {prefix!r} does not progress "
                                   f"(continuation token {token!r} again)")
            tokens.add(token)


def check_key(key: str) -> str:
    """Keys are non-empty, relative, with no empty, '.' or '..' segments."""
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in key.split("/")):
        raise ValueError(f"invalid object key {key!r}")
    return key
