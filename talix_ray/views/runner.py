"""A view's projection runner: read every partition in batches, fold, commit to Delta Lake.

Exactly once: a batch's rows and the offsets it read up to (one application transaction per
partition, ``{view}:{p}`` → segment seq) go into the same Delta commit. A runner that dies
before the commit leaves nothing; after it, the offsets say where to resume. Two runners of
one view cannot both commit the same partition's progress: Delta rejects a commit whose
application transactions another commit moved since its snapshot (the loser reloads).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa

from ..journal.base import Journal
from ..journal.format import gc_paused
from ..model.errors import ConfigurationError, TalixError
from ..model.events import StoredEvent
from ..observability.metrics import LagTracker
from . import delta
from .fold import Fold, ProjectionError, ProjectionFold, RowCache, StateChanges
from .location import ViewLocation

log = logging.getLogger("talix.views")

Progress = Callable[[int, int], None]
Batch = list[pa.Table] | list[StoredEvent]  # what a batch folds: a fact view's rows, or records
_UNASKED = object()


class ViewSchemaChanged(ConfigurationError):
    """The row model no longer matches the view's table: rebuild the view."""


class ViewRunner:
    """Keeps one view's Delta table up to date with the log.

    ``batch_events``: the most events folded into one commit; ``linger``: how long to gather
    more once new events appear (fewer, larger commits); ``cache_rows``: state-view rows kept in
    memory; ``compact_every``: compact small files every N commits (0: never).
    """

    def __init__(self, fold: Fold, journal: Journal, location: ViewLocation, *,
                 batch_events: int = 50_000, linger: float = 1.0, poll_interval: float = 1.0,
                 cache_rows: int = 200_000, compact_every: int = 200,
                 fault: Callable[[str], None] | None = None) -> None:
        if batch_events < 1:
            raise ConfigurationError("batch_events must be >= 1")
        if linger < 0 or poll_interval <= 0:
            raise ConfigurationError("linger must be >= 0 and poll_interval > 0")
        self.fold = fold
        self.name = fold.name
        self.journal = journal
        self.location = location
        self.uri = location.uri(fold.name)
        self.batch_events = batch_events
        self.linger = linger
        self.poll_interval = poll_interval
        self.compact_every = compact_every
        self.fault = fault
        self.offsets: dict[int, int] = {}
        self.status = "idle"
        self.error: str | None = None
        self.commits = 0
        self.events = 0
        self._cache = RowCache(cache_rows)
        self._table: Any = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"talix-view-{self.name}")
        self._prefetch: asyncio.Future[Any] | None = None
        self._lag = LagTracker(f"view:{self.name}")

    # -- plumbing -------------------------------------------------------------------------------
    async def _delta(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run blocking Delta (and fold) work on this runner's thread; a cancelled caller
        still waits for it to finish (a half-done commit must not race a reload)."""
        fut = asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):
                await fut
            raise

    def _point(self, name: str) -> None:
        if self.fault is not None:
            self.fault(name)

    def close(self) -> None:
        """Release the runner's thread."""
        self._drop_prefetch()
        self._executor.shutdown(wait=True)

    # -- the table --------------------------------------------------------------------------------
    async def open(self) -> None:
        """Create or load the table and read the offsets it holds."""
        self._drop_prefetch()  # positions read ahead no longer count after a (re)load
        self._table = await self._delta(self._open)

    def _open(self) -> Any:
        opts = self.location.storage_options
        description = f"talix {self.fold.kind} view" + (f" keyed by {self.fold.key}"
                                                       if self.fold.key else "")
        table = delta.create(self.uri, opts, self.fold.schema, name=self.name,
                             description=description)
        if not delta.same_schema(table, self.fold.schema):
            raise ViewSchemaChanged(
                f"view {self.name}: the row model changed (table has "
                f"{delta.arrow_schema(table)}, the model needs {self.fold.schema}); rebuild it: "
                f"talix views rebuild {self.name}")
        self.offsets = delta.offsets(table, self.name, self.journal.partitions)
        self._cache.clear()
        return table

    # -- one batch --------------------------------------------------------------------------------
    async def _read(self, start: dict[int, int], limit: int,
                    until: dict[int, int] | None = None) -> tuple[Batch, dict[int, int], int]:
        """What this view wants from up to ``limit`` events after ``start``: a fact view's rows
        (Arrow tables), a state view's records; with the offsets moved and the events seen.

        A fact view turns each read's records into rows at once: the decoded events die young,
        before the garbage collector has to scan them again (it would, batch after batch, if
        50,000 of them waited for the commit), and the rows take far less memory."""
        pos = dict(start)
        facts = self.fold.kind == "fact"
        columnar = facts and self.fold.columnar  # segments decoded straight into columns
        wanted: list[StoredEvent] = []
        tables: list[pa.Table] = []
        seen = 0
        wants = self.fold.wants
        by_store = self.fold.wants_store
        stores: dict[str, Any] = {}  # whether the view wants a store's events (asked once)
        while seen < limit:
            progressed = False
            for p in range(self.journal.partitions):
                if seen >= limit or (until is not None and pos[p] >= until[p]):
                    continue
                if columnar:
                    with gc_paused():
                        columns = await self.journal.read_segment_columns(p, pos[p], 64)
                        keep = []
                        for cols in columns:
                            if until is not None and cols.seq > until[p]:
                                break
                            seen += len(cols)
                            keep.append(cols)
                            pos[p] = cols.seq
                            progressed = True
                        del columns
                        if keep:
                            table = self.fold.column_facts(keep)
                            if table.num_rows:
                                tables.append(table)
                        del keep
                    continue
                with gc_paused() if facts else contextlib.nullcontext():
                    segments = await self.journal.read_segments(p, pos[p], 64)
                    for seg in segments:
                        if until is not None and seg.seq > until[p]:
                            break
                        for commit in seg.commits:
                            events = commit.events
                            seen += len(events)
                            whole = stores.get(commit.store, _UNASKED)
                            if whole is _UNASKED:
                                whole = stores[commit.store] = by_store(commit.store)
                            if whole:
                                wanted += events
                            elif whole is None:
                                wanted.extend(r for r in events if wants(r))
                        pos[p] = seg.seq
                        progressed = True
                    del segments
                    if facts and wanted:
                        tables.append(self.fold.facts(wanted))
                        wanted = []
            if not progressed:
                break
        return (tables if facts else wanted), {p: s for p, s in pos.items() if s != start[p]}, \
            seen

    async def step(self) -> int:
        """Fold and commit one batch; the number of events it covered (0: nothing new).

        While a batch commits, the next one is read (log reads and Delta writes overlap)."""
        if self._table is None:
            await self.open()
        prefetched, self._prefetch = self._prefetch, None
        batch = await prefetched if prefetched is not None else None
        if batch is None or batch[0] != self.offsets or not batch[2]:
            batch = (self.offsets, *await self._read(self.offsets, self.batch_events))
        _, records, moved, seen = batch
        if not moved:
            return 0
        self._point("read")
        after = {**self.offsets, **moved}
        self._prefetch = asyncio.ensure_future(self._read_from(after))
        try:
            await self._delta(self._commit, records, moved)
        except BaseException:
            self._table = None  # the cache may hold rows of a batch that did not commit
            self._drop_prefetch()
            raise
        self.offsets.update(moved)
        self.events += seen
        self.commits += 1
        if self.compact_every and self.commits % self.compact_every == 0:
            await self._delta(self._compact)
        return seen

    async def _read_from(self, start: dict[int, int]
                         ) -> tuple[dict[int, int], Batch, dict[int, int], int]:
        return (start, *await self._read(start, self.batch_events))

    def _drop_prefetch(self) -> None:
        if self._prefetch is not None:
            self._prefetch.cancel()
            self._prefetch = None

    def _commit(self, batch: Batch, moved: dict[int, int]) -> None:
        dl = delta.deltalake()
        props = delta.transactions(self.name, moved)
        if self.fold.kind == "fact":
            data = self._rows(batch)
            self._point("folded")
            dl.write_deltalake(self._table, data, mode="append", commit_properties=props)
        else:
            assert isinstance(self.fold, ProjectionFold) and self.fold.key is not None
            changes = self._fold_state(batch, fresh=False)
            self._point("folded")
            if changes:
                self._merge(self.fold.changes_table(changes), props)
            else:  # nothing changed: still move the offsets
                dl.write_deltalake(self._table, self.fold.schema.empty_table(), mode="append",
                                   commit_properties=props)
        self._point("committed")
        self._cache.trim()

    def _rows(self, tables: Batch) -> pa.Table:
        """A fact view's rows of one batch, as one table."""
        if not tables:
            return self.fold.schema.empty_table()
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]

    def _fold_state(self, records: Batch, *, fresh: bool) -> StateChanges:
        assert isinstance(self.fold, ProjectionFold) and self.fold.key is not None
        with gc_paused():  # the batch's typed events die here: no collector scans them
            return self._fold_keyed(records, fresh=fresh)

    def _fold_keyed(self, records: Batch, *, fresh: bool) -> StateChanges:
        assert isinstance(self.fold, ProjectionFold) and self.fold.key is not None
        keyed = self.fold.keyed(records)
        missing = self._cache.missing(k for k, _, _ in keyed)
        if missing:
            found: dict[Any, Any] = {}
            if not fresh:
                loaded = delta.read_keys(self._table, self.fold.key, missing)
                found = {getattr(r, self.fold.key): r for r in self.fold.rows.rows(loaded)}
            for k in missing:
                self._cache.put(k, found.get(k))
        changes = StateChanges()
        self.fold.apply(keyed, self._cache, changes)
        return changes

    def _merge(self, source: pa.Table, props: Any) -> None:
        key = self.fold.key
        cols = {f'"{c}"': f's."{c}"' for c in self.fold.schema.names}
        (self._table.merge(source, f't."{key}" = s."{key}"', source_alias="s",
                           target_alias="t", commit_properties=props)
         .when_matched_delete(predicate="s._talix_deleted")
         .when_matched_update(updates=cols, predicate="NOT s._talix_deleted")
         .when_not_matched_insert(updates=cols, predicate="NOT s._talix_deleted")
         .execute())

    def _compact(self) -> None:
        with contextlib.suppress(Exception):  # maintenance only; a conflict just skips it
            self._table.optimize.compact()

    # -- running ----------------------------------------------------------------------
    async def run(self) -> None:
        """Follow the log until cancelled; failures are logged and retried with backoff
        (a failing handler or a changed row model keep the view where it is: see ``error``)."""
        backoff = 0.5
        while True:
            self._observe_lag()
            try:
                if self._table is None:
                    self.status = "opening"
                    await self.open()
                self.status = "running"
                self.error = None
                n = await self.step()
                backoff = 0.5
                if n >= self.batch_events:
                    continue
                if n == 0 and await self._wait_for_events() and self.linger:
                    await asyncio.sleep(self.linger)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._table = None
                if delta.is_conflict(exc):
                    log.info("view %s: another runner committed; reloading", self.name)
                    continue
                failed = isinstance(exc, ProjectionError | ViewSchemaChanged)
                message = str(exc) if isinstance(exc, TalixError) else \
                    f"{type(exc).__name__}: {exc}"
                if message != self.error:
                    (log.error if failed else log.warning)("view %s: %s (retrying in %.1fs)",
                                                           self.name, message, backoff)
                self.status = "failed" if failed else "retrying"
                self.error = message
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    def _observe_lag(self) -> None:
        """Update the lag gauges from the heads this process knows of (no request)."""
        try:
            self._lag.update(sum(max(0, self.journal.known_head(p) - self.offsets.get(p, 0))
                                 for p in range(self.journal.partitions)))
        except Exception:  # a gauge must never stop the view
            log.debug("lag gauge of view %s not updated", self.name, exc_info=True)

    async def _wait_for_events(self) -> bool:
        waits = [asyncio.ensure_future(self.journal.wait_for_segment(p, s, self.poll_interval))
                 for p, s in self.offsets.items()]
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            return any(not t.cancelled() and t.exception() is None and t.result() for t in done)
        finally:
            for t in waits:
                t.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    async def catch_up(self, timeout: float = 60.0) -> None:
        """Fold everything written so far (for scripts and tests)."""
        deadline = time.monotonic() + timeout
        heads = {p: await self.journal.head(p) for p in range(self.journal.partitions)}
        while True:
            if self._table is None:
                await self.open()
            if all(self.offsets.get(p, 0) >= h for p, h in heads.items()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"view {self.name} did not catch up within {timeout}s")
            if await self.step() == 0:
                await asyncio.sleep(0.01)

    async def lag(self) -> int:
        """Segments written but not yet in the view, over all partitions."""
        total = 0
        for p in range(self.journal.partitions):
            total += max(0, await self.journal.head(p) - self.offsets.get(p, 0))
        return total

    async def stats(self) -> dict[str, Any]:
        """Status, counters, offsets and lag (segments; ``None`` if storage did not answer)."""
        stats = {"view": self.name, "kind": self.fold.kind, "status": self.status,
                 "error": self.error, "commits": self.commits, "events": self.events,
                 "offsets": dict(self.offsets), "lag": None}
        try:
            stats["lag"] = await self.lag()
        except Exception as exc:  # storage trouble: report it, do not fail the status
            stats["error"] = stats["error"] or f"lag unknown: {exc}"
        return stats

    # -- rebuilding ----------------------------------------------------------------------
    async def rebuild(self, progress: Progress | None = None) -> int:
        """Replay the log from offset 0 into a new version of the table (which may change its
        schema); returns that version. Runners following the view reload from it."""
        parts = self.journal.partitions
        heads = {p: await self.journal.head(p) for p in range(parts)}
        total = sum(heads.values())
        done = 0
        pos = dict.fromkeys(range(parts), 0)
        chunks: list[pa.Table] = []
        self._cache = RowCache(2**62)
        if progress is not None:
            progress(0, total)
        while True:
            records, moved, _ = await self._read(pos, self.batch_events, until=heads)
            if not moved:
                break
            if self.fold.kind == "fact":
                chunks.extend(records)
            else:
                await self._delta(lambda r: self._fold_state(r, fresh=True), records)
            done += sum(s - pos[p] for p, s in moved.items())
            pos.update(moved)
            if progress is not None:
                progress(done, total)
        if self.fold.kind == "fact":
            data = pa.concat_tables(chunks) if chunks else self.fold.schema.empty_table()
        else:
            assert isinstance(self.fold, ProjectionFold)
            data = self.fold.rows.table(self._cache.present())
        self._cache = RowCache()
        version: int = await self._delta(self._overwrite, data, pos)
        self._table = None
        return version

    def _overwrite(self, data: pa.Table, offsets: dict[int, int]) -> int:
        dl = delta.deltalake()
        opts = self.location.storage_options or None
        for attempt in range(5):
            try:
                dl.write_deltalake(self.uri, data, mode="overwrite", schema_mode="overwrite",
                                   storage_options=opts, name=self.name,
                                   commit_properties=delta.transactions(self.name, offsets))
                return int(delta.load(self.uri, self.location.storage_options).version())
            except Exception as exc:  # a runner committed meanwhile: the overwrite wins next
                if not delta.is_conflict(exc) or attempt == 4:
                    raise
        raise AssertionError("unreachable")
