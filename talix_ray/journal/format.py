"""The storage format of the log: keys and (de)serialization of every object.

Every object carries ``"f": 1`` (format version). A damaged or unknown object raises
:class:`~talix_ray.model.errors.CorruptObject` naming its key, never a silent skip.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from ..model.errors import CorruptObject, ValidationError
from ..model.events import StoredEvent
from ..model.names import check_aggregate_id, check_name
from .base import Commit, Segment, SegmentColumns

FORMAT = 1
MANIFEST = "talix.json"
MiB = 1 << 20
MAX_EVENT_BYTES = 1 * MiB  # defaults of TALIX_MAX_EVENT_BYTES / TALIX_MAX_COMMIT_BYTES
MAX_COMMIT_BYTES = 8 * MiB


def segment_prefix(p: int) -> str:
    """The folder of partition ``p``'s segments."""
    return f"journal/{p:04d}/"


def segment_key(p: int, seq: int) -> str:
    """The key of segment ``seq`` of partition ``p``."""
    return f"journal/{p:04d}/{seq:020d}"


def seq_of(key: str) -> int:
    """The seq in a segment key."""
    return int(key.rsplit("/", 1)[1])


def segment_position(key: str) -> tuple[int, int]:
    """``(partition, seq)`` named by a segment key; :class:`CorruptObject` if it names none."""
    parts = key.split("/")
    try:
        if len(parts) != 3 or parts[0] != "journal":
            raise ValueError(key)
        return int(parts[1]), int(parts[2])
    except ValueError:
        raise CorruptObject(f"{key}: not a segment key") from None


def writer_key(p: int) -> str:
    """The epoch record of partition ``p``'s writer."""
    return f"writers/{p:04d}"


def index_prefix(p: int) -> str:
    """The folder of partition ``p``'s load index (its manifest and tables)."""
    return f"index/{p:04d}/"


def manifest_key(p: int) -> str:
    """The manifest of partition ``p``'s load index."""
    return f"index/{p:04d}/manifest"


def table_key(p: int, epoch: int, n: int) -> str:
    """A table of partition ``p``'s load index, the ``n``-th its writer of ``epoch`` wrote."""
    return f"index/{p:04d}/t-{epoch:010d}-{n:012d}"


def checkpoint_key(consumer: str, p: int) -> str:
    """A consumer's offset in partition ``p``."""
    return f"checkpoints/{consumer}/{p:04d}"


def deadletter_prefix(consumer: str) -> str:
    """A consumer's dead letters."""
    return f"deadletters/{consumer}/"


# A key component stays well below the 255-byte file-name limit of local file systems (and
# leaves room for the local store's ``.lock-``/``.tmp-`` companions).
MAX_NAME_BYTES = 200
_UNSAFE_NAME = frozenset("/\\")


def deadletter_key(consumer: str, key: str) -> str:
    """The object key of a dead letter: its own key when that is a safe file name, else a
    hash of it (the record inside keeps the full key)."""
    if (len(key.encode()) > MAX_NAME_BYTES or key in (".", "..") or key.startswith(".")
            or any(c in _UNSAFE_NAME or ord(c) < 32 or ord(c) == 127 for c in key)):
        key = "h-" + hashlib.sha256(key.encode()).hexdigest()
    return deadletter_prefix(consumer) + key


