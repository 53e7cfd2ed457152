"""Sorted tables: the immutable objects of the load index (DESIGN §3).

A table holds entries ``(key, value)`` sorted by key, in blocks of about ``block_bytes``, then
a meta section: the first and last key, offset and length of every block, and a Bloom filter
over the aggregates (``(store, aggregate id)``) the table holds. A reader fetches the meta once
(one ranged GET, cached) and then only the blocks a lookup needs; an aggregate the filter
rules out costs no request at all.

Keys are tuples, compared as Python compares them (strings by code point, which is UTF-8 byte
order):

* ``("a", store, id, 0, version)`` — an event;
* ``("a", store, id, 1, fingerprint, version)`` — a snapshot;
* ``("i", store, id)`` — the aggregate exists (what ``list_aggregate_ids`` walks).

Everything of one aggregate is contiguous; ids of one store are contiguous too, apart from
the events, so a page of ids is a block or two whatever the length of the streams. A value of
``None`` is a tombstone (a deleted snapshot).
"""

from __future__ import annotations

import base64
import bisect
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from ..model.errors import CorruptObject

Key = tuple[Any, ...]
Entry = tuple[Key, Any]
FORMAT = 1
BLOOM_BITS_PER_KEY = 10
BLOOM_HASHES = 7


def agg_lo(store: str, aggregate_id: str) -> Key:
    """The first key of an aggregate's entries."""
    return ("a", store, aggregate_id)


def agg_hi(store: str, aggregate_id: str) -> Key:
    """Above every key of an aggregate (ids hold no control characters)."""
    return ("a", store, aggregate_id + "\x00")


def event_key(store: str, aggregate_id: str, version: int) -> Key:
    """The key of one event."""
    return ("a", store, aggregate_id, 0, version)


def snapshot_key(store: str, aggregate_id: str, fingerprint: str, version: int) -> Key:
    """The key of one snapshot."""
    return ("a", store, aggregate_id, 1, fingerprint, version)


def snapshots_lo(store: str, aggregate_id: str) -> Key:
    """The first key of an aggregate's snapshots (all fingerprints)."""
    return ("a", store, aggregate_id, 1)


def snapshots_hi(store: str, aggregate_id: str) -> Key:
    """Above every snapshot key of an aggregate."""
    return ("a", store, aggregate_id, 2)


def id_key(store: str, aggregate_id: str) -> Key:
    """The listing entry of an aggregate."""
    return ("i", store, aggregate_id)


def ids_lo(store: str, after: str | None) -> Key:
    """The first listing key of ``store`` above ``after`` (every id above ``after`` sorts at
    or above ``after + NUL``)."""
    return ("i", store) if after is None else ("i", store, after + "\x00")


def ids_hi(store: str) -> Key:
    """Above every listing key of ``store``."""
    return ("i", store + "\x00")


def bloom_key(store: str, aggregate_id: str) -> bytes:
    """What the filter holds for an aggregate."""
    return f"{store}\x00{aggregate_id}".encode()


def _hashes(item: bytes) -> tuple[int, int]:
    d = hashlib.blake2b(item, digest_size=16).digest()
    return int.from_bytes(d[:8], "little"), int.from_bytes(d[8:], "little") | 1


