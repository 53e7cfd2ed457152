"""Benchmark: receipts read by OCR in parallel Ray tasks vs the best single-process loop.

(a) fan-out: 16 generated receipts through the whole event-triggered path on Ray (each file
    stored, its document created; ``DOCUMENT_CREATED`` runs the analysis as a Ray task with
    ``num_cpus=1``, which records the fields and creates the expense) against one process
    reading the same 16 files one after the other with the same engine (ONNX Runtime using
    every core) → ``fanout_efficiency`` = loop time / Ray time; both sides warm (models
    loaded, workers started), rounds alternate, medians with min and max;
(b) ``field_accuracy`` over vendor, date, total and currency on ≥ 100 generated receipts and
    non-expenses (a seed the tests do not use), and seconds per page in one process;
(c) the share of analysis tasks each node ran on a 2-node ``ray.cluster_utils.Cluster``.
"""

from __future__ import annotations

import os
import sys

# bench/ must not be on the import path: bench/http.py would hide the stdlib's http
sys.path[:] = [p for p in sys.path
               if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
import ray

from bench._common import write_results
from bench.ocr_node import NodeNotingAnalyzer
from services import documents, expenses
from services.documents import CreateDocument, DocumentAnalyzer, OcrAnalyzer, create_document
from services.documents.receipts import accuracy, generate
from talix_ray import FileStorage
from talix_ray.runtime.ray import RayRuntime
from talix_ray.runtime.ray.local import init_local_ray, token_file, use_local_ray_environment

ROOT = Path(__file__).parent.parent
SEED_FANOUT = 8_161
SEED_ACCURACY = 90_210


def spread(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def loop_once(docs: list[Any]) -> float:
    """The best single process: one engine, the files one after the other."""
    analyzer = OcrAnalyzer()
    t = time.perf_counter()
    for doc in docs:
        analyzer.analyze(doc.content, doc.content_type)
    return time.perf_counter() - t


async def upload_and_wait(rt: RayRuntime, docs: list[Any], tag: str,
                          timeout: float = 300) -> float:
    """Store every file, create its document, and wait until every analysis is recorded."""
    files = rt.get(FileStorage)
    t = time.perf_counter()
    ids = []
    for i, doc in enumerate(docs):
        key = await files.put(doc.content, doc.content_type)
        doc_id = f"{tag}-{i:03d}"
        await rt.run(create_document, doc_id, CreateDocument(
            key=key, name=doc.name, content_type=doc.content_type))
        ids.append(doc_id)
    deadline = time.monotonic() + timeout
    pending = set(ids)
    while pending:
        for doc_id in list(pending):
            state = await rt.load_state(documents.documents, doc_id)
            if state is not None and state.status != "CREATED":
                pending.discard(doc_id)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} documents not analyzed")
        await asyncio.sleep(0.05)
    return time.perf_counter() - t


def runtime(store: str, app: str, analyzer: DocumentAnalyzer) -> RayRuntime:
    return (RayRuntime(store, app=app, partitions=2, shards=1, views=False, poll_interval=0.05)
            .register(DocumentAnalyzer, analyzer)
            .add(documents.service, expenses.service).create())


async def fanout(tmp: Path, docs: list[Any], rounds: int) -> tuple[list[float], list[float]]:
    ray_times, loop_times = [], []
    rt = runtime(f"file://{tmp}/fanout", f"ocr{uuid.uuid4().hex[:6]}", OcrAnalyzer())
    async with rt:
        # warm-up: both workers start and load the models, the loop's engine loads too
        await upload_and_wait(rt, docs[:4], "warm")
        loop_once(docs[:2])
        for r in range(rounds):
            sides = ["ray", "loop"] if r % 2 == 0 else ["loop", "ray"]
            for side in sides:
                if side == "ray":
                    ray_times.append(await upload_and_wait(rt, docs, f"r{r}"))
                else:
                    loop_times.append(loop_once(docs))
            print(f"round {r}: ray {ray_times[-1]:.2f} s, loop {loop_times[-1]:.2f} s",
                  flush=True)
    return ray_times, loop_times


async def node_share(tmp: Path, docs: list[Any]) -> dict[str, int]:
    """Analyses per node on a 2-node cluster on this machine (one CPU each)."""
    from ray.cluster_utils import Cluster

    folder = tmp / "nodes"
    folder.mkdir()
    use_local_ray_environment(token_file(tmp / "cluster-token"))  # loopback, its own token
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False,
        "_system_config": {"health_check_period_ms": 500,
                           "health_check_failure_threshold": 2}})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, runtime_env={"env_vars": {
        "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}})
    try:
        rt = runtime(f"file://{tmp}/nodes-log", f"nodes{uuid.uuid4().hex[:6]}",
                     NodeNotingAnalyzer(str(folder)))
        async with rt:
            await upload_and_wait(rt, docs, "n")
    finally:
        ray.shutdown()
        cluster.shutdown()
    nodes = Counter(p.read_text() for p in folder.iterdir())
    return {node[:12]: n for node, n in sorted(nodes.items())}


async def main_async(quick: bool) -> None:
    n_fanout = 16
    rounds = 3 if quick else 5
    n_accuracy = 100 if quick else 200
    docs = list(generate(n_fanout, SEED_FANOUT, expense_share=1.0))
    with tempfile.TemporaryDirectory(prefix="talix-bench-ocr-") as d:
        tmp = Path(d)
        init_local_ray(tmp / "ray", num_cpus=2, log_to_driver=False,
                       runtime_env={"env_vars": {"PYTHONPATH": str(ROOT),
                                                 "RAY_USAGE_STATS_ENABLED": "0"}})
        try:
            ray_times, loop_times = await fanout(tmp, docs, rounds)
        finally:
            ray.shutdown()
        shares = await node_share(tmp, docs[:8])
    report = accuracy(n_accuracy, SEED_ACCURACY)
    efficiencies = [lt / rt for lt, rt in zip(loop_times, ray_times, strict=True)]
    pages = sum(doc.pages for doc in docs)
    write_results("ocr", {
        "what": {
            "fanout": f"{n_fanout} generated receipts (PNG, JPEG, WebP, TIFF) through the "
                      "event-triggered path on a local Ray with 2 CPUs (stored, document "
                      "created, analysis as a Ray task with num_cpus=1, fields recorded, "
                      "expense created) vs one process reading the same files in a loop "
                      "with the same RapidOCR engine; both warm; rounds alternate",
            "accuracy": f"{n_accuracy} generated documents (receipts, invoices, letters, "
                        f"newsletters, menus, forms), seed {SEED_ACCURACY}, one process",
            "nodes": "8 receipts on a 2-node ray.cluster_utils.Cluster (1 CPU each)",
        },
        "fanout_seconds": {"ray": spread(ray_times), "loop": spread(loop_times)},
        "fanout_efficiency_per_round": efficiencies,
        "ray_s_per_page": statistics.median(ray_times) / pages,
        "accuracy": report.model_dump(exclude={"misses"}),
        "misses": report.misses[:40],
        "tasks_per_node": shares,
        "goals": {"fanout_efficiency": 0.9, "field_accuracy": 0.95},
    }, {"fanout_efficiency": round(statistics.median(efficiencies), 3),
        "field_accuracy": report.field_accuracy,
        "s_per_page": report.s_per_page})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, under 180 s")
    args = parser.parse_args()
    asyncio.run(main_async(args.quick))


if __name__ == "__main__":
    main()
