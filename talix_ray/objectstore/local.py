"""Objects as files under a directory (the file:// store), safe across processes."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import hashlib
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

from .base import (
    Listing,
    ObjectExists,
    ObjectNotFound,
    ObjectStore,
    PreconditionFailed,
    StoredObject,
    check_key,
)

_TMP = ".tmp-"


def _too_long(exc: OSError) -> bool:
    """Whether ``exc`` says a name in a path is longer than the file system holds."""
    return exc.errno == errno.ENAMETOOLONG


def _unstorable(key: str) -> ValueError:
    return ValueError(f"invalid object key {key[:80]!r}...: a name in it is too long for this "
                      "file system (255 bytes)")


def _fsync_dir(folder: Path) -> None:
    """Make the names in ``folder`` durable (created, replaced or removed entries)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalObjectStore(ObjectStore):
    """Each object is a file. Create is atomic via ``link()`` (fails if the name exists);
    compare-and-swap holds an ``flock`` on a lock file while it compares and renames.

    Durable once acknowledged: the content is fsynced before it gets its name, and the folder
    after every ``link``/``replace``/``unlink`` (and the parent of every folder created), so a
    power loss cannot take back a write that returned.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = f"file://{self.root}"

    def table_location(self, path: str) -> tuple[str, dict[str, str]] | None:
        return str(self.root / check_key(path)), {}

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    @staticmethod
    def _etag(body: bytes) -> str:
        return f'"{hashlib.md5(body).hexdigest()}"'

    def _makedirs(self, folder: Path) -> None:
        """Create ``folder`` and its missing parents, each one durable in its parent."""
        if folder.is_dir():
            return
        self._makedirs(folder.parent)
        try:
            folder.mkdir()
        except FileExistsError:
            return
        _fsync_dir(folder.parent)

    def _write_tmp(self, path: Path, body: bytes) -> Path:
        self._makedirs(path.parent)
        tmp = path.parent / f"{_TMP}{uuid.uuid4().hex}"
        with open(tmp, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        return tmp

    def _create(self, key: str, body: bytes) -> str:
        path = self._path(key)
        tmp = self._write_tmp(path, body)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise ObjectExists(f"{key} exists") from None
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(path.parent)  # the new name survives a power loss
        return self._etag(body)

    def _put_if_match(self, key: str, body: bytes, etag: str) -> str:
        path = self._path(key)
        self._makedirs(path.parent)
        with open(path.parent / f".lock-{path.name}", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                current = path.read_bytes()
            except FileNotFoundError:
                raise PreconditionFailed(f"{key} does not exist") from None
            if self._etag(current) != etag:
                raise PreconditionFailed(f"{key} changed")
            tmp = self._write_tmp(path, body)
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        return self._etag(body)

    def _get(self, key: str) -> StoredObject:
        try:
            body = self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(f"no object {key}") from None
        except OSError as exc:
            if _too_long(exc):  # no object can have that name
                raise ObjectNotFound(f"no object {key}") from None
            raise
        return StoredObject(body, self._etag(body))

    def _get_range(self, key: str, start: int, length: int) -> bytes:
        try:
            with open(self._path(key), "rb") as f:
                f.seek(start)
                return f.read(length)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(f"no object {key}") from None
        except OSError as exc:
            if _too_long(exc):
                raise ObjectNotFound(f"no object {key}") from None
            raise

    def _list(self, prefix: str, start_after: str | None, delimiter: str | None,
              limit: int) -> Listing:
        keys = sorted(self._walk(prefix))
        out_keys: list[str] = []
        prefixes: list[str] = []
        for key in keys:
            if start_after is not None and key <= start_after:
                continue
            if delimiter:
                cut = key.find(delimiter, len(prefix))
                if cut >= 0:
                    common = key[: cut + len(delimiter)]
                    if start_after is not None and common <= start_after:
                        continue
                    if not prefixes or prefixes[-1] != common:
                        if len(out_keys) + len(prefixes) >= limit:
                            return Listing(out_keys, prefixes, True,
                                           max([*out_keys, *prefixes]))
                        prefixes.append(common)
                    continue
            if len(out_keys) + len(prefixes) >= limit:
                return Listing(out_keys, prefixes, True, max([*out_keys, *prefixes]))
            out_keys.append(key)
        return Listing(out_keys, prefixes, False)

    def _walk(self, prefix: str) -> list[str]:
        # walk only the deepest directory the prefix names
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        top = self.root / base if base else self.root
        found: list[str] = []
        try:
            if not top.is_dir():
                return found
        except OSError as exc:
            if _too_long(exc):  # no object can be under that name
                return found
            raise
        for dirpath, _dirs, files in os.walk(top):
            rel = os.path.relpath(dirpath, self.root)
            for name in files:
                if name.startswith((_TMP, ".lock-")):
                    continue
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix):
                    found.append(key)
        return found

    def _delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            if _too_long(exc):
                return
            raise
        _fsync_dir(path.parent)

    async def create(self, key: str, body: bytes) -> str:
        try:
            return await asyncio.to_thread(self._create, key, body)
        except OSError as exc:
            if _too_long(exc):
                raise _unstorable(key) from None
            raise

    async def put_if_match(self, key: str, body: bytes, etag: str) -> str:
        try:
            return await asyncio.to_thread(self._put_if_match, key, body, etag)
        except OSError as exc:
            if _too_long(exc):
                raise _unstorable(key) from None
            raise

    async def get(self, key: str) -> StoredObject:
        return await asyncio.to_thread(self._get, key)

    def _get_many(self, keys: Sequence[str]) -> list[StoredObject | None]:
        out: list[StoredObject | None] = []
        for key in keys:
            try:
                out.append(self._get(key))
            except ObjectNotFound:
                out.append(None)
        return out

    async def get_many(self, keys: Sequence[str]) -> list[StoredObject | None]:
        # one thread reads them all: a file read is quick, a hop to a thread is not
        return await asyncio.to_thread(self._get_many, keys)

    async def get_range(self, key: str, start: int, length: int) -> bytes:
        return await asyncio.to_thread(self._get_range, key, start, length)

    async def list(self, prefix: str, *, start_after: str | None = None,
                   delimiter: str | None = None, limit: int = 1000,
                   token: str | None = None) -> Listing:
        # byte order: a page's token is its last entry, the next page starts after it
        return await asyncio.to_thread(self._list, prefix, token or start_after, delimiter,
                                       limit)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete, key)
