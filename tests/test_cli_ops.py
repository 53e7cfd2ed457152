"""The operations commands against a seeded store: `talix status`, `streams`, `events`,
`views list`, `deadletters list` (each with --json parsed), `deploy`, and their errors (exit
code 2, one line)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import yaml

from .test_cli import talix


async def seed(store: str, partitions: int = 2) -> dict:
    """Counters c0..c4 (c1 three times), a dead letter (doomed-9), everything dispatched;
    then one segment appended behind the dispatcher's back, 5 s old."""
    from talix_ray import LocalRuntime, Service
    from talix_ray.journal import Commit, open_journal
    from talix_ray.model.events import StoredEvent
    from talix_ray.settings import Settings

    from .domain import Add, add, counters, ledger, mirror_to_ledger

    settings = Settings(store=store, partitions=partitions)
    # no timer: nothing appends after the dispatcher's last checkpoint but the late segment
    rt = LocalRuntime.from_settings(settings).add(
        Service("counting", stores=[counters, ledger], actions=[mirror_to_ledger])).create()
    rt._view_options = {"linger": 0.02}
    async with rt:
        for i in range(5):
            await rt.run(add, f"c{i}", Add(amount=i + 1))
        for n in range(2):
            await rt.run(add, "c1", Add(amount=10), command_id=f"cmd-{n}")
        last = await rt.run(add, "doomed-9", Add(amount=1))
        await rt.settle(30)
        await rt.views.wait_for(last)
    journal = open_journal(settings)
    await journal.open()
    old = time.time_ns() // 1000 - 5_000_000
    await journal.append(Commit("counters", "late", 0, (
        StoredEvent("counters", "late", 1, "COUNTERS:ADDED", {"amount": 7}, old, "cmd-late"),),
        "cmd-late"))
    await journal.close()
    return {"late_partition": journal.partition_of("counters", "late")}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    root = tmp_path_factory.mktemp("ops")
    store = f"file://{root}/events"
    info = asyncio.run(seed(store))
    return store, info


