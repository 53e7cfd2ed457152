"""Benchmark: talix-ray's view runners vs a raw ``write_deltalake`` of the same rows.

The log holds N events (default 200,000): accounts opened and deposited to, in a journal with
4 partitions (in memory, so the log's own read cost — measured by bench/journal.py — stays out
of it). In one run:
  (a) the built-in ``events`` fact view projects the log from offset 0 into a fresh Delta table
      (reading every partition in batches, building rows, one commit per batch with the
      offsets as application transactions) vs one raw ``write_deltalake`` of the same rows
      built from the same events → ``projection_ratio`` = raw time / talix time (goal ≥ 0.5);
  (b) a state view (balances per account, merged by key) folds the same events into a fresh
      table → ``state_events_per_s`` (goal ≥ 50,000).
Rounds alternate which side goes first; the best of each counts. For reference (not a goal), the run
also projects the ``events`` view from the same events in a journal on a local-directory
object store, which adds reading and decoding the log's segments (``file_log_events_view_s``).
The process ends with os._exit (see the README's troubleshooting: deltalake may abort at
interpreter exit).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import sys

# bench/ must not be on the import path: bench/http.py would hide the stdlib's http
sys.path[:] = [p for p in sys.path
               if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import tempfile
import time
from pathlib import Path

import orjson
import pyarrow as pa
from deltalake import write_deltalake

from bench._common import write_results
from talix_ray.journal import Commit, MemoryJournal
from talix_ray.model.events import StoredEvent
from talix_ray.views import EventsFold, ProjectionFold, ViewLocation, ViewRunner
from tests import views_domain as bank

PER_ACCOUNT = 10  # one "opened" and nine deposits


async def fill(n_events: int, partitions: int = 4) -> tuple[MemoryJournal, list[StoredEvent]]:
    journal = MemoryJournal(partitions=partitions)
    records: list[StoredEvent] = []
    ts = 1_790_000_000_000_000
    for a in range(n_events // PER_ACCOUNT):
        aid = f"acct-{a:07d}"
        events = [StoredEvent("accounts", aid, 1, bank.opened.name, {"owner": f"o{a % 97}"}, ts)]
        events += [StoredEvent("accounts", aid, v, bank.deposited.name,
                               {"amount": f"{(a * 7 + v) % 500}.{v:02d}"}, ts + v)
                   for v in range(2, PER_ACCOUNT + 1)]
        await journal.append(Commit("accounts", aid, 0, tuple(events), f"c{a}"))
        records += events
    return journal, records


def raw_rows(records: list[StoredEvent], chunk: int = 50_000) -> pa.Table:
    """What one would write by hand: the same columns built straight from the events (in
    chunks, which is kinder to the allocator than one 200,000-row pass)."""
    dumps = orjson.dumps  # bytes go into Arrow strings as they are
    schema = EventsFold.schema
    parts = []
    for i in range(0, len(records), chunk):
        part = records[i:i + chunk]
        cols = [[r.store for r in part], [r.aggregate_id for r in part],
                [r.version for r in part], [r.type for r in part],
                [r.schema_version for r in part], [r.timestamp_us for r in part],
                [r.command_id for r in part], [dumps(r.payload) for r in part],
                [None if r.metadata is None else dumps(r.metadata) for r in part]]
        parts.append(pa.Table.from_arrays(
            [pa.array(c, type=f.type) for c, f in zip(cols, schema, strict=True)],
            schema=schema))
    return pa.concat_tables(parts)


async def project(journal, fold, base: str, batch: int) -> float:
    runner = ViewRunner(fold, journal, ViewLocation(base), batch_events=batch, linger=0,
                        compact_every=0)
    t = time.perf_counter()
    await runner.catch_up(timeout=600)
    elapsed = time.perf_counter() - t
    runner.close()
    return elapsed


async def from_file_log(records: list[StoredEvent], tmp: Path, batch: int) -> float:
    """The events view read from a partitioned log on a local-directory object store."""
    from talix_ray.journal import ObjectStoreJournal
    from talix_ray.objectstore import LocalObjectStore

    root = tmp / "log"
    writer = ObjectStoreJournal(LocalObjectStore(root), partitions=4)
    await writer.open()
    commits = [Commit("accounts", records[i].aggregate_id, 0,
                      tuple(records[i:i + PER_ACCOUNT]), f"c{i}")
               for i in range(0, len(records), PER_ACCOUNT)]
    for k in range(0, len(commits), 512):
        await asyncio.gather(*(writer.append(c) for c in commits[k:k + 512]))
    await writer.close()
    reader = ObjectStoreJournal(LocalObjectStore(root), owned=[])
    await reader.open()
    elapsed = await project(reader, EventsFold(), str(tmp / "file-views"), batch)
    await reader.close()
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 rounds (well under 60 s)")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=50_000, help="events per view commit")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 6)
    journal, records = await fill(args.events)
    gc.collect()
    gc.freeze()  # the 200,000 input events are not garbage: keep collections off them
    tmp = Path(tempfile.mkdtemp(prefix="talix-bench-views-"))
    talix_t, raw_t, state_t = [], [], []
    try:
        for r in range(rounds):
            base = tmp / f"r{r}"
            for side in (("talix", "raw") if r % 2 == 0 else ("raw", "talix")):
                gc.collect()
                if side == "talix":
                    talix_t.append(await project(journal, EventsFold(), str(base / "talix"),
                                                 args.batch))
                else:
                    t = time.perf_counter()
                    write_deltalake(str(base / "raw" / "events"), raw_rows(records),
                                    mode="append")
                    raw_t.append(time.perf_counter() - t)
            fold = ProjectionFold(bank.balances, bank.accounts.decode)
            gc.collect()
            state_t.append(await project(journal, fold, str(base / "state"), args.batch))
            shutil.rmtree(base, ignore_errors=True)
            print(f"round {r + 1}: events view {talix_t[-1]:.2f}s, raw write {raw_t[-1]:.2f}s, "
                  f"state view {state_t[-1]:.2f}s", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    file_log_s = await from_file_log(records, tmp, args.batch)
    print(f"events view from a file-store log: {file_log_s:.2f}s", flush=True)
    n = len(records)
    summary = {"projection_ratio": round(min(raw_t) / min(talix_t), 3),
               "state_events_per_s": round(n / min(state_t))}
    data = {"events": n, "batch_events": args.batch, "rounds": rounds,
            "talix_events_view_s": talix_t, "file_log_events_view_s": file_log_s,
            "file_log_projection_ratio": round(min(raw_t) / file_log_s, 3),
            "raw_write_s": raw_t, "state_view_s": state_t,
            "goals": {"projection_ratio": ">= 0.5", "state_events_per_s": ">= 50000"}}
    write_results("views", data, summary)


if __name__ == "__main__":
    asyncio.run(main())
    sys.stdout.flush()
    os._exit(0)