class Bloom:
    """A Bloom filter: ``BLOOM_BITS_PER_KEY`` bits a key, ~1 % false positives."""

    __slots__ = ("bits", "m")

    def __init__(self, bits: bytearray | bytes) -> None:
        self.bits = bits
        self.m = len(bits) * 8

    @classmethod
    def build(cls, items: Iterable[bytes], count: int) -> Bloom:
        """A filter holding ``items`` (about ``count`` of them)."""
        m = max(64, count * BLOOM_BITS_PER_KEY)
        bits = bytearray((m + 7) // 8)
        m = len(bits) * 8
        for item in items:
            h1, h2 = _hashes(item)
            for i in range(BLOOM_HASHES):
                b = (h1 + i * h2) % m
                bits[b >> 3] |= 1 << (b & 7)
        return cls(bits)

    def __contains__(self, item: bytes) -> bool:
        h1, h2 = _hashes(item)
        m, bits = self.m, self.bits
        for i in range(BLOOM_HASHES):
            b = (h1 + i * h2) % m
            if not bits[b >> 3] & (1 << (b & 7)):
                return False
        return True


@dataclass(frozen=True, slots=True)
class TableRef:
    """A table as the manifest names it: enough to skip it, or to fetch its meta."""

    key: str
    size: int
    meta_at: int
    first: Key
    last: Key
    entries: int

    def to_json(self) -> list[Any]:
        """The manifest's form."""
        return [self.key, self.size, self.meta_at, list(self.first), list(self.last),
                self.entries]

    @classmethod
    def from_json(cls, raw: list[Any]) -> TableRef:
        """Parse the manifest's form (``ValueError``/``TypeError``/``KeyError`` if damaged)."""
        key, size, meta_at, first, last, entries = raw
        return cls(str(key), int(size), int(meta_at), tuple(first), tuple(last), int(entries))

    def overlaps(self, lo: Key, hi: Key) -> bool:
        """Whether the table may hold a key in ``[lo, hi)``."""
        return self.first < hi and self.last >= lo


@dataclass(frozen=True, slots=True)
class TableMeta:
    """A table's block index and filter."""

    firsts: list[Key]
    lasts: list[Key]
    offsets: list[int]
    lengths: list[int]
    bloom: Bloom
    size: int  # bytes the meta takes in memory (roughly): what a cache counts

    def blocks_in(self, lo: Key, hi: Key) -> range:
        """The blocks that may hold a key in ``[lo, hi)``."""
        start = bisect.bisect_left(self.lasts, lo)
        end = bisect.bisect_left(self.firsts, hi)
        return range(start, max(start, end))


class TableBuilder:
    """Accumulates sorted entries into blocks; :meth:`finish` returns the object's bytes."""

    def __init__(self, block_bytes: int = 64 * 1024) -> None:
        self.block_bytes = block_bytes
        self._out: list[bytes] = []
        self._size = 0
        self._block: list[bytes] = []
        self._block_size = 0
        self._block_first: Key | None = None
        self._last: Key | None = None
        self._index: list[list[Any]] = []
        self._aggs: list[bytes] = []
        self._last_agg: tuple[str, str] | None = None
        self.entries = 0
        self.first: Key | None = None

    @property
    def size(self) -> int:
        """Bytes so far (blocks written and the open one)."""
        return self._size + self._block_size

    def add(self, key: Key, value: Any) -> None:
        """Append an entry; keys must come in increasing order."""
        if self._last is not None and key <= self._last:
            raise ValueError(f"table keys out of order: {key!r} after {self._last!r}")
        part = orjson.dumps([key, value])
        if self._block_first is None:
            self._block_first = key
        self._block.append(part)
        self._block_size += len(part) + 1
        self._last = key
        if self.first is None:
            self.first = key
        self.entries += 1
        agg = (key[1], key[2])
        if agg != self._last_agg:
            self._last_agg = agg
            self._aggs.append(bloom_key(*agg))
        if self._block_size >= self.block_bytes:
            self._close_block()

    def _close_block(self) -> None:
        if not self._block:
            return
        body = b"[" + b",".join(self._block) + b"]"
        self._index.append([list(self._block_first or ()), list(self._last or ()), self._size,
                            len(body)])
        self._out.append(body)
        self._size += len(body)
        self._block, self._block_size, self._block_first = [], 0, None

    def finish(self) -> tuple[bytes, int]:
        """The table's bytes and the offset of its meta section."""
        self._close_block()
        aggs = list(dict.fromkeys(self._aggs))
        bloom = Bloom.build(aggs, len(aggs))
        meta = orjson.dumps({"f": FORMAT, "blocks": self._index,
                             "bloom": base64.b64encode(bytes(bloom.bits)).decode()})
        return b"".join(self._out) + meta, self._size

    def ref(self, key: str, body: bytes, meta_at: int) -> TableRef:
        """The manifest entry of the finished table stored under ``key``."""
        assert self.first is not None and self._last is not None
        return TableRef(key, len(body), meta_at, self.first, self._last, self.entries)


def build_table(entries: Iterable[Entry], block_bytes: int = 64 * 1024
                ) -> tuple[TableBuilder, bytes, int]:
    """A whole table from sorted entries (the builder, the bytes, the meta offset)."""
    builder = TableBuilder(block_bytes)
    for key, value in entries:
        builder.add(key, value)
    body, meta_at = builder.finish()
    return builder, body, meta_at


def decode_meta(key: str, raw: bytes) -> TableMeta:
    """Parse a table's meta section; :class:`CorruptObject` naming ``key`` if damaged."""
    try:
        obj = orjson.loads(raw)
        if obj.get("f") != FORMAT:
            raise CorruptObject(f"{key}: unknown table format {obj.get('f')!r}")
        blocks = obj["blocks"]
        bits = base64.b64decode(obj["bloom"])
        return TableMeta([tuple(b[0]) for b in blocks], [tuple(b[1]) for b in blocks],
                         [int(b[2]) for b in blocks], [int(b[3]) for b in blocks], Bloom(bits),
                         len(raw) * 3 + len(bits))
    except CorruptObject:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise CorruptObject(f"{key}: damaged table meta ({exc!r})") from None


def decode_block(key: str, raw: bytes) -> list[Entry]:
    """Parse one block; :class:`CorruptObject` naming ``key`` if damaged."""
    try:
        return [(tuple(k), v) for k, v in orjson.loads(raw)]
    except (ValueError, TypeError) as exc:
        raise CorruptObject(f"{key}: damaged table block ({exc!r})") from None
