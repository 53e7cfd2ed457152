"""Benchmark: the partitioned log and its load index on embedded SeaweedFS.

Every request the journal makes is counted by kind (operation x top-level folder: ``journal``
segments, ``index`` tables and manifests, ``writers``, ``checkpoints``…) by a counting wrapper
around its S3 store; SeaweedFS's own request counters count everything the server saw, so the
Delta views' requests (written by deltalake straight to S3) are the difference, reported
apart. Views are on (the built-in ``events`` view). Requests are counted from before the first
command to after the runtime stopped (its final index table and view commits included).

(a) long streams: 64 clients, each awaiting >= 600 commands on its own aggregate (snapshots
    every 500 events; index tables of ``MEMTABLE`` bytes, so index writes, snapshots and
    compaction happen inside the timed window) -> puts_per_command_long,
    lists_per_command_long, commands_per_put (commands per segment PUT);
(b) create-once: 64 clients creating 20,000 aggregates with one create and two updates each
    -> puts_per_command_small, lists_per_command_small; then loads of aggregates that do not
    exist, in the same runtime -> absent loads per second and requests per absent load;
(c) the naive baseline: one conditional PUT per command, same concurrency, same number of
    commands as (a), connections warmed before timing -> throughput_ratio (a / c);
(d) cold load (a new journal and runtime each time: empty caches) of a 100,000-event aggregate
    whose newest snapshot is 300 events below its head vs a 10-event one -> cold_load_ratio
    (medians);
(e) 100,000 aggregates stored: the requests one page of 100 ids costs -> list_page_requests
    (a page at a position not read before, in a process whose index metas are loaded — a
    running application; the first page of a fresh process is reported beside it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

# bench/ must not be on the import path: bench/http.py would hide the stdlib's http
sys.path[:] = [p for p in sys.path
               if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import json
import random
import re
import statistics
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from typing import Any

from pydantic import BaseModel, Field

from bench._common import write_results
from talix_ray import Event, EventStore, EventType, LocalRuntime, Service
from talix_ray.journal import Commit, ObjectStoreJournal, WriterPolicy
from talix_ray.model.events import StoredEvent
from talix_ray.objectstore import CountingObjectStore, ObjectStore
from talix_ray.objectstore.s3 import S3ObjectStore
from talix_ray.s3server import EmbeddedS3

CLIENTS = 64
MEMTABLE = 1 << 20  # index tables of 1 MiB (the default is 4 MiB): more index writes, not fewer


class Deposited(BaseModel):
    amount: int
    note: str = ""


class Opened(BaseModel):
    owner: str


deposited = EventType("ACCOUNTS:DEPOSITED", Deposited)
opened = EventType("ACCOUNTS:OPENED", Opened)


class Account(BaseModel):
    owner: str = ""
    balance: int = 0
    deposits: int = 0


def reduce(state: Account | None, event: Event) -> Account:
    state = state or Account()
    if event.type == opened.name:
        return Account(owner=event.payload.owner)
    return Account(owner=state.owner, balance=state.balance + event.payload.amount,
                   deposits=state.deposits + 1)


accounts = EventStore("accounts", [opened, deposited], reduce)


class Deposit(BaseModel):
    amount: int = Field(ge=1)
    times: int = Field(1, ge=1, le=5000)


class Open(BaseModel):
    owner: str


@accounts.command
def deposit(state: Account | None, input: Deposit):
    return [deposited(amount=input.amount, note="benchmark deposit")] * input.times


@accounts.command
def open_account(state: Account | None, input: Open):
    return opened(owner=input.owner)


service = Service("bank", stores=[accounts])


# -- counting ----------------------------------------------------------------------------------
class ServerCounts:
    """SeaweedFS's own request counters (every client's requests, by type)."""

    def __init__(self, server: EmbeddedS3) -> None:
        port = next(a.split("=", 1)[1] for a in server.process.args  # type: ignore[union-attr]
                    if str(a).startswith("-metricsPort="))
        self.url = f"http://127.0.0.1:{port}/metrics"

    def read(self) -> Counter[str]:
        text = urllib.request.urlopen(self.url, timeout=10).read().decode()
        out: Counter[str] = Counter()
        for m in re.finditer(r'SeaweedFS_s3_request_seconds_count\{bucket="[^"]*",'
                             r'type="(\w+)"\} (\d+)', text):
            out[m.group(1).lower()] += int(m.group(2))
        return out


class Window:
    """Requests between two points: the journal's (by kind) and the server's (by type)."""

    def __init__(self, store: CountingObjectStore, server: ServerCounts) -> None:
        self.store, self.server = store, server
        self.journal0 = Counter(store.requests)
        self.server0 = server.read()

    def close(self) -> dict[str, Any]:
        journal = Counter(self.store.requests) - self.journal0
        server = self.server.read() - self.server0
        by_op: Counter[str] = Counter()
        for (op, _), n in journal.items():
            by_op[op] += n
        views = {op: server[op] - by_op.get(op, 0) for op in server}
        return {"journal": {f"{op} {folder}": n for (op, folder), n in sorted(journal.items())},
                "journal_by_op": dict(by_op), "server": dict(server),
                "views_and_other": {k: v for k, v in views.items() if v}}


def s3(server: EmbeddedS3, prefix: str) -> S3ObjectStore:
    return S3ObjectStore(server.bucket, prefix, **server.store_options())


def runtime(store: ObjectStore, memtable: int = MEMTABLE, **kw: Any) -> LocalRuntime:
    journal = ObjectStoreJournal(store, partitions=1, own_store=False,
                                 policy=WriterPolicy(index_memtable_bytes=memtable))
    rt = LocalRuntime(journal, view_options={"linger": 1.0}, **kw).add(service)
    rt.snapshot_every = 500
    return rt


# -- (a) long streams ---------------------------------------------------------------------------
async def run_long(server: EmbeddedS3, counts: ServerCounts, per_client: int) -> dict[str, Any]:
    store = CountingObjectStore(s3(server, f"long-{uuid.uuid4().hex[:8]}"))
    window = Window(store, counts)
    rt = runtime(store).create()
    one = Deposit(amount=1)
    async with rt:
        writer = await rt.journal.writer(0)  # recovery/epoch before the clock starts

        async def client(c: int) -> None:
            for _ in range(per_client):
                await rt.run(deposit, f"acct-{c}", one)

        t = time.perf_counter()
        await asyncio.gather(*(client(c) for c in range(CLIENTS)))
        elapsed = time.perf_counter() - t
        index = writer.index
        flushes, compactions = index.flushes, index.compactions
    counted = window.close()
    await store.close()
    n = CLIENTS * per_client
    return {"commands": n, "seconds": elapsed, "per_s": n / elapsed,
            "segments": writer.segments_written, "index_tables_in_window": flushes,
            "compactions_in_window": compactions, "requests": counted}


# -- (b) create-once ----------------------------------------------------------------------------
async def run_small(server: EmbeddedS3, counts: ServerCounts, aggregates: int,
                    absent: int) -> dict[str, Any]:
    store = CountingObjectStore(s3(server, f"small-{uuid.uuid4().hex[:8]}"))
    window = Window(store, counts)
    rt = runtime(store).create()
    async with rt:
        writer = await rt.journal.writer(0)
        one = Deposit(amount=1)

        async def client(c: int) -> None:
            for i in range(c, aggregates, CLIENTS):
                agg = f"doc-{uuid.UUID(int=random.getrandbits(128)).hex}-{i}"
                await rt.run(open_account, agg, Open(owner=f"o{c}"))
                await rt.run(deposit, agg, one)
                await rt.run(deposit, agg, one)

        t = time.perf_counter()
        await asyncio.gather(*(client(c) for c in range(CLIENTS)))
        elapsed = time.perf_counter() - t
        flushes, compactions = writer.index.flushes, writer.index.compactions
        # loads of aggregates that do not exist (an idempotency key or an action step seen
        # for the first time), in the running application
        before = Counter(store.requests)
        t = time.perf_counter()
        for i in range(absent):
            agg = await rt.get_aggregate(accounts, f"absent-{i}")
            assert agg.version == 0
        absent_s = time.perf_counter() - t
        absent_requests = sum((Counter(store.requests) - before).values())
        rt.host.passivate_all()
    counted = window.close()
    await store.close()
    n = aggregates * 3
    return {"aggregates": aggregates, "commands": n, "seconds": elapsed, "per_s": n / elapsed,
            "segments": writer.segments_written, "index_tables_in_window": flushes,
            "compactions_in_window": compactions, "requests": counted,
            "absent_loads": absent, "absent_loads_per_s": absent / absent_s,
            "absent_requests": absent_requests}


# -- (c) the naive baseline ---------------------------------------------------------------------
async def run_naive(server: EmbeddedS3, per_client: int) -> dict[str, float]:
    store = s3(server, f"naive-{uuid.uuid4().hex[:8]}")

    async def client(c: int, first: int, last: int) -> None:
        for i in range(first, last):
            body = json.dumps({"type": "ACCOUNTS:DEPOSITED", "payload": {
                "amount": 1, "note": "benchmark deposit"}, "version": i}).encode()
            await store.create(f"naive/acct-{c}/{i:012d}", body)

    await asyncio.gather(*(client(c, 0, 3) for c in range(CLIENTS)))  # warm the connections
    t = time.perf_counter()
    await asyncio.gather(*(client(c, 3, 3 + per_client) for c in range(CLIENTS)))
    elapsed = time.perf_counter() - t
    await store.close()
    n = CLIENTS * per_client
    return {"commands": n, "seconds": elapsed, "per_s": n / elapsed}


# -- (d) cold load -------------------------------------------------------------------------------
async def run_cold_load(server: EmbeddedS3, repeats: int) -> dict[str, Any]:
    prefix = f"cold-{uuid.uuid4().hex[:8]}"
    inner = s3(server, prefix)
    async with runtime(inner, memtable=4 << 20, views=False).create() as rt:
        for _ in range(99):
            await rt.run(deposit, "big", Deposit(amount=1, times=1000))
        await rt.run(deposit, "big", Deposit(amount=1, times=700))   # snapshot at 99,700
        await rt.run(deposit, "big", Deposit(amount=1, times=300))   # 300 above it
        await rt.run(deposit, "small", Deposit(amount=1, times=10))
        await rt.host.drain()
    times: dict[str, list[float]] = {"big": [], "small": []}
    requests: dict[str, int] = {}
    for _ in range(repeats):
        for name, expected in (("big", 100_000), ("small", 10)):
            store = CountingObjectStore(s3(server, prefix))
            fresh = runtime(store, views=False, dispatch=False)
            async with fresh.create():
                t = time.perf_counter()
                agg = await fresh.get_aggregate(accounts, name)
                times[name].append(time.perf_counter() - t)
                requests[name] = sum(store.requests.values())
                assert agg.version == expected and agg.state.balance == expected
            await store.close()
    await inner.close()
    big_s, small_s = statistics.median(times["big"]), statistics.median(times["small"])
    return {"big_events": 100_000, "replayed": 300, "big_s": big_s, "small_s": small_s,
            "ratio": big_s / small_s, "requests": requests}


# -- (e) list pages ------------------------------------------------------------------------------
async def run_list(server: EmbeddedS3, aggregates: int) -> dict[str, Any]:
    prefix = f"list-{uuid.uuid4().hex[:8]}"
    inner = s3(server, prefix)
    journal = ObjectStoreJournal(inner, partitions=1, own_store=False)
    await journal.open()
    ids = sorted(f"acct-{uuid.UUID(int=random.getrandbits(128)).hex}"
                 for _ in range(aggregates))
    t = time.perf_counter()
    for start in range(0, aggregates, 2000):
        await asyncio.gather(*(journal.append(Commit("accounts", a, 0, (StoredEvent(
            "accounts", a, 1, opened.name, {"owner": "o"}, 0),))) for a in ids[start:start + 2000]))
    fill_s = time.perf_counter() - t
    await journal.close()  # the last table written; compaction done
    runs = len((await journal._reader(0).read_manifest()).runs)
    store = CountingObjectStore(s3(server, prefix))
    fresh = ObjectStoreJournal(store, partitions=1, own_store=False)
    await fresh.open()
    await fresh.writer(0)  # the application's writer of the partition: its index is open
    pages = []
    rng = random.Random(7)
    for _ in range(6):
        after = ids[rng.randrange(aggregates - 200)]
        before = sum(store.requests.values())
        page = await fresh.list_aggregate_ids("accounts", limit=100, after=after)
        pages.append(sum(store.requests.values()) - before)
        i = ids.index(after)
        assert page == ids[i + 1:i + 101]
    await fresh.close()
    await store.close()
    await inner.close()
    return {"aggregates": aggregates, "fill_s": fill_s, "runs": runs,
            "first_page_requests": pages[0], "page_requests": pages[1:]}


async def main_async(quick: bool) -> None:
    per_client = 600 if quick else 1500
    with tempfile.TemporaryDirectory() as tmp, EmbeddedS3(tmp, bucket="bench") as server:
        counts = ServerCounts(server)
        long = await run_long(server, counts, per_client)
        print(f"long streams: {long['per_s']:,.0f} commands/s, {long['segments']} segments, "
              f"{long['index_tables_in_window']} index tables and "
              f"{long['compactions_in_window']} compactions in the window; journal requests "
              f"{long['requests']['journal']}; views (server - journal) "
              f"{long['requests']['views_and_other']}", flush=True)
        small = await run_small(server, counts, 20_000, 5_000)
        print(f"create-once: {small['per_s']:,.0f} commands/s ({small['aggregates']:,} "
              f"aggregates x 3 commands); journal requests {small['requests']['journal']}; "
              f"views {small['requests']['views_and_other']}", flush=True)
        print(f"absent aggregates: {small['absent_loads_per_s']:,.0f} loads/s, "
              f"{small['absent_requests']} requests for {small['absent_loads']:,} loads",
              flush=True)
        naive = await run_naive(server, per_client)
        print(f"naive: {naive['per_s']:,.0f} commands/s (one conditional PUT each)", flush=True)
        cold = await run_cold_load(server, 3 if quick else 7)
        print(f"cold load: 100,000 events (300 after the snapshot) {cold['big_s'] * 1000:.1f} "
              f"ms, 10 events {cold['small_s'] * 1000:.1f} ms; requests {cold['requests']}",
              flush=True)
        listing = await run_list(server, 100_000)
        print(f"list: 100,000 aggregates in {listing['runs']} run(s); a page costs "
              f"{listing['page_requests']} requests (first page of a fresh process "
              f"{listing['first_page_requests']})", flush=True)

    def per_command(result: dict[str, Any], op: str) -> float:
        return round(result["requests"]["journal_by_op"].get(op, 0) / result["commands"], 4)

    summary = {
        "puts_per_command_long": per_command(long, "put"),
        "puts_per_command_small": per_command(small, "put"),
        "lists_per_command_long": per_command(long, "list"),
        "lists_per_command_small": per_command(small, "list"),
        "commands_per_put": round(long["commands"] / long["segments"], 1),
        "throughput_ratio": round(long["per_s"] / naive["per_s"], 2),
        "cold_load_ratio": round(cold["ratio"], 2),
        "list_page_requests": max(listing["page_requests"]),
    }
    write_results("journal", {
        "clients": CLIENTS, "index_memtable_bytes": MEMTABLE, "long": long, "small": small,
        "naive": naive, "cold_load": cold, "list": listing,
        "goals": {"puts_per_command_long": 0.1, "puts_per_command_small": 0.1,
                  "lists_per_command_long": 0.1, "lists_per_command_small": 0.1,
                  "commands_per_put": 50, "throughput_ratio": 10, "cold_load_ratio": 3,
                  "list_page_requests": 5}}, summary)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller run, under 180 s")
    args = parser.parse_args()
    asyncio.run(main_async(args.quick))


if __name__ == "__main__":
    main()