# -- (de)serialization ---------------------------------------------------------------------------
def _json(obj: Any) -> bytes:
    """Compact UTF-8 JSON: orjson, or the standard library for what orjson cannot hold
    (integers over 64 bits)."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def dumps(obj: dict[str, Any]) -> bytes:
    """Compact JSON with the format version."""
    return _json({"f": FORMAT, **obj})


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a block decodes many objects at once.

    Decoding builds acyclic data only, yet every event it keeps is a tracked tuple: with the
    collector on, a segment of a thousand events triggers dozens of collections, some of them
    full (they scan the whole heap). Paused, the collector runs once after the block instead,
    on its normal schedule. Only ever re-enables what it disabled.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def loads(key: str, body: bytes, kind: str) -> dict[str, Any]:
    """Parse an object of ``kind``; :class:`CorruptObject` naming ``key`` if it is not one."""
    try:
        obj = orjson.loads(body)  # several times faster than json on segments
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptObject(f"{key}: not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise CorruptObject(f"{key}: expected a JSON object")
    if obj.get("f") != FORMAT:
        raise CorruptObject(f"{key}: unknown {kind} format {obj.get('f')!r} "
                            f"(this code reads format {FORMAT})")
    return obj


def _event(e: StoredEvent) -> dict[str, Any]:
    d: dict[str, Any] = {"t": e.type, "p": e.payload, "ts": e.timestamp_us}
    if e.schema_version != 1:
        d["sv"] = e.schema_version
    if e.metadata:
        d["m"] = e.metadata
    return d


def decode_events(store: str, agg: str, first: int, raw: list[dict[str, Any]],
                  command_id: str | None) -> tuple[StoredEvent, ...]:
    """A commit's events from their stored records (versions from ``first`` on); raises
    ``KeyError``, ``TypeError`` or ``ValueError`` on a damaged record (the caller names it)."""
    new = tuple.__new__  # StoredEvent(...) minus the keyword handling: this is the hot path
    out = []
    version = first
    for d in raw:
        ts = d["ts"]
        if len(d) == 3:  # type, payload, timestamp: no schema version above 1, no metadata
            sv, m = 1, None
        else:
            sv, m = d.get("sv", 1), d.get("m")
            if type(sv) is not int:
                sv = int(sv)
        out.append(new(StoredEvent, (store, agg, version, d["t"], d["p"],
                                     ts if type(ts) is int else int(ts), command_id, sv, m)))
        version += 1
    return tuple(out)


@dataclass(frozen=True, slots=True)
class SegmentRecord:
    """A decoded segment with the writer's epoch and batch id."""

    segment: Segment
    epoch: int
    batch: str


def encode_segment(p: int, seq: int, epoch: int, batch: str,
                   commits: list[Commit]) -> bytes:
    """A segment object."""
    return dumps({"p": p, "seq": seq, "epoch": epoch, "batch": batch, "commits": [
        {"s": c.store, "a": c.aggregate_id, "x": c.expected_version, "c": c.command_id,
         "e": [_event(e) for e in c.events]} for c in commits]})