def run_json(*args: str) -> object:
    r = talix(*args, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def test_status_per_partition_consumer_and_view(seeded):
    store, info = seeded
    status = run_json("status", "--store", store)
    parts = status["partitions"]
    assert [p["partition"] for p in parts] == [0, 1]
    assert sum(p["head"] for p in parts) >= 2  # the commands' segments and the late one
    for p in parts:
        assert p["writer_epoch"] >= 1 and 0 <= p["watermark"] <= p["head"]
        assert p["unindexed"] == p["head"] - p["watermark"]
    consumers = {c["name"]: c for c in status["consumers"]}
    dispatcher = consumers["dispatcher"]
    assert dispatcher["kind"] == "consumer"
    # everything was dispatched but the segment appended behind its back, 5 s ago
    assert dispatcher["lag_segments"] == 1
    assert dispatcher["behind"] == {str(info["late_partition"]): 1}
    assert 5 <= dispatcher["lag_seconds"] < 120
    assert any(c["kind"] == "view" for c in consumers.values())
    assert status["deadletters"] == {"dispatcher": 1}

    shown = talix("status", "--store", store)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "2 partition(s)" in shown.stdout and "1 dead letter(s)" in shown.stdout
    line = next(x for x in shown.stdout.splitlines() if "dispatcher" in x)
    cells = [c.strip() for c in line.split("│")[1:-1]]
    assert cells[:3] == ["dispatcher", "consumer", "1"] and cells[4] == "1"  # lag, letters


def test_streams_pages_and_events(seeded):
    store, _ = seeded
    first = run_json("streams", "counters", "--store", store, "--limit", "3")
    assert first["ids"] == ["c0", "c1", "c2"] and first["next_page_token"]
    rest = run_json("streams", "counters", "--store", store, "--limit", "3",
                    "--page-token", first["next_page_token"])
    assert rest["ids"] == ["c3", "c4", "doomed-9"] and rest["next_page_token"]
    last = run_json("streams", "counters", "--store", store, "--limit", "3",
                    "--page-token", rest["next_page_token"])
    assert last == {"store": "counters", "ids": ["late"], "next_page_token": None}

    events = run_json("events", "counters", "c1", "--store", store)["events"]
    assert [e["version"] for e in events] == [1, 2, 3]
    assert [e["payload"]["amount"] for e in events] == [2, 10, 10]
    assert all(e["type"] == "COUNTERS:ADDED" for e in events)
    assert [e["command_id"] for e in events] == [None, "cmd-0", "cmd-1"]
    middle = run_json("events", "counters", "c1", "--store", store, "--from", "2", "--to", "2")
    assert [e["version"] for e in middle["events"]] == [2]
    table = talix("events", "counters", "c1", "--store", store)
    assert table.returncode == 0 and "3 event(s)" in table.stdout
    assert '{"amount": 10}' in table.stdout


def test_views_and_deadletters_as_json(seeded):
    store, _ = seeded
    views = run_json("views", "list", "--store", store)
    assert {v["view"] for v in views} >= {"events"}
    assert all(v["lag"] == 1 for v in views)  # the late segment: no runner since
    letters = run_json("deadletters", "list", "--store", store)
    assert [d["key"] for d in letters] == ["mirror_to_ledger@counters@doomed-9@1"]
    assert letters[0]["attempts"] == 3


@pytest.mark.parametrize("args, message", [
    (("status", "--store", "ftp://nowhere"), "memory://, file:///path or s3://"),
    (("status", "--store", "file:///nonexistent/talix-nothing-here"),
     "no talix-ray application in file:///nonexistent/talix-nothing-here"),
    (("streams", "counters", "--store", "ftp://x"), "memory://, file:///path or s3://"),
    (("streams", "counters", "--page-token", "***"), "invalid page token"),
    (("events", "counters", "nobody"), "no events for counters/nobody"),
    (("events", "counters", "c1", "--from", "3", "--to", "2"), "--to 2 is before --from 3"),
    (("views", "list", "--store", "ftp://x"), "memory://, file:///path or s3://"),
    (("deadletters", "list", "--store", "s4://x"), "memory://, file:///path or s3://"),
    (("deploy", "--store", "memory://"), "a cluster needs storage every node reaches"),
])
def test_errors_are_one_line_and_exit_2(seeded, args, message, tmp_path):
    store, _ = seeded
    if "--store" not in args:
        args = (*args, "--store", store)
    r = talix(*args, "--json")
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [x for x in (r.stdout + r.stderr).splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert "Traceback" not in r.stderr


def test_deploy_writes_a_serve_config_without_secrets(tmp_path):
    out = tmp_path / "serve.yaml"
    r = talix("deploy", "-o", str(out), "--store", "s3://bucket/app", "--replicas", "2",
              "--max-replicas", "4", "--partitions", "8",
              env={"TALIX_S3_SECRET_KEY": "very-secret", "TALIX_S3_REGION": "eu-west-1",
                   "TALIX_API_KEYS_FILE": "/etc/talix/api_keys.json"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "TALIX_S3_SECRET_KEY" in r.stdout and "very-secret" not in out.read_text()
    config = yaml.safe_load(out.read_text())
    from ray.serve.schema import ServeDeploySchema

    ServeDeploySchema.model_validate(config)  # what `serve deploy` checks first
    (application,) = config["applications"]
    assert application["import_path"] == "talix_ray.serve.entry:build"
    assert application["args"] == {"factory": "services.app:build_ray_runtime"}
    assert application["runtime_env"]["env_vars"] == {
        "TALIX_API_KEYS_FILE": "/etc/talix/api_keys.json", "TALIX_PARTITIONS": "8",
        "TALIX_S3_REGION": "eu-west-1", "TALIX_SERVE_MAX_REPLICAS": "4",
        "TALIX_SERVE_NUM_REPLICAS": "2", "TALIX_STORE": "s3://bucket/app"}
    (deployment,) = application["deployments"]
    assert deployment["autoscaling_config"] == {"min_replicas": 2, "max_replicas": 4,
                                                "target_ongoing_requests": 32}
    assert deployment["ray_actor_options"] == {"num_cpus": 0}
    assert config["proxy_location"] == "EveryNode"

    from talix_ray.serve.entry import build

    app = build(application["args"])  # what Serve's controller calls with the config's args
    assert type(app).__name__ == "Application"
    with pytest.raises(ValueError):
        build({"factory": "not a factory"})


def test_every_command_has_help():
    from typer.testing import CliRunner

    from talix_ray.cli import app

    runner = CliRunner()
    commands = [["status"], ["streams"], ["events"], ["deploy"], ["views", "list"],
                ["views", "show"], ["views", "rebuild"], ["deadletters", "list"],
                ["deadletters", "retry"], ["serve"], ["apikey", "create"], ["s3"], ["dev"],
                ["demo"]]
    for command in commands:
        r = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
        assert r.exit_code == 0, (command, r.output)
        assert "Usage:" in r.output and "_OPTION" not in r.output, (command, r.output)
    for command in (["status"], ["streams"], ["events"], ["views", "list"],
                    ["deadletters", "list"], ["deploy"]):
        assert "--json" in runner.invoke(app, [*command, "--help"],
                                         env={"COLUMNS": "200"}).output, command
