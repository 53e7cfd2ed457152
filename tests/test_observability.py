"""Metrics (prometheus_client on the LocalRuntime: the names Ray's endpoint shows, see
test_deploy.py for Ray) counting after a workload, and JSON logs carrying app, aggregate,
command, event and request ids."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import uuid

import httpx
import pytest
from pydantic import BaseModel

from talix_ray import DomainError, EventStore, EventType, LocalRuntime, Service
from talix_ray.journal import open_journal
from talix_ray.observability import logs, metrics
from talix_ray.serve import create_app
from talix_ray.settings import Settings

from . import http_domain
from .domain import Add, Limit, add, add_below, counters, ledger, mirror_to_ledger
from .http_support import serving
from .http_support import settings as http_settings


def value(name: str, **labels: str) -> float:
    """The sum of this process's series ``name`` with these labels (0 if none)."""
    total = 0.0
    for line in metrics.exposition().decode().splitlines():
        m = re.match(r"(\w+)\{(.*)\} (\S+)$", line)
        if m and m.group(1) == name:
            found = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(m.group(3))
    return total


async def test_metrics_count_a_workload(tmp_path):
    app = f"m{uuid.uuid4().hex[:8]}"
    settings = Settings(store=f"file://{tmp_path}/log", app=app, partitions=1)
    rt = LocalRuntime.from_settings(settings, poll_interval=0.05).add(
        Service("counting", stores=[counters, ledger], actions=[mirror_to_ledger])).create()
    async with rt:
        for i in range(3):
            await rt.run(add, f"c{i}", Add(amount=1))
        await rt.run(add, "c0", Add(amount=1), command_id="once")
        await rt.run(add, "c0", Add(amount=1), command_id="once")  # a duplicate
        with pytest.raises(DomainError):
            await rt.run(add_below, "c0", Limit(amount=5, limit=1))
        await rt.run(add, "flaky-1", Add(amount=1))  # fails twice, then succeeds
        await rt.run(add, "doomed-1", Add(amount=1))  # fails 3 times: a dead letter
        await rt.settle(30)
    assert metrics.backend() == "prometheus"
    assert value("talix_commands_total", app=app, store="counters", outcome="ok") == 6
    assert value("talix_commands_total", app=app, store="counters", outcome="duplicate") == 1
    assert value("talix_commands_total", app=app, store="counters", outcome="rejected") == 1
    assert value("talix_command_seconds_count", app=app, store="counters") == 8
    assert value("talix_commands_total", app=app, store="ledger", outcome="ok") == 5
    runs = {o: value("talix_action_runs_total", app=app, action="mirror_to_ledger", outcome=o)
            for o in ("ok", "failed", "deadlettered")}
    assert runs == {"ok": 5, "failed": 4, "deadlettered": 1}
    assert value("talix_action_retries_total", app=app, action="mirror_to_ledger") == 4
    assert value("talix_deadletters_total", app=app, action="mirror_to_ledger") == 1
    journal = open_journal(settings, read_only=True)
    await journal.open()
    written = [s for p in range(journal.partitions)
               for s in await journal.read_segments(p, 0, 1000)]
    await journal.close()
    segments = value("talix_segment_commits_count", app=app)
    assert segments == len(written)  # every segment and commit once
    assert value("talix_segment_commits_sum", app=app) == sum(len(s.commits) for s in written)
    assert value("talix_segment_bytes_sum", app=app) > 0
    assert value("talix_objectstore_requests_total", app=app, op="put",
                 kind="journal") >= segments
    assert value("talix_objectstore_requests_total", app=app, op="put",
                 kind="checkpoints") >= 1
    assert value("talix_objectstore_requests_total", app=app, op="put",
                 kind="deadletters") == 1
    assert "talix_consumer_lag_segments" in metrics.exposition().decode()

    rt2 = LocalRuntime(poll_interval=0.05).add(http_domain.service)
    with serving(create_app(rt2, http_settings())) as base, httpx.Client(base_url=base) as c:
        assert c.get("/ping").status_code == 200 and c.get("/ping").status_code == 200
        assert c.post("/notes", json={}).status_code == 401
    assert value("talix_http_requests_total", app=app, route="/ping", method="GET",
                 status="200") == 2
    assert value("talix_http_requests_total", app=app, route="/notes", method="POST",
                 status="401") == 1
    assert value("talix_http_request_seconds_count", app=app, route="/ping") == 2


