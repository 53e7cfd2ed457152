"""Benchmark: aggregates in shard actors vs one Ray actor per aggregate, on embedded SeaweedFS.

(a) activation of a fresh aggregate: its first command in a shard vs a new minimal
    ``@ray.remote`` actor per aggregate that, once started, reads its stream (one LIST of
    its prefix) and appends its event (one conditional PUT), measured from the actor's
    creation to the PUT's answer (each after the previous actor's process has exited);
    medians with spread
    → activation_ratio = minimal actor / sharded;
(b) memory: the shard's USS grows by ``(active - before) / N`` per aggregate while N fresh
    aggregates are active (``before``: the shard after a warm-up, nothing passivated; no floor
    on the growth), vs the USS of one minimal aggregate actor → memory_ratio = minimal actor /
    per-aggregate growth; the shard's USS after passivating them is reported too;
(c) warm command p50 (sharded) vs raw Ray actor call p50 + raw conditional PUT p50, measured
    in the same run → latency_ratio.
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

import psutil
import ray

from bench._common import write_results
from bench.ray_domain import Bump, bump, bump_dedicated, service
from talix_ray.objectstore.s3 import S3ObjectStore
from talix_ray.runtime.ray import RayRuntime
from talix_ray.runtime.ray.local import init_local_ray
from talix_ray.s3server import EmbeddedS3
from talix_ray.secrets import reveal


@ray.remote(num_cpus=0)
class Echo:
    async def ping(self, x: int) -> int:
        return x

    def pid(self) -> int:
        return os.getpid()


@ray.remote(num_cpus=0)
class MinimalAggregate:
    """The least an actor per aggregate must do: a client of its own, read its stream, append
    its first event with a conditional PUT (boto3 as talix uses it, one client, its defaults)."""

    def __init__(self, options: dict[str, Any], bucket: str, stream: str) -> None:
        import boto3
        from botocore.config import Config

        self.s3 = boto3.client("s3", endpoint_url=options["endpoint_url"],
                               region_name=options["region"],
                               aws_access_key_id=options["access_key"],
                               aws_secret_access_key=options["secret_key"],
                               config=Config(s3={"addressing_style": "path"}))
        self.bucket = bucket
        self.stream = stream

    def run(self, body: bytes) -> int:
        """Read the stream's events (a LIST of its prefix), append the next one."""
        listing = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=self.stream + "/")
        version = listing.get("KeyCount", 0) + 1
        self.s3.put_object(Bucket=self.bucket, Key=f"{self.stream}/{version:012d}", Body=body,
                           IfNoneMatch="*")
        return version

    def pid(self) -> int:
        return os.getpid()


def uss(pid: int) -> int:
    return int(psutil.Process(pid).memory_full_info().uss)


