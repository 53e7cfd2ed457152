"""Node failure scenario, run by tests/test_ray.py in its own process.

A Ray cluster of a head (CPUs for action tasks) and two worker nodes (the only ones with the
`talix` resource, so they host the shards and the dispatcher). Eight clients stream commands;
the node hosting shard 0 is removed; the shard comes back on the other node. Afterwards the
log is read straight from storage: every acknowledged command is in it exactly once, nothing
is applied twice, every failure was a retryable one, and the event-triggered action ran for
every event (once in effect).
"""

from __future__ import annotations

import os

# every Ray process of this test binds to loopback (no traffic to the host's own address)
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

import asyncio
import json
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from talix_ray.journal import ObjectStoreJournal
from talix_ray.journal import format as fmt
from talix_ray.objectstore.s3 import S3ObjectStore
from talix_ray.runtime.ray import RayRuntime
from talix_ray.s3server import EmbeddedS3
from tests import domain
from tests.domain import Add, add

ROOT = Path(__file__).parent.parent
RETRYABLE = {"Unavailable", "Fenced", "RayActorError", "ActorDiedError",
             "ActorUnavailableError", "VersionConflict"}


async def scenario(rt: RayRuntime, cluster: Cluster, workers: list, prefix: str,
                   s3: EmbeddedS3) -> dict:
    acked: dict[str, tuple[str, float]] = {}
    failed: dict[str, str] = {}
    stop = False

    async def client(c: int) -> None:
        i = 0
        while not stop:
            cid = f"c{c}-{i}"
            agg = f"a{c}-{i % 5}"
            try:
                await rt.run(add, agg, Add(amount=1), command_id=cid)
                acked[cid] = (agg, time.monotonic())
            except Exception as exc:  # recorded, checked below
                failed[cid] = type(exc).__name__
            i += 1

    async with rt:
        victim_node = rt.shard_info[0]["node"]
        tasks = [asyncio.create_task(client(c)) for c in range(8)]
        await asyncio.sleep(4)
        victim = next(w for w in workers if w.node_id == victim_node)
        hosted = sum(1 for s in rt.shard_info if s["node"] == victim_node)
        t_fail = time.monotonic()
        await asyncio.to_thread(cluster.remove_node, victim)
        await asyncio.sleep(20)
        stop = True
        await asyncio.gather(*tasks)
        await rt.settle(180)
        stats = await rt.stats()

    store = S3ObjectStore(s3.bucket, prefix, **s3.store_options())
    journal = ObjectStoreJournal(store)
    await journal.open()
    applied: Counter[str] = Counter()
    counter_events: list[tuple[str, str]] = []
    for p in range(journal.partitions):
        listing = await store.list_all(fmt.segment_prefix(p))
        for key in sorted(listing.keys):
            rec = fmt.decode_segment(key, (await store.get(key)).body)
            for c in rec.segment.commits:
                if c.store == "counters":
                    applied[c.command_id or ""] += 1
                    counter_events += [(e.aggregate_id, e.id) for e in c.events]
    booked: set[str] = set()
    for agg in {a for a, _ in counter_events}:
        booked |= {e.payload["source"] for e in await journal.read_stream("ledger", agg)}
    return {
        "removed_node_hosted": hosted,
        "acked": len(acked),
        "acked_after_failure": sum(1 for _, t in acked.values() if t > t_fail),
        "failed": len(failed),
        "failed_types": sorted(set(failed.values())),
        "failed_not_retryable": sorted({t for t in failed.values() if t not in RETRYABLE}),
        "missing_acked": sorted(c for c in acked if applied[c] != 1)[:20],
        "applied_twice": sorted(c for c, n in applied.items() if n > 1)[:20],
        "actions_missing": sorted(e for _, e in counter_events if e not in booked)[:20],
        "shards_after": [s.get("pid") for s in stats["shards"]],
    }


def main(out: str) -> None:
    with tempfile.TemporaryDirectory() as tmp, EmbeddedS3(tmp, bucket="nodes") as s3:
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 2, "_system_config": {
                "health_check_period_ms": 500, "health_check_failure_threshold": 2,
                "health_check_initial_delay_ms": 0, "health_check_timeout_ms": 500}})
        workers = [cluster.add_node(num_cpus=0, resources={"talix": 10}) for _ in range(2)]
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
        prefix = f"nodes-{uuid.uuid4().hex[:8]}"
        settings = s3.settings(f"s3://{s3.bucket}/{prefix}")
        rt = RayRuntime(settings=settings, app="nodes", partitions=4, shards=2,
                        poll_interval=0.2, actor_options={"resources": {"talix": 1}}) \
            .add(domain.service).create()
        try:
            result = asyncio.run(scenario(rt, cluster, workers, prefix, s3))
        finally:
            ray.shutdown()
            cluster.shutdown()
        Path(out).write_text(json.dumps(result, indent=2))
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(sys.argv[1])
