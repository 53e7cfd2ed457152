"""Benchmark: the partitioned log on embedded SeaweedFS vs one conditional PUT per command.

(a) 64 concurrent clients, each issuing commands to its own aggregate and awaiting each one,
    against a naive baseline that writes every command as its own object with
    ``If-None-Match: *`` at the same concurrency → throughput_ratio, commands_per_put
    (commands per segment PUT) and puts_per_command (every PUT of the run: segments, chunks,
    snapshots, checkpoints, including the final flush).
(b) cold load (a fresh runtime) of an aggregate with 100,000 events, snapshots on, vs one with
    10 events → cold_load_ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys

# bench/ must not be on the import path: bench/http.py would hide the stdlib's http
sys.path[:] = [p for p in sys.path
               if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import tempfile
import time
import uuid

from pydantic import BaseModel, Field

from bench._common import write_results
from talix_ray import Event, EventStore, EventType, LocalRuntime, Service
from talix_ray.journal import ObjectStoreJournal
from talix_ray.objectstore import CountingObjectStore, ObjectStore
from talix_ray.objectstore.s3 import S3ObjectStore
from talix_ray.s3server import EmbeddedS3


class Deposited(BaseModel):
    amount: int
    note: str = ""


deposited = EventType("ACCOUNTS:DEPOSITED", Deposited)


class Account(BaseModel):
    balance: int = 0
    deposits: int = 0


def reduce(state: Account | None, event: Event) -> Account | None:
    state = state or Account()
    return Account(balance=state.balance + event.payload.amount, deposits=state.deposits + 1)


accounts = EventStore("accounts", [deposited], reduce)


class Deposit(BaseModel):
    amount: int = Field(ge=1)
    times: int = Field(1, ge=1, le=5000)


@accounts.command
def deposit(state: Account | None, input: Deposit):
    return [deposited(amount=input.amount, note="benchmark deposit")] * input.times


service = Service("bank", stores=[accounts])


def s3_store(server: EmbeddedS3, prefix: str) -> S3ObjectStore:
    return S3ObjectStore(server.bucket, prefix, **server.store_options())


async def run_talix(server: EmbeddedS3, clients: int, per_client: int) -> dict[str, float]:
    store = CountingObjectStore(s3_store(server, f"talix-{uuid.uuid4().hex[:8]}"))
    journal = ObjectStoreJournal(store, partitions=1)
    rt = LocalRuntime(journal).add(service).create()
    rt.snapshot_every = 500
    async with rt:
        await journal.writer(0)  # recovery/epoch outside the timed part
        one = Deposit(amount=1)

        async def client(c: int) -> None:
            for _ in range(per_client):
                await rt.run(deposit, f"acct-{c}", one)

        before = dict(store.puts)
        t = time.perf_counter()
        await asyncio.gather(*(client(c) for c in range(clients)))
        elapsed = time.perf_counter() - t
        writer = await journal.writer(0)
        rt.host.passivate_all()
    # stopping flushed chunks and the watermark: they count too
    puts = {k: v - before.get(k, 0) for k, v in store.puts.items()}
    n = clients * per_client
    return {"commands": n, "seconds": elapsed, "per_s": n / elapsed,
            "segments": writer.segments_written, "puts": sum(puts.values()),
            "puts_by_kind": puts}


async def run_naive(server: EmbeddedS3, clients: int, per_client: int) -> dict[str, float]:
    store: ObjectStore = s3_store(server, f"naive-{uuid.uuid4().hex[:8]}")

    async def client(c: int) -> None:
        for i in range(1, per_client + 1):
            body = json.dumps({"type": "ACCOUNTS:DEPOSITED", "payload": {
                "amount": 1, "note": "benchmark deposit"}, "version": i}).encode()
            await store.create(f"naive/acct-{c}/{i:012d}", body)

    t = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    elapsed = time.perf_counter() - t
    await store.close()
    n = clients * per_client
    return {"commands": n, "seconds": elapsed, "per_s": n / elapsed}


async def run_cold_load(server: EmbeddedS3, big: int, repeats: int) -> dict[str, float]:
    prefix = f"cold-{uuid.uuid4().hex[:8]}"
    rt = LocalRuntime(ObjectStoreJournal(s3_store(server, prefix), partitions=1)) \
        .add(service).create()
    rt.snapshot_every = 500
    async with rt:
        batch = 1000
        for _ in range(big // batch):
            await rt.run(deposit, "big", Deposit(amount=1, times=batch))
        await rt.run(deposit, "small", Deposit(amount=1, times=10))
        await rt.host.drain()
    times: dict[str, list[float]] = {"big": [], "small": []}
    for _ in range(repeats):
        for name, expected in (("big", big), ("small", 10)):
            fresh = LocalRuntime(ObjectStoreJournal(s3_store(server, prefix))).add(service)
            fresh.snapshot_every = 500
            async with fresh.create():
                t = time.perf_counter()
                agg = await fresh.get_aggregate(accounts, name)
                times[name].append(time.perf_counter() - t)
                assert agg.version == expected and agg.state.balance == expected
    big_s, small_s = statistics.median(times["big"]), statistics.median(times["small"])
    return {"big_events": big, "big_s": big_s, "small_s": small_s, "ratio": big_s / small_s}


async def main_async(quick: bool) -> None:
    clients = 64
    per_client = 100 if quick else 300
    naive_per_client = 30 if quick else 60
    with tempfile.TemporaryDirectory() as tmp, EmbeddedS3(tmp, bucket="bench") as server:
        naive = await run_naive(server, clients, naive_per_client)
        talix = await run_talix(server, clients, per_client)
        cold = await run_cold_load(server, 100_000, 3 if quick else 7)
    summary = {
        "commands_per_put": round(talix["commands"] / talix["segments"], 1),
        "puts_per_command": round(talix["puts"] / talix["commands"], 4),
        "throughput_ratio": round(talix["per_s"] / naive["per_s"], 2),
        "cold_load_ratio": round(cold["ratio"], 2),
    }
    print(f"talix: {talix['per_s']:,.0f} commands/s, {talix['segments']} segments, "
          f"{talix['puts']} PUTs {talix['puts_by_kind']}")
    print(f"naive: {naive['per_s']:,.0f} commands/s (one conditional PUT each)")
    print(f"cold load: {cold['big_events']:,} events {cold['big_s'] * 1000:.1f} ms, "
          f"10 events {cold['small_s'] * 1000:.1f} ms")
    write_results("journal", {"clients": clients, "talix": talix, "naive": naive,
                              "cold_load": cold,
                              "goals": {"throughput_ratio": 10, "commands_per_put": 50,
                                        "puts_per_command": 0.1, "cold_load_ratio": 3}},
                  summary)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller run, under 60 s")
    args = parser.parse_args()
    asyncio.run(main_async(args.quick))


if __name__ == "__main__":
    main()
