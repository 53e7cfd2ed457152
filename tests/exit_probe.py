"""Does a process that did Delta Lake work exit cleanly? (issue 15, item 5)

``deltalake`` once aborted the interpreter at exit (SIGABRT, "terminate called without an
active exception", delta-io/delta-rs#2184), which is why the ``talix`` CLI used to leave with
``os._exit``. Each scenario below does real Delta work in a child process and then returns
normally, so the interpreter runs its whole teardown; the parent checks the exit code and
stderr, several times (an abort at teardown is racy).

    python -m tests.exit_probe                      # every scenario, 5 rounds each
    python -m tests.exit_probe --rounds 20 delta views
    python -m tests.exit_probe --child delta file   # one child, by hand

Scenarios: ``delta`` (write, merge, read, DuckDB and polars over the table), ``views`` (a
LocalRuntime whose view runners fold into Delta, read back through DuckDB), ``ray`` (a local
Ray started in the process, a RayRuntime with view actors, the views read in the driver), each
and ``ray-open`` (Delta work in the driver and in a Ray task, Ray left running at exit), each
on a local directory and on S3 (SeaweedFS). The ``ray`` ones start Ray: run them under the
shared lock.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parent.parent
SCENARIOS = ("delta", "views", "ray", "ray-open")
STORES = ("file", "s3")
# what a native abort at teardown prints (C++ std::terminate, a Rust panic, CPython's handler)
ABORT_SIGNS = ("terminate called", "panicked", "Fatal Python error", "Aborted",
               "Segmentation fault")


def _settings(store: str, work: Path) -> Any:
    """Settings on a fresh local directory, or a fresh prefix of the S3 server in TALIX_*."""
    from talix_ray.settings import Settings

    if store == "file":
        return Settings(store=f"file://{work}/store", data_dir=work / "data", partitions=2)
    bucket = os.environ["PROBE_BUCKET"]
    return Settings(store=f"s3://{bucket}/probe-{uuid.uuid4().hex[:10]}",
                    data_dir=work / "data", partitions=2)


def delta_work(store: str, work: Path) -> None:
    """deltalake alone: create, append, merge, read as Arrow, query with DuckDB and polars."""
    import deltalake
    import duckdb
    import polars as pl
    import pyarrow as pa

    from talix_ray.views import ViewLocation

    location = ViewLocation.of_settings(_settings(store, work))
    uri, options = location.uri("probe"), location.storage_options or None
    rows = pa.table({"k": [f"k{i}" for i in range(100)], "n": list(range(100))})
    deltalake.write_deltalake(uri, rows, storage_options=options)
    deltalake.write_deltalake(uri, rows, mode="append", storage_options=options)
    table = deltalake.DeltaTable(uri, storage_options=options)
    update = pa.table({"k": ["k1", "new"], "n": [-1, 7]})
    (table.merge(update, "s.k = t.k", source_alias="s", target_alias="t")
     .when_matched_update_all().when_not_matched_insert_all().execute())
    table = deltalake.DeltaTable(uri, storage_options=options)
    assert table.version() == 2, table.version()
    dataset = table.to_pyarrow_dataset()
    con = duckdb.connect()
    con.register("probe", dataset)
    [(count,)] = con.sql("select count(*) from probe").fetchall()
    assert count == 201, count
    assert pl.from_arrow(dataset.to_table()).height == 201  # type: ignore[union-attr]


async def views_work(store: str, work: Path) -> None:
    """A LocalRuntime's view runners fold commands into Delta; read back with DuckDB."""
    from talix_ray import LocalRuntime

    from . import views_domain as bank

    runtime = LocalRuntime.from_settings(_settings(store, work),
                                         view_options={"linger": 0.02, "poll_interval": 0.05})
    async with runtime.add(bank.service).create():
        await _bank_commands(runtime)


async def ray_work(store: str, work: Path) -> None:
    """A local Ray started here, a RayRuntime whose views run in actors; read in the driver."""
    from talix_ray.runtime.ray import RayRuntime

    from . import views_domain as bank

    runtime = RayRuntime(settings=_settings(store, work), app=f"p{uuid.uuid4().hex[:8]}",
                         partitions=2, shards=1, poll_interval=0.05,
                         ray_init={"num_cpus": 1, "include_dashboard": False,
                                   "log_to_driver": False,
                                   "runtime_env": {"env_vars": {
                                       "PYTHONPATH": str(ROOT),
                                       "RAY_USAGE_STATS_ENABLED": "0"}}},
                         view_options={"linger": 0.02, "poll_interval": 0.05})
    async with runtime.add(bank.service).create():
        await _bank_commands(runtime)