def decode_segment(key: str, body: bytes) -> SegmentRecord:
    """Parse a segment object; its body must name the partition and seq its key names."""
    p, seq = segment_position(key)
    with gc_paused():
        obj = loads(key, body, "segment")
        try:
            commits = []
            for c in obj["commits"]:
                store, agg, x, cid = c["s"], c["a"], c["x"], c.get("c")
                if type(x) is not int:
                    x = int(x)
                commits.append(tuple.__new__(Commit, (
                    store, agg, x, decode_events(store, agg, x + 1, c["e"], cid), cid)))
            rec = SegmentRecord(Segment(int(obj["p"]), int(obj["seq"]), tuple(commits)),
                                int(obj["epoch"]), str(obj["batch"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptObject(f"{key}: damaged segment ({exc!r})") from None
    if (rec.segment.partition, rec.segment.seq) != (p, seq):
        raise CorruptObject(f"{key}: the segment says partition {rec.segment.partition} seq "
                            f"{rec.segment.seq}, its key partition {p} seq {seq}")
    return rec


def decode_segment_columns(key: str, body: bytes) -> SegmentColumns:
    """Parse a segment object straight into columns: the events :func:`decode_segment` would
    give, field by field, checked as it checks them (:class:`CorruptObject` on the same
    damage), without a tuple per event or per commit."""
    p, seq = segment_position(key)
    with gc_paused():
        obj = loads(key, body, "segment")
        try:
            cols = SegmentColumns(int(obj["p"]), int(obj["seq"]))
            stores, aggs, versions, cids = (cols.store, cols.aggregate_id, cols.version,
                                            cols.command_id)
            records: list[Any] = []
            for c in obj["commits"]:
                store, agg, x, cid, raw = c["s"], c["a"], c["x"], c.get("c"), c["e"]
                if type(x) is not int:
                    x = int(x)
                n = len(raw)
                if n:
                    records += raw
                    stores += [store] * n
                    aggs += [agg] * n
                    cids += [cid] * n
                    versions += range(x + 1, x + 1 + n)
            # each event record as decode_events reads it: type, payload and timestamp
            # required, schema version (default 1) and metadata optional, numbers as ints
            stamps = [d["ts"] for d in records]
            cols.type = [d["t"] for d in records]
            cols.payload = [d["p"] for d in records]
            svs = [d.get("sv", 1) for d in records]
            cols.metadata = [d.get("m") for d in records]
            cols.timestamp_us = stamps if all(type(t) is int for t in stamps) else \
                [t if type(t) is int else int(t) for t in stamps]
            cols.schema_version = svs if all(type(v) is int for v in svs) else \
                [v if type(v) is int else int(v) for v in svs]
            int(obj["epoch"]), str(obj["batch"])  # present and well typed, as decode_segment
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptObject(f"{key}: damaged segment ({exc!r})") from None
    if (cols.partition, cols.seq) != (p, seq):
        raise CorruptObject(f"{key}: the segment says partition {cols.partition} seq "
                            f"{cols.seq}, its key partition {p} seq {seq}")
    return cols


def event_size(e: StoredEvent) -> int:
    """The size in bytes of an event as a segment stores it."""
    return len(_json(_event(e)))


def encode_events(commit: Commit, max_event_bytes: int = MAX_EVENT_BYTES,
                  max_commit_bytes: int = MAX_COMMIT_BYTES) -> list[bytes]:
    """A commit's events as stored (one JSON record each), checked before anything is stored.

    :class:`ValidationError` (naming the aggregate and the sizes, never the content) for a
    store name or aggregate id that storage keys cannot hold, an event above
    ``max_event_bytes`` or a commit above ``max_commit_bytes``.
    """
    if commit.store not in _CHECKED_STORES:
        check_name("event store", commit.store)
        if len(_CHECKED_STORES) < 10_000:
            _CHECKED_STORES.add(commit.store)
    check_aggregate_id(commit.aggregate_id)
    where = f"{commit.store}/{commit.aggregate_id}"
    out = []
    total = 0
    for e in commit.events:
        body = _json(_event(e))
        size = len(body)
        if size > max_event_bytes:
            raise ValidationError(
                f"event {e.type} for {where} is {size} bytes; an event may take at most "
                f"{max_event_bytes} bytes (TALIX_MAX_EVENT_BYTES)")
        total += size
        out.append(body)
    if total > max_commit_bytes:
        raise ValidationError(
            f"the {len(commit.events)} events for {where} take {total} bytes; one command may "
            f"append at most {max_commit_bytes} bytes (TALIX_MAX_COMMIT_BYTES)")
    return out


_CHECKED_STORES: set[str] = set()  # store names known to be valid (the check is a regex)


def check_commit(commit: Commit, max_event_bytes: int = MAX_EVENT_BYTES,
                 max_commit_bytes: int = MAX_COMMIT_BYTES) -> int:
    """The stored size of a commit in bytes, checked as :func:`encode_events` checks it."""
    return sum(map(len, encode_events(commit, max_event_bytes, max_commit_bytes)))


def event_record(e: StoredEvent) -> dict[str, Any]:
    """An event as the load index stores it (with its command id)."""
    d = _event(e)
    d["c"] = e.command_id
    return d


def decode_event(key: str, store: str, aggregate_id: str, version: int,
                 d: dict[str, Any]) -> StoredEvent:
    """An event from the load index; :class:`CorruptObject` naming ``key`` if damaged."""
    try:
        return StoredEvent(store, aggregate_id, version, d["t"], d["p"], int(d["ts"]),
                           d.get("c"), int(d.get("sv", 1)), d.get("m"))
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptObject(f"{key}: damaged event {store}/{aggregate_id}@{version} "
                            f"({exc!r})") from None


def field_of(key: str, body: bytes, kind: str, name: str, typ: type) -> Any:
    """One typed field of a small record (manifest, checkpoint, epoch)."""
    obj = loads(key, body, kind)
    value = obj.get(name)
    if not isinstance(value, typ):
        raise CorruptObject(f"{key}: {kind} without a valid {name!r}")
    return value
