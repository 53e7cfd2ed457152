"""What only the RayRuntime has: named actors, dedicated aggregates, task resources,
node failures."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from talix_ray import ConfigurationError

from .domain import Add, Book, book, ledger
from .ray_domain import heavy, heavy_add, service
from .waiting import eventually

ROOT = Path(__file__).parent.parent


@pytest.fixture
def ray_runtime(s3_server, ray_session):
    from talix_ray.runtime.ray import RayRuntime

    def make(**kw):
        settings = s3_server.settings(f"s3://{s3_server.bucket}/ray-{uuid.uuid4().hex[:10]}")
        return RayRuntime(settings=settings, app=f"t{uuid.uuid4().hex[:10]}", partitions=2,
                          shards=2, poll_interval=0.05,
                          **{"views": False, **kw}).add(service).create()

    return make


async def test_named_actors_dedicated_aggregates_and_task_resources(ray_runtime, ray_session):
    ray = ray_session
    rt = ray_runtime(idle_timeout=1.0)
    async with rt:
        ns = rt.namespace
        for i in range(2):
            assert ray.get_actor(f"talix:{rt.app_name}:shard:{i}", namespace=ns)
        assert ray.get_actor(f"talix:{rt.app_name}:dispatcher", namespace=ns)
        await rt.run(heavy_add, "h1", Add(amount=2))
        r = await rt.run(heavy_add, "h1", Add(amount=3))
        assert r.version == 2
        actor = ray.get_actor(f"talix:{rt.app_name}:heavy:h1", namespace=ns)
        pid = await actor.ready.remote()
        assert pid not in {s["pid"] for s in rt.shard_info}  # its own process
        assert (await rt.get_aggregate(heavy, "h1")).state.total == 5
        await rt.settle(60)
        booked = await rt.load_state(ledger, "res-h1")
        assert [e.amount for e in booked] == [2, 2]  # each action ran as a task with 2 CPUs
        def gone() -> bool:  # idle (idle_timeout=1.0): the dedicated actor stops itself
            try:
                ray.get_actor(f"talix:{rt.app_name}:heavy:h1", namespace=ns)
            except ValueError:
                return True
            return False

        await eventually(gone, timeout=30, what="the idle dedicated actor stopped itself")
        r = await rt.run(heavy_add, "h1", Add(amount=1))  # re-created, reloaded from storage
        assert r.version == 3 and (await rt.get_aggregate(heavy, "h1")).state.total == 6
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
             if a["namespace"] == ns]
    assert not [n for n in names if n.startswith(f"talix:{rt.app_name}:")]


def test_the_ray_runtime_needs_shared_storage():
    from talix_ray.runtime.ray import RayRuntime

    with pytest.raises(ConfigurationError, match="s3:// or file://"):
        RayRuntime("memory://")


@pytest.mark.timeout(600)
def test_a_node_failure_loses_no_acknowledged_command(tmp_path):
    """Runs in its own process: a multi-node cluster cannot share this session's Ray."""
    from talix_ray.runtime.ray.local import token_file

    out = tmp_path / "result.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN_PATH": str(token_file(tmp_path / "ray")),  # a token of its own
           "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_AUTH_TOKEN", None)
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "node_failure.py"), str(out)],
                          env=env, capture_output=True, text=True, timeout=540, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["removed_node_hosted"] >= 1
    assert result["acked"] >= 100 and result["acked_after_failure"] >= 20
    assert result["missing_acked"] == [] and result["applied_twice"] == []
    assert result["failed_not_retryable"] == []
    assert result["actions_missing"] == []


async def test_a_second_driver_joins_the_running_actors_and_leaves_them(ray_runtime, s3_server):
    from talix_ray.runtime.ray import RayRuntime

    owner = ray_runtime()
    async with owner:
        joiner = RayRuntime(owner.store_url, app=owner.app_name, namespace=owner.namespace,
                            settings=s3_server.settings(owner.store_url),
                            keep_actors=True).add(service).create()
        async with joiner:
            await joiner.run(heavy_add, "j1", Add(amount=4))
            assert joiner.shard_info[0]["pid"] == owner.shard_info[0]["pid"]  # the same actor
        # the joiner stopped; the owner's actors, dispatcher included, still run
        r = await owner.run(heavy_add, "j1", Add(amount=1))
        assert r.version == 2
        await owner.settle(60)
        assert len(await owner.load_state(ledger, "res-j1")) == 2