def test_ray_backend_records_through_ray_util_metrics(monkeypatch):
    """Forced to the Ray backend, an instrument records through ray.util.metrics (outside a
    Ray worker Ray ignores the value, so only the binding is checked here; test_deploy.py
    reads the numbers from a cluster's Prometheus endpoint)."""
    import ray.util.metrics as ray_metrics

    made = []
    real = ray_metrics.Counter

    def counter(*args, **kw):
        made.append((args, kw))
        return real(*args, **kw)

    monkeypatch.setattr(ray_metrics, "Counter", counter)
    inst = metrics.Counter(f"talix_test_{uuid.uuid4().hex[:6]}", "a test counter", ("x",))
    metrics.use_backend("ray")
    try:
        inst.inc("a")
        inst.inc("a")
    finally:
        metrics.use_backend(None)
    assert len(made) == 1 and made[0][1]["tag_keys"] == ("app", "x")
    assert not inst.samples()  # nothing went to the prometheus_client series


class Noted(BaseModel):
    text: str


noted = EventType("NOTES:NOTED", Noted)
notes = EventStore("lognotes", [noted], lambda state, event: (state or 0) + 1)


@notes.command
def note(state: int | None, input: Noted):
    logging.getLogger("talix.test.decider").info("deciding %s", input.text)
    return noted(text=input.text)


async def test_json_logs_carry_the_context(tmp_path, monkeypatch):
    logger = logging.getLogger("talix")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setenv("TALIX_LOG_JSON", "1")
    app = f"l{uuid.uuid4().hex[:8]}"
    try:
        rt = LocalRuntime.from_settings(Settings(store=f"file://{tmp_path}/log", app=app),
                                        poll_interval=0.05).add(
            Service("counting", stores=[counters, ledger], actions=[mirror_to_ledger]),
            Service("notes", stores=[notes])).create()
        async with rt:  # starting configures the JSON logs (TALIX_LOG_JSON=1)
            await rt.run(note, "n-1", Noted(text="hello"), command_id="cmd-7")
            await rt.run(add, "flaky-2", Add(amount=1))
            await rt.settle(30)
        rt2 = LocalRuntime(poll_interval=0.05).add(http_domain.service)
        with serving(create_app(rt2, http_settings())) as base, \
                httpx.Client(base_url=base) as c:
            r = c.post("/boom", json={}, headers={"X-API-Key": "tlx_admin-test-key-0123456789",
                                                  "X-Request-Id": "req-42"})
            assert r.status_code == 500
    finally:
        logger.handlers[:], logger.propagate = saved[0], saved[1]
        logger.setLevel(saved[2])
    records = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    assert records and all({"ts", "level", "logger", "message", "app"} <= set(r)
                           for r in records)
    decided = next(r for r in records if r["logger"] == "talix.test.decider")
    assert decided["message"] == "deciding hello" and decided["app"] == app
    assert decided["aggregate_id"] == "n-1" and decided["command_id"] == "cmd-7"
    retried = next(r for r in records if r["logger"] == "talix.dispatcher")
    assert retried["level"] == "warning" and retried["aggregate_id"] == "flaky-2"
    assert retried["event_id"] == "counters:flaky-2:1" and "command_id" not in retried
    failed = next(r for r in records if r.get("request_id") == "req-42")
    assert failed["level"] == "error" and "RuntimeError" in failed["exc"]
    assert logs.current() == {"app": app}  # nothing left in the context
