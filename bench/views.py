"""Benchmark: talix-ray's view runners, reading the log from storage, vs a raw ``write_deltalake``.

The log: N events (default 200,000) of N/10 bank accounts, each opened and deposited to nine
times, in a journal of 4 partitions on a local-directory object store (``file://`` in a
temporary directory) — what a deployment reads, not a log in memory. It is written by 512
concurrent commands at a time (group commit: segments of about 128 commits) in four phases:
every account opened (one commit each), then three phases of three deposits per account (one
commit each), so each account's events are spread over the log.

Every round, untimed set-up aside:
  (a) the built-in ``events`` fact view, by a new runner on a new journal (cold caches),
      projects the whole log from offset 0 into a fresh Delta table: it lists the partitions,
      fetches and decodes every segment, builds the rows and commits batches of 50,000 events,
      each with its offsets. Against it, one raw ``write_deltalake`` of the same rows built
      from the same events held in memory (no log to read) → ``projection_ratio`` = raw time /
      talix time (goal ≥ 0.5);
  (b) the ``balances`` state view (one row per account, merged by key) starts from a table
      that already holds every account (a copy of one projected from the first phase, with its
      offsets) and a new runner (cold row cache) projects the 180,000 deposits from storage:
      its first batch loads the rows it needs from the table and every merge updates existing
      rows → ``state_events_per_s`` = deposits / time (goal ≥ 50,000). The first round checks
      the result (row count, deposits and balance totals) and the merges' Delta metrics.
Rounds alternate which of (a)'s sides goes first; every figure is reported as the median of
the rounds with their spread (min, max), the ratio taken per round.
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
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from bench._common import write_results
from talix_ray.journal import Commit, ObjectStoreJournal
from talix_ray.model.events import StoredEvent
from talix_ray.objectstore import LocalObjectStore
from talix_ray.views import EventsFold, ProjectionFold, ViewLocation, ViewRunner
from tests import views_domain as bank

PER_ACCOUNT = 10  # one "opened" and nine deposits
PHASES = 3  # deposit phases; each gives every account PER_ACCOUNT // PHASES deposits
PARTITIONS = 4
CONCURRENCY = 512


def spread(values: list[float]) -> dict[str, float]:
    """The median of the rounds and their spread."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def phases(n_events: int) -> list[list[Commit]]:
    """The log's commits, phase by phase: every account opened, then its deposits, three
    per commit, over ``PHASES`` phases."""
    ts = 1_790_000_000_000_000
    accounts = [f"acct-{a:07d}" for a in range(n_events // PER_ACCOUNT)]
    out = [[Commit("accounts", aid, 0, (StoredEvent(
        "accounts", aid, 1, bank.opened.name, {"owner": f"o{a % 97}"}, ts, f"o{a}"),), f"o{a}")
        for a, aid in enumerate(accounts)]]
    per = (PER_ACCOUNT - 1) // PHASES
    for ph in range(PHASES):
        first = 2 + ph * per
        commits = []
        for a, aid in enumerate(accounts):
            cid = f"d{ph}-{a}"
            commits.append(Commit("accounts", aid, first - 1, tuple(
                StoredEvent("accounts", aid, v, bank.deposited.name,
                            {"amount": f"{(a * 7 + v) % 500}.{v:02d}"}, ts + v, cid)
                for v in range(first, first + per)), cid))
        out.append(commits)
    return out


async def write_log(store: LocalObjectStore, commits: list[Commit]) -> None:
    journal = ObjectStoreJournal(store, partitions=PARTITIONS, own_store=False)
    await journal.open()
    for k in range(0, len(commits), CONCURRENCY):
        await asyncio.gather(*(journal.append(c) for c in commits[k:k + CONCURRENCY]))
    await journal.close()


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


async def project(log_root: Path, fold: Any, base: str, batch: int) -> tuple[float, ViewRunner]:
    """A new runner on a new journal over the stored log (nothing cached) catches up."""
    t = time.perf_counter()
    journal = ObjectStoreJournal(LocalObjectStore(log_root), owned=[])
    await journal.open()
    runner = ViewRunner(fold, journal, ViewLocation(base), batch_events=batch, linger=0,
                        compact_every=0)
    await runner.catch_up(timeout=600)
    elapsed = time.perf_counter() - t
    runner.close()
    await journal.close()
    return elapsed, runner


def merge_metrics(uri: str, after_version: int) -> dict[str, int]:
    """Rows the state view's merges after ``after_version`` updated and inserted (Delta's own
    operation metrics)."""
    out = {"merges": 0, "rows_updated": 0, "rows_inserted": 0, "rows_deleted": 0}
    for h in DeltaTable(uri).history():
        if h.get("operation") != "MERGE" or h.get("version", -1) <= after_version:
            continue
        m = h.get("operationMetrics") or {}
        out["merges"] += 1
        out["rows_updated"] += int(m.get("num_target_rows_updated", 0))
        out["rows_inserted"] += int(m.get("num_target_rows_inserted", 0))
        out["rows_deleted"] += int(m.get("num_target_rows_deleted", 0))
    return out


def check_balances(uri: str, accounts: int, deposits: list[Commit]) -> dict[str, Any]:
    """The state view holds every account once with all its deposits."""
    table = DeltaTable(uri).to_pyarrow_table()
    want = sum((Decimal(e.payload["amount"]) for c in deposits for e in c.events), Decimal(0))
    got = sum(table.column("balance").to_pylist(), Decimal(0))
    n_deposits = sum(table.column("deposits").to_pylist())
    assert table.num_rows == accounts, (table.num_rows, accounts)
    assert n_deposits == accounts * (PER_ACCOUNT - 1), n_deposits
    assert got == want, (got, want)
    return {"rows": table.num_rows, "deposits": n_deposits, "balance_total": str(got)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 rounds (well under 60 s)")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=50_000, help="events per view commit")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 6)
    tmp = Path(tempfile.mkdtemp(prefix="talix-bench-views-"))
    try:
        log_root = tmp / "log"
        store = LocalObjectStore(log_root)
        opened, *deposit_phases = phases(args.events)
        deposits = [c for ph in deposit_phases for c in ph]
        records = [e for ph in (opened, *deposit_phases) for c in ph for e in c.events]
        accounts = len(opened)
        n_deposits = len(records) - accounts
        # the seed of the state view: every account, projected from the first phase alone
        await write_log(store, opened)
        seed = tmp / "seed"
        await project(log_root, ProjectionFold(bank.balances, bank.accounts.decode),
                      str(seed), args.batch)
        seed_version = DeltaTable(str(seed / "balances")).version()
        for ph in deposit_phases:
            await write_log(store, ph)
        segments = {p: len(list((log_root / "journal" / f"{p:04d}").iterdir()))
                    for p in range(PARTITIONS)}
        log_bytes = sum(f.stat().st_size for f in (log_root / "journal").rglob("*")
                        if f.is_file())
        gc.collect()
        gc.freeze()  # the input events are not garbage: keep collections off them
        talix_t: list[float] = []
        raw_t: list[float] = []
        state_t: list[float] = []
        checked: dict[str, Any] = {}
        for r in range(rounds):
            base = tmp / f"r{r}"
            for side in (("talix", "raw") if r % 2 == 0 else ("raw", "talix")):
                gc.collect()
                if side == "talix":
                    elapsed, runner = await project(log_root, EventsFold(),
                                                    str(base / "talix"), args.batch)
                    assert runner.events == len(records), (runner.events, len(records))
                    talix_t.append(elapsed)
                else:
                    t = time.perf_counter()
                    write_deltalake(str(base / "raw" / "events"), raw_rows(records),
                                    mode="append")
                    raw_t.append(time.perf_counter() - t)
            shutil.copytree(seed, base / "state")
            gc.collect()
            elapsed, runner = await project(
                log_root, ProjectionFold(bank.balances, bank.accounts.decode),
                str(base / "state"), args.batch)
            assert runner.events == n_deposits, (runner.events, n_deposits)
            state_t.append(elapsed)
            if r == 0:
                uri = str(base / "state" / "balances")
                checked = {**check_balances(uri, accounts, deposits),
                           **merge_metrics(uri, seed_version),
                           "batches": runner.commits}
                assert checked["rows_updated"] > 0 and checked["rows_inserted"] == 0, checked
            shutil.rmtree(base, ignore_errors=True)
            print(f"round {r + 1}: events view {talix_t[-1]:.2f}s, raw write {raw_t[-1]:.2f}s, "
                  f"state view {state_t[-1]:.2f}s", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = len(records)
    ratios = [raw / talix for raw, talix in zip(raw_t, talix_t, strict=True)]
    state_rates = [n_deposits / t for t in state_t]
    summary = {"projection_ratio": round(statistics.median(ratios), 3),
               "state_events_per_s": round(statistics.median(state_rates))}
    data = {
        "events": n, "accounts": accounts, "batch_events": args.batch, "rounds": rounds,
        "order": "events view and raw write alternate which goes first; the state view last",
        "log": {"store": "file:// (LocalObjectStore in a temporary directory)",
                "partitions": PARTITIONS, "segments": segments, "bytes": log_bytes,
                "written_by": f"{CONCURRENCY} concurrent commands at a time, in "
                              f"{1 + PHASES} phases"},
        "projection_ratio": spread(ratios),
        "events_view": {
            "did": "a new runner on a new ObjectStoreJournal (no cache) over the file:// log: "
                   "list the partitions, GET and decode every segment, build the events rows, "
                   f"one Delta commit per batch of {args.batch} events with the offsets",
            "seconds": spread(talix_t)},
        "raw_write": {
            "did": "build the same rows from the same events held in memory (no log read) and "
                   "write them with one write_deltalake",
            "seconds": spread(raw_t)},
        "state_view": {
            "did": f"a new runner (cold row cache) over the same log, on a copy of a balances "
                   f"table already holding all {accounts} accounts (projected from the first "
                   f"phase, offsets included): reads and decodes the {n_deposits} deposits "
                   "from storage, loads the rows it needs from the table, folds the typed "
                   "events through the handlers and merges each batch by key, updating rows",
            "events": n_deposits, "seconds": spread(state_t),
            "events_per_s": spread(state_rates), "first_round_result": checked},
        "goals": {"projection_ratio": ">= 0.5", "state_events_per_s": ">= 50000"},
    }
    write_results("views", data, summary)


if __name__ == "__main__":
    asyncio.run(main())