async def gone(pid: int, timeout: float) -> None:
    """Wait (with a deadline) for a killed actor's process to exit."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"actor process {pid} still running after {timeout}s")
        await asyncio.sleep(0.05)


def spread(values: list[float], scale: float = 1.0) -> dict[str, float]:
    """Median and spread (min, max) of samples."""
    return {"median": statistics.median(values) * scale, "min": min(values) * scale,
            "max": max(values) * scale}


async def main_async(quick: bool) -> None:
    n_activation = 15 if quick else 25
    n_memory = 2_000 if quick else 10_000
    n_latency = 150 if quick else 600
    with tempfile.TemporaryDirectory() as tmp, EmbeddedS3(tmp, bucket="bench") as s3:
        # loopback only, token authentication with a token of its own
        init_local_ray(Path(tmp) / "ray", num_cpus=2, include_dashboard=False,
                       log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
        settings = s3.settings(f"s3://bench/ray-{uuid.uuid4().hex[:8]}")
        options = s3.store_options()
        plain = {**options, "secret_key": reveal(options["secret_key"])}  # for boto3 itself
        rt = RayRuntime(settings=settings, app="bench", partitions=1, shards=1,
                        idle_timeout=600).add(service).create()
        async with rt:
            one = Bump(n=1)
            shard_pid = rt.shard_info[0]["pid"]
            sem = asyncio.Semaphore(128)

            async def create(name: str) -> None:
                async with sem:
                    await rt.run(bump, name, one)

            # (b) first, on a shard that has held nothing yet (no freed memory to reuse): a
            # warm-up, then N fresh aggregates, measured while they are active
            await asyncio.gather(*(create(f"warm-{i}") for i in range(200)))
            before = uss(shard_pid)
            await asyncio.gather(*(create(f"mem-{i}") for i in range(n_memory)))
            stats = await rt.stats()
            active = uss(shard_pid)
            await rt.passivate_all()
            passivated = uss(shard_pid)
            per_aggregate = (active - before) / n_memory

            # (c) warm command vs raw actor call + raw PUT, interleaved sample by sample so
            # that a noisy moment of the machine hits all three alike
            await rt.run(bump, "warm", one)
            echo = Echo.remote()
            await echo.ping.remote(0)
            store = S3ObjectStore("bench", f"raw-{uuid.uuid4().hex[:8]}", **options)
            body = b'{"f":1,"e":[{"t":"BENCH:BUMPED","p":{"n":1}}]}' * 2
            lat, raw_call, raw_put = [], [], []
            for i in range(n_latency):
                t = time.perf_counter()
                await rt.run(bump, "warm", one)
                lat.append(time.perf_counter() - t)
                t = time.perf_counter()
                await echo.ping.remote(i)
                raw_call.append(time.perf_counter() - t)
                t = time.perf_counter()
                await store.create(f"raw/{i:012d}", body)
                raw_put.append(time.perf_counter() - t)
            ray.kill(echo)

            # (a) activation of fresh aggregates: sharded, then a new minimal actor each (not
            # interleaved: starting and killing actor processes loads this 2-core machine, which
            # is the actor-per-aggregate design's own cost, not the shard's)
            prefix = f"minimal-{uuid.uuid4().hex[:8]}"
            sharded, minimal = [], []
            minimal_uss = 0
            for i in range(n_activation):
                t = time.perf_counter()
                await rt.run(bump, f"fresh-{i}", one)
                sharded.append(time.perf_counter() - t)
            for i in range(n_activation):
                t = time.perf_counter()
                actor = MinimalAggregate.remote(plain, "bench", f"{prefix}/fresh-{i}")
                version = await asyncio.wait_for(actor.run.remote(body), 120)
                minimal.append(time.perf_counter() - t)
                assert version == 1, version
                pid = await asyncio.wait_for(actor.pid.remote(), 60)
                if i == 0:  # (b) the memory of one actor per aggregate
                    minimal_uss = uss(pid)
                ray.kill(actor)
                await gone(pid, 60)  # the next one starts on a machine as quiet as the first

            # for reference: talix's own dedicated placement (one actor per aggregate)
            t = time.perf_counter()
            await rt.run(bump_dedicated, "fresh-0", one)
            talix_dedicated_s = time.perf_counter() - t
            dedicated = ray.get_actor("talix:bench:bumps-dedicated:fresh-0",
                                      namespace=rt.namespace)
            talix_dedicated_uss = uss(await dedicated.ready.remote())
        ray.shutdown()

    p50 = statistics.median
    ratios = [m / s for m, s in zip(minimal, sharded, strict=True)]
    memory_ratio = round(minimal_uss / per_aggregate) if per_aggregate > 0 else None
    summary = {
        "activation_ratio": round(p50(minimal) / p50(sharded), 1),
        "memory_ratio": memory_ratio,
        "latency_ratio": round(p50(lat) / (p50(raw_call) + p50(raw_put)), 2),
    }
    data = {
        "activation": {
            "sharded": {"did": "the first command of a fresh aggregate in a running shard "
                               "(route, load: no events, decide, one segment PUT)",
                        "ms": spread(sharded, 1000)},
            "minimal_actor": {"did": "create a @ray.remote actor (one boto3 client), LIST the "
                                     "aggregate's prefix, one conditional PUT (If-None-Match); "
                                     "from .remote() to the PUT's answer",
                              "ms": spread(minimal, 1000)},
            "ratio_per_sample": spread(ratios), "samples": n_activation,
            "talix_dedicated_first_command_ms": talix_dedicated_s * 1000},
        "memory": {"minimal_actor_uss_mb": minimal_uss / 2**20,
                   "talix_dedicated_actor_uss_mb": talix_dedicated_uss / 2**20,
                   "shard_uss_mb": {"before": before / 2**20, "active": active / 2**20,
                                    "after_passivation": passivated / 2**20},
                   "aggregates": n_memory, "per_aggregate_bytes": per_aggregate,
                   "active_reported": stats["active"],
                   "did": "USS of the shard after 200 warm-up aggregates (nothing passivated), "
                          "then with N fresh aggregates active; growth / N, not floored"},
        "latency": {"command_p50_ms": p50(lat) * 1000, "actor_call_p50_ms": p50(raw_call) * 1000,
                    "put_p50_ms": p50(raw_put) * 1000, "samples": n_latency,
                    "command_ms": spread(lat, 1000)},
        "goals": {"activation_ratio": 100, "memory_ratio": 1000, "latency_ratio": 1.5},
    }
    act = data["activation"]
    print(f"activation: sharded {act['sharded']['ms']['median']:.1f} ms, minimal actor "
          f"{act['minimal_actor']['ms']['median']:.1f} ms (medians of {n_activation})")
    print(f"memory: minimal actor {minimal_uss / 2**20:.1f} MiB, {per_aggregate:.0f} B per "
          f"aggregate in a shard ({stats['active']} active; "
          f"{(active - passivated) / 2**20:.1f} MiB released by passivation)")
    lat_ms = data["latency"]
    print(f"latency: command {lat_ms['command_p50_ms']:.2f} ms, actor call "
          f"{lat_ms['actor_call_p50_ms']:.2f} ms + PUT {lat_ms['put_p50_ms']:.2f} ms")
    write_results("ray", data, summary)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer samples, under 90 s")
    args = parser.parse_args()
    asyncio.run(main_async(args.quick))


if __name__ == "__main__":
    main()