def ray_open_work(store: str, work: Path) -> None:
    """Delta work in the driver and in a Ray task while a local Ray runs, left running at
    exit (what a process that joined a cluster does; Ray's own atexit hook disconnects)."""
    import ray

    from talix_ray.runtime.ray.local import init_local_ray

    init_local_ray(work / "ray", num_cpus=1, include_dashboard=False, log_to_driver=False,
                   runtime_env={"env_vars": {"PYTHONPATH": str(ROOT),
                                             "RAY_USAGE_STATS_ENABLED": "0", **{
                                                 k: v for k, v in os.environ.items()
                                                 if k.startswith(("TALIX_", "PROBE_"))}}})
    delta_work(store, work)
    remote = ray.remote(num_cpus=0)(delta_work)
    ray.get(remote.remote(store, work / "task"), timeout=120)


async def _bank_commands(runtime: Any) -> None:
    from . import views_domain as bank

    for i in range(5):
        await runtime.run(bank.open_account, f"a{i}", bank.Open(owner="probe"))
    last = await runtime.run(bank.deposit, "a1", bank.Deposit(amount=Decimal("2.50")))
    await runtime.views.wait_for(last, timeout=120)
    [(total,)] = runtime.views.sql("select sum(balance) from balances").fetchall()
    assert total == Decimal("2.50"), total
    assert runtime.views.open("events").to_arrow().num_rows == 6


WORK: dict[str, Callable[[str, Path], Coroutine[Any, Any, None] | None]] = {
    "delta": delta_work, "views": views_work, "ray": ray_work, "ray-open": ray_open_work}


def child(scenario: str, store: str) -> None:
    """Do the work, print "done", then return: the interpreter exits the ordinary way."""
    with tempfile.TemporaryDirectory(prefix="exit-probe-") as tmp:
        outcome = WORK[scenario](store, Path(tmp))
        if outcome is not None:
            asyncio.run(outcome)
    print("done", flush=True)


def child_env(s3: Any = None) -> dict[str, str]:
    """A child's environment: this checkout importable, and the S3 server's keys (an
    :class:`~talix_ray.s3server.EmbeddedS3`) for the ``s3`` store."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT),
           "RAY_USAGE_STATS_ENABLED": "0", "HOME": os.environ.get("HOME", "/tmp")}
    if s3 is not None:
        env.update(s3.environment(f"s3://{s3.bucket}/unused"), PROBE_BUCKET=s3.bucket)
    return env


def run_child(scenario: str, store: str, env: dict[str, str]) -> tuple[int, float, str]:
    """One child: its exit code, seconds taken, and the abort signs its stderr shows."""
    started = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "tests.exit_probe", "--child", scenario, store],
                       cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    signs = [line for line in r.stderr.splitlines() if any(s in line for s in ABORT_SIGNS)]
    if r.returncode != 0 or "done" not in r.stdout:
        signs.append(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "(no stderr)")
    return r.returncode, time.monotonic() - started, " | ".join(signs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", nargs=2, metavar=("SCENARIO", "STORE"))
    parser.add_argument("--stores", default=",".join(STORES))
    parser.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    import deltalake
    import duckdb
    import pyarrow
    import ray

    from talix_ray.s3server import EmbeddedS3

    print(f"python {sys.version.split()[0]}, deltalake {deltalake.__version__}, "
          f"pyarrow {pyarrow.__version__}, duckdb {duckdb.__version__}, ray {ray.__version__}")
    stores = args.stores.split(",")
    failures = 0
    with tempfile.TemporaryDirectory(prefix="exit-probe-s3-") as s3_dir, \
            EmbeddedS3(s3_dir) as s3:
        for scenario in args.scenarios:
            for store in stores:
                env = child_env(s3 if store == "s3" else None)
                codes = []
                for _ in range(args.rounds):
                    code, took, signs = run_child(scenario, store, env)
                    codes.append(code)
                    if code != 0 or signs:
                        failures += 1
                        print(f"  {scenario}/{store}: exit {code} after {took:.1f}s: {signs}")
                print(f"{scenario:>6} on {store:<4}: exit codes {codes}", flush=True)
    print(f"{failures} unclean exit(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
