"""Benchmark: actions on Ray vs in one process, commands from one driver vs raw actor calls,
and durable steps vs the same saga without recording. One run, one machine, file:// store.

(a) dispatch: N aggregates each trigger one light ``on_event`` action that runs one command;
    the events are written first, then a fresh runtime's dispatcher works through them; the
    rate is read from the dispatcher's own progress between 10 % and 90 % done →
    ``dispatch_ratio`` = Ray actions/s / LocalRuntime actions/s;
(b) commands: 1,000 in flight from one driver on 1,000 warm aggregates, RayRuntime vs raw
    async calls to a trivial Ray actor with the same payload size → ``command_ratio``;
(c) saga: withdraw-deposit transfers (every step recorded) vs the same saga with
    ``durable=False``, on the LocalRuntime, same accounts and amounts → ``saga_overhead`` =
    durable throughput / plain throughput.
Rounds alternate which side goes first; medians with min and max are reported.
"""

from __future__ import annotations

import argparse
import asyncio
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
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
ROOT = Path(__file__).parent.parent

import ray

from bench._common import write_results
from bench.actions_domain import (
    Amount,
    Create,
    Mark,
    Request,
    bank,
    bank_plain,
    create_item,
    deposit,
    light,
    mark,
    request_transfer,
)
from talix_ray import LocalRuntime
from talix_ray.journal import ObjectStoreJournal
from talix_ray.objectstore import LocalObjectStore
from talix_ray.runtime.ray import RayRuntime
from talix_ray.runtime.ray.local import init_local_ray


@ray.remote(num_cpus=0)
class Echo:
    async def ping(self, payload: Any) -> Any:
        return payload

    async def ping_many(self, payloads: list[Any]) -> list[Any]:
        return payloads


