"""Benchmark: aggregates in shard actors vs one Ray actor per aggregate, on embedded SeaweedFS.

(a) activation of a fresh aggregate (its first command), dedicated vs sharded
    → activation_ratio = dedicated / sharded;
(b) memory: 10,000 active aggregates in one shard (2,000 with --quick; USS growth per
    aggregate) vs the USS of one dedicated aggregate actor → memory_ratio = dedicated actor /
    per-aggregate;
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


@ray.remote(num_cpus=0)
class Echo:
    async def ping(self, x: int) -> int:
        return x

    def pid(self) -> int:
        return os.getpid()


def uss(pid: int) -> int:
    return int(psutil.Process(pid).memory_full_info().uss)


async def main_async(quick: bool) -> None:
    n_activation = 5 if quick else 15
    n_memory = 2_000 if quick else 10_000
    n_latency = 150 if quick else 600
    with tempfile.TemporaryDirectory() as tmp, EmbeddedS3(tmp, bucket="bench") as s3:
        # loopback only, token authentication with a token of its own
        init_local_ray(Path(tmp) / "ray", num_cpus=2, include_dashboard=False,
                       log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
        settings = s3.settings(f"s3://bench/ray-{uuid.uuid4().hex[:8]}")
        rt = RayRuntime(settings=settings, app="bench", partitions=1, shards=1,
                        idle_timeout=600).add(service).create()
        async with rt:
            one = Bump(n=1)
            # (c) first: warm command vs raw actor call + raw PUT, interleaved sample by sample
            # so that a noisy moment of the machine hits all three alike
            await rt.run(bump, "warm", one)
            echo = Echo.remote()
            await echo.ping.remote(0)
            store = S3ObjectStore("bench", f"raw-{uuid.uuid4().hex[:8]}", **s3.store_options())
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

            # (a) activation of fresh aggregates
            sharded, dedicated = [], []
            for i in range(n_activation):
                t = time.perf_counter()
                await rt.run(bump, f"fresh-{i}", one)
                sharded.append(time.perf_counter() - t)
                t = time.perf_counter()
                await rt.run(bump_dedicated, f"fresh-{i}", one)
                dedicated.append(time.perf_counter() - t)

            # (b) memory: one dedicated aggregate actor vs 10,000 aggregates in the shard
            actor = ray.get_actor("talix:bench:bumps-dedicated:fresh-0",
                                  namespace=rt.namespace)
            dedicated_uss = uss(await actor.ready.remote())
            shard_pid = rt.shard_info[0]["pid"]
            await rt.passivate_all()
            before = uss(shard_pid)
            sem = asyncio.Semaphore(128)

            async def create(i: int) -> None:
                async with sem:
                    await rt.run(bump, f"mem-{i}", one)

            await asyncio.gather(*(create(i) for i in range(n_memory)))
            stats = await rt.stats()
            after = uss(shard_pid)
            per_aggregate = max(1, after - before) / n_memory
        ray.shutdown()

    p50 = statistics.median
    summary = {
        "activation_ratio": round(p50(dedicated) / p50(sharded), 1),
        "memory_ratio": round(dedicated_uss / per_aggregate, 0),
        "latency_ratio": round(p50(lat) / (p50(raw_call) + p50(raw_put)), 2),
    }
    data = {
        "activation": {"sharded_p50_ms": p50(sharded) * 1000,
                       "dedicated_p50_ms": p50(dedicated) * 1000, "samples": n_activation},
        "memory": {"dedicated_actor_uss_mb": dedicated_uss / 2**20,
                   "shard_growth_mb": (after - before) / 2**20, "aggregates": n_memory,
                   "per_aggregate_bytes": per_aggregate, "active_reported": stats["active"]},
        "latency": {"command_p50_ms": p50(lat) * 1000, "actor_call_p50_ms": p50(raw_call) * 1000,
                    "put_p50_ms": p50(raw_put) * 1000, "samples": n_latency},
        "goals": {"activation_ratio": 100, "memory_ratio": 1000, "latency_ratio": 1.5},
    }
    print(f"activation: sharded {data['activation']['sharded_p50_ms']:.1f} ms, dedicated "
          f"{data['activation']['dedicated_p50_ms']:.1f} ms")
    print(f"memory: dedicated actor {data['memory']['dedicated_actor_uss_mb']:.1f} MiB, "
          f"{per_aggregate:.0f} B per aggregate in a shard ({stats['active']} active)")
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