async def test_views_run_in_named_restartable_actors(s3_server, ray_session):
    from decimal import Decimal

    from talix_ray.runtime.ray import RayRuntime

    from . import views_domain as bank

    ray = ray_session
    settings = s3_server.settings(f"s3://{s3_server.bucket}/ray-{uuid.uuid4().hex[:10]}")
    rt = RayRuntime(settings=settings, app=f"v{uuid.uuid4().hex[:10]}", partitions=2, shards=1,
                    poll_interval=0.05, view_options={"linger": 0.02, "poll_interval": 30.0}
                    ).add(bank.service).create()
    async with rt:
        ns = rt.namespace
        names = {"events", "balances", "owners", "deposits"}
        actors = {n: ray.get_actor(f"talix:{rt.app_name}:view:{n}", namespace=ns) for n in names}
        for i in range(4):
            await rt.run(bank.open_account, f"r{i}", bank.Open(owner="ray"))
        last = await rt.run(bank.deposit, "r1", bank.Deposit(amount=Decimal("1.50")))
        started = time.monotonic()
        await rt.views.wait_for(last, timeout=60)
        assert time.monotonic() - started < 10  # the shard's hint woke the runners (no 30s poll)
        status = {s["view"]: s for s in await rt.views.status()}
        assert set(status) == names and all(s["status"] == "running" for s in status.values())
        pid = status["deposits"]["pid"]
        ray.kill(actors["deposits"], no_restart=False)  # a crash: Ray restarts it
        for i in range(4):
            last = await rt.run(bank.deposit, f"r{i}", bank.Deposit(amount=Decimal(1)))
        await rt.views.wait_for(last, "deposits", "balances", timeout=90)
        again = {s["view"]: s for s in await rt.views.status()}
        assert again["deposits"]["pid"] != pid and again["deposits"]["status"] == "running"
        facts = rt.views.open("deposits").to_arrow().to_pylist()
        assert len(facts) == 5 == len({(f["account_id"], f["version"]) for f in facts})
        balance = {r["account_id"]: r["balance"]
                   for r in rt.views.open("balances").to_arrow().to_pylist()}
        assert balance == {"r0": Decimal(1), "r1": Decimal("2.50"), "r2": Decimal(1),
                           "r3": Decimal(1)}
    left = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
            if a["namespace"] == ns and a["name"].startswith(f"talix:{rt.app_name}:")]
    assert left == []


async def test_settle_recreates_a_dispatcher_that_is_gone(ray_session, s3_server):
    """Killed for good (no_restart): settle starts it again and waits for the work."""
    import ray

    from talix_ray.runtime.ray import RayRuntime
    from talix_ray.settings import Settings

    from . import domain

    settings = Settings(store=f"s3://{s3_server.bucket}/gone-{uuid.uuid4().hex[:8]}",
                        s3_endpoint=s3_server.endpoint,
                        s3_access_key=s3_server.store_options()["access_key"],
                        s3_secret_key=s3_server.store_options()["secret_key"])
    rt = RayRuntime(settings=settings, app=f"gone{uuid.uuid4().hex[:6]}", partitions=2,
                    shards=1, poll_interval=0.05, views=False).add(domain.service)
    async with rt.create():
        dispatcher = ray.get_actor(rt.spec.dispatcher_name, namespace=rt.namespace)
        ray.kill(dispatcher, no_restart=True)
        for i in range(6):
            await rt.run(domain.add, f"g{i % 2}", domain.Add(amount=1))
        await rt.settle(60)
        entries = [e for i in range(2)
                   for e in (await rt.load_state(domain.ledger, f"g{i}")) or []]
        assert len(entries) == 6


async def test_stopping_logs_what_it_could_not_stop(ray_session, caplog):
    """RayRuntime._stop asks each actor to stop: one that is not there is skipped quietly,
    one that fails or hangs is named in a warning (and killed next), never silently."""
    import ray

    from talix_ray.runtime.ray.runtime import stop_actor

    @ray.remote(num_cpus=0)
    class Stubborn:
        def refuse(self) -> None:
            raise RuntimeError("refuses to stop")

        async def hang(self) -> None:
            await asyncio.sleep(60)

        def stop(self) -> None:
            return None

    ns = f"stop-{uuid.uuid4().hex[:8]}"
    name = "talix:stubborn:dispatcher"
    actor = Stubborn.options(name=name, namespace=ns, lifetime="detached").remote()
    try:
        caplog.set_level("DEBUG", logger="talix.ray")
        assert await stop_actor(name, ns, "stop", 30)
        assert not await stop_actor("talix:stubborn:nobody", ns, "stop", 30)
        assert not [r for r in caplog.records if r.levelname == "WARNING"]
        assert not await stop_actor(name, ns, "refuse", 30)
        assert not await stop_actor(name, ns, "hang", 0.5)
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 2, warnings
        assert f"actor {name} failed to refuse" in warnings[0]
        assert "refuses to stop" in warnings[0]
        assert f"actor {name} did not hang within 0.5s" in warnings[1]
    finally:
        ray.kill(actor, no_restart=True)


async def test_a_stopped_ray_runtime_keeps_its_files_and_starts_again(ray_runtime):
    """The driver's store connection serves the files and the log: stopping (which closes
    the log) leaves the files readable, and the same runtime starts again on a working store."""
    from talix_ray import FileStorage

    rt = ray_runtime(dispatch=False)
    files = rt.get(FileStorage)
    async with rt:
        key = await files.put(b"kept", "text/plain")
        await rt.run(book, "s1", Book(source="a", amount=1))
    assert await files.get(key) == b"kept"
    async with rt:
        r = await rt.run(book, "s1", Book(source="b", amount=2))
        assert r.version == 2