def spread(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


async def gather_limited(coros: list[Any], limit: int) -> None:
    sem = asyncio.Semaphore(limit)

    async def one(c: Any) -> None:
        async with sem:
            await c

    await asyncio.gather(*(one(c) for c in coros))


async def rate(progress: Any, total: int, timeout: float = 600) -> float:
    """Actions/s between 10 % and 90 % of ``total`` done, from ``progress()`` samples."""
    lo, hi = int(total * 0.1), int(total * 0.9)
    t_lo = t_hi = None
    deadline = time.monotonic() + timeout
    while t_hi is None:
        done = await progress()
        now = time.perf_counter()
        if t_lo is None and done >= lo:
            t_lo, d_lo = now, done
        if done >= hi:
            t_hi, d_hi = now, done
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {done}/{total} done")
        await asyncio.sleep(0.01)
    return (d_hi - d_lo) / max(t_hi - t_lo, 1e-6)


# -- (a) dispatch -----------------------------------------------------------------------------
async def write_items(rt: Any, n: int, tag: str) -> None:
    await gather_limited([rt.run(create_item, f"{tag}-{i}", Create(n=i)) for i in range(n)], 64)


async def dispatch_local(root: Path, n: int) -> float:
    store = LocalObjectStore(root)
    async with LocalRuntime(ObjectStoreJournal(store, partitions=4, own_store=False),
                            dispatch=False, views=False).add(light).create() as rt:
        await write_items(rt, n, "i")
    rt = LocalRuntime(ObjectStoreJournal(store, partitions=4, own_store=False),
                      views=False, poll_interval=0.05, max_concurrency=64).add(light).create()
    async with rt:
        async def progress() -> int:
            return rt._dispatcher.processed if rt._dispatcher else 0

        return await rate(progress, n)


async def dispatch_ray(root: Path, n: int) -> float:
    url = f"file://{root}"
    app = f"d{uuid.uuid4().hex[:6]}"
    async with RayRuntime(url, app=app, partitions=4, shards=2, dispatch=False,
                          views=False).add(light).create() as rt:
        await write_items(rt, n, "i")
    rt = RayRuntime(url, app=app, partitions=4, shards=2, views=False,
                    poll_interval=0.05).add(light).create()
    async with rt:
        dispatcher = ray.get_actor(rt.spec.dispatcher_name, namespace=rt.namespace)

        async def progress() -> int:
            return int((await dispatcher.stats.remote())["processed"])

        return await rate(progress, n)


# -- (b) commands from one driver --------------------------------------------------------------
async def commands_ray(root: Path, n: int, rounds: int
                       ) -> tuple[list[float], list[float], list[float]]:
    url = f"file://{root}"
    talix, raw, raw_batched = [], [], []
    async with RayRuntime(url, app=f"c{uuid.uuid4().hex[:6]}", partitions=4, shards=2,
                          dispatch=False, views=False).add(light).create() as rt:
        await gather_limited([rt.run(mark, f"m{i}", Mark(source="warm")) for i in range(n)], n)
        echo = Echo.remote()
        payload = Mark(source="x" * 20)
        await asyncio.gather(*(echo.ping.remote(payload) for _ in range(n)))
        for r in range(rounds):
            async def run_talix(r: int = r) -> float:
                t = time.perf_counter()
                await asyncio.gather(*(rt.run(mark, f"m{i}", Mark(source=f"r{r}"))
                                       for i in range(n)))
                return n / (time.perf_counter() - t)

            async def run_raw() -> float:
                t = time.perf_counter()
                await asyncio.gather(*(echo.ping.remote(payload) for _ in range(n)))
                return n / (time.perf_counter() - t)

            async def run_raw_batched() -> float:
                # the same payloads in batches of 256 (what the router does for commands):
                # for a reader who wants the ratio without batching on one side only
                t = time.perf_counter()
                await asyncio.gather(*(echo.ping_many.remote([payload] * 256)
                                       for _ in range(n // 256)),
                                     echo.ping_many.remote([payload] * (n % 256)))
                return n / (time.perf_counter() - t)

            order = [run_talix, run_raw, run_raw_batched]
            for fn in order if r % 2 == 0 else order[::-1]:
                value = await fn()
                (talix if fn is run_talix else raw if fn is run_raw else raw_batched).append(
                    value)
        ray.kill(echo)
    return talix, raw, raw_batched


# -- (c) the saga -----------------------------------------------------------------------------
async def saga_local(root: Path, service: Any, n: int) -> float:
    """Transfers/s with the dispatcher running while the transfers are requested (steady
    state: the sagas run as their events land)."""
    store = LocalObjectStore(root)
    accounts = 64
    async with LocalRuntime(ObjectStoreJournal(store, partitions=4, own_store=False),
                            dispatch=False, views=False).add(service).create() as rt:
        await gather_limited([rt.run(deposit, f"a{i}", Amount(amount=10 * n))
                              for i in range(accounts)], 64)
    rt = LocalRuntime(ObjectStoreJournal(store, partitions=4, own_store=False),
                      views=False, poll_interval=0.05, max_concurrency=64).add(service).create()
    async with rt:
        async def progress() -> int:
            return rt._dispatcher.processed if rt._dispatcher else 0

        writer = asyncio.ensure_future(gather_limited([rt.run(request_transfer, f"t{i}", Request(
            source=f"a{i % accounts}", target=f"a{(i + 1) % accounts}", amount=1))
            for i in range(n)], 64))
        value = await rate(progress, n)
        await writer
        return value


async def main_async(quick: bool) -> None:
    n_dispatch = 600 if quick else 2000
    n_commands = 1000
    n_saga = 400 if quick else 1500
    rounds = 3 if quick else 5
    # loopback only, token authentication with a token of its own
    init_local_ray(tempfile.mkdtemp(prefix="talix-bench-ray-"), num_cpus=2,
                   include_dashboard=False, log_to_driver=False,
                   runtime_env={"env_vars": {"PYTHONPATH": str(ROOT),
                                             "RAY_USAGE_STATS_ENABLED": "0"}})
    local, on_ray, durable, plain = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="talix-bench-actions-") as tmp:
        base = Path(tmp)
        for r in range(rounds):
            sides = [("local", dispatch_local), ("ray", dispatch_ray)]
            for name, fn in sides if r % 2 == 0 else sides[::-1]:
                value = await fn(base / f"d-{name}-{r}", n_dispatch)
                (local if name == "local" else on_ray).append(value)
                print(f"dispatch {name}: {value:.0f} actions/s", flush=True)
            sagas = [("durable", bank), ("plain", bank_plain)]
            for name, svc in sagas if r % 2 == 0 else sagas[::-1]:
                value = await saga_local(base / f"s-{name}-{r}", svc, n_saga)
                (durable if name == "durable" else plain).append(value)
                print(f"saga {name}: {value:.0f} transfers/s", flush=True)
        talix_cmd, raw_cmd, raw_batched = await commands_ray(base / "commands", n_commands,
                                                             rounds)
        print(f"commands: talix {statistics.median(talix_cmd):.0f}/s, raw actor calls "
              f"{statistics.median(raw_cmd):.0f}/s", flush=True)
    ray.shutdown()
    dispatch_ratios = [r / loc for r, loc in zip(on_ray, local, strict=True)]
    saga_ratios = [d / p for d, p in zip(durable, plain, strict=True)]
    command_ratios = [t / r for t, r in zip(talix_cmd, raw_cmd, strict=True)]
    write_results("actions", {
        "what": {
            "dispatch": f"{n_dispatch} aggregates, one light on_event action each running one "
                        "command; events written first, then a fresh runtime's dispatcher; "
                        "rate between 10% and 90% done; file:// log, 4 partitions, 2 shards",
            "commands": f"{n_commands} commands in flight from one driver on warm aggregates "
                        "vs the same number of async calls to a trivial Ray actor "
                        "(command_ratio, as the issue defines it); the router batches the "
                        "commands of one shard into one actor call, so the same payloads "
                        "batched by 256 are reported too (command_vs_batched_raw)",
            "saga": f"{n_saga} transfers (withdraw, deposit, refund on failure) requested by "
                    "64 concurrent clients while the dispatcher runs them, durable vs "
                    "durable=False, LocalRuntime on a file:// log; rate between 10% and 90%",
        },
        "dispatch_actions_per_s": {"local": spread(local), "ray": spread(on_ray)},
        "commands_per_s": {"talix": spread(talix_cmd), "raw_actor_calls": spread(raw_cmd),
                           "raw_batched_calls": spread(raw_batched)},
        "command_vs_batched_raw": statistics.median(
            t / b for t, b in zip(talix_cmd, raw_batched, strict=True)),
        "saga_transfers_per_s": {"durable": spread(durable), "plain": spread(plain)},
        "ratios_per_round": {"dispatch": dispatch_ratios, "command": command_ratios,
                             "saga": saga_ratios},
        "goals": {"dispatch_ratio": 0.5, "command_ratio": 0.6, "saga_overhead": 0.7},
    }, {"dispatch_ratio": round(statistics.median(dispatch_ratios), 3),
        "command_ratio": round(statistics.median(command_ratios), 3),
        "saga_overhead": round(statistics.median(saga_ratios), 3)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer events, under 180 s")
    args = parser.parse_args()
    asyncio.run(main_async(args.quick))


if __name__ == "__main__":
    main()
