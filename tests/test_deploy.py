"""The deploy flow on one machine, through Ray's own CLI: a real two-raylet cluster
(`ray start --head`, then `ray start --address` for a second node, both on loopback with
Ray's token authentication), the embedded S3 server, `talix deploy` writing the Serve config
and `serve deploy` submitting it, then the demo's uploads over HTTP and the expenses read
back, Ray's Prometheus endpoints showing the talix metrics, and the cluster stopped.

`ray stop` matches Ray processes by name on the whole machine (it would stop other Ray
instances on a shared machine, this session's own included); the test stops its cluster the
way `ray stop` does, by SIGTERM, but only the two `ray start --block` processes it started
(each stops the Ray processes it spawned), then checks that every process of the cluster is
gone.

Ray in multi-node mode has its GCS, raylets and agents listen on every interface (they must
be reachable from other machines); token authentication guards them, checked here. The test
itself only ever connects to loopback addresses.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psutil
import pytest

from talix_ray.dev.feed import FileServer

from .http_support import free_port

ROOT = Path(__file__).parent.parent
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.timeout(300)


def wait_for(what: str, check, deadline: float, interval: float = 0.5):
    """``check()`` until it returns something truthy, or fail after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    last: object = None
    while time.monotonic() < end:
        try:
            found = check()
        except (httpx.HTTPError, OSError, ValueError, KeyError) as exc:
            found, last = None, exc
        if found:
            return found
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {deadline} s (last: {last!r})")


class Node:
    """One `ray start --block` process and the Ray processes it spawned."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen([str(BIN / "ray"), "start", "--block", *args], env=env,
                                     stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                     cwd=log.parent)

    def processes(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        return []

    def stop(self, spawned: list[psutil.Process]) -> list[psutil.Process]:
        """SIGTERM (what `ray stop` sends) to `ray start --block`, which stops what it
        spawned; returns those of ``spawned`` still alive after a grace period (then killed)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=40)
        _, alive = psutil.wait_procs(spawned, timeout=15)
        for p in alive:  # leave nothing behind, whatever the test found
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        return alive


def samples(exposition: str, name: str, **labels: str) -> list[float]:
    """The values of the series ``name`` (Ray prefixes ``ray_``) with these labels."""
    out = []
    for line in exposition.splitlines():
        m = re.match(r"(?:ray_)?(\w+)\{(.*)\} (\S+)$", line)
        if m and m.group(1) == name:
            found = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
            if all(found.get(k) == v for k, v in labels.items()):
                out.append(float(m.group(3)))
    return out


def leftovers(marker: str) -> list[str]:
    """Command lines of live processes naming ``marker``."""
    out = []
    for p in psutil.process_iter(["cmdline", "status"]):
        with contextlib.suppress(psutil.Error):
            if p.info["status"] != psutil.STATUS_ZOMBIE and marker in " ".join(
                    p.info["cmdline"] or ()):
                out.append(" ".join(p.info["cmdline"])[:200])
    return out


def dashboard_nodes(dashboard: str, token: str) -> list[dict]:
    r = httpx.get(f"{dashboard}/nodes?view=summary",
                  headers={"Authorization": f"Bearer {token}"}, timeout=5)
    r.raise_for_status()
    return [n for n in r.json()["data"]["summary"] if n["raylet"]["state"] == "ALIVE"]


def test_ray_start_cluster_talix_deploy_serve_deploy_uploads_and_expenses(s3_server, tmp_path):
    from services.documents.receipts import generate
    from talix_ray.runtime.ray.local import token_file
    from talix_ray.serve import hash_key

    token_path = token_file(tmp_path / "ray")
    token = token_path.read_text().strip()
    temp_dir = Path(f"/tmp/tlx-{uuid.uuid4().hex[:8]}")  # short: Ray's socket paths
    app = f"deploy{uuid.uuid4().hex[:6]}"
    store = f"s3://{s3_server.bucket}/{app}"
    key = "tlx_" + uuid.uuid4().hex
    keys_file = tmp_path / "api_keys.json"
    keys_file.write_text(json.dumps([{"name": "demo", "hash": hash_key(key), "scopes": []}]))
    gcs, dash, http_port = free_port(), free_port(), free_port()
    metrics_ports = [free_port(), free_port()]
    secrets = {k: v for k, v in s3_server.environment(store).items()
               if k in ("TALIX_S3_ACCESS_KEY", "TALIX_S3_SECRET_KEY")}
    base_env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp_path),
                "RAY_USAGE_STATS_ENABLED": "0",
                "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_path),
                "RAY_metrics_report_interval_ms": "1000",
                "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}  # stop without a drain wait
    # the nodes' environment: where the cluster's secrets live (never in the Serve config)
    node_env = {**base_env, **secrets}
    # two loopback addresses: Ray swaps 127.0.0.1 itself for the machine's external address
    # when nodes may join (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 keeps it, but then no second
    # node may join), not the rest of 127.0.0.0/8
    head_ip, worker_ip = "127.0.0.2", "127.0.0.3"
    common = ["--num-cpus=1", f"--temp-dir={temp_dir}", "--disable-usage-stats"]

    def agent_ports() -> list[str]:
        return [f"--dashboard-agent-listen-port={free_port()}",
                f"--dashboard-agent-grpc-port={free_port()}",
                f"--runtime-env-agent-port={free_port()}"]

    docs = list(generate(2, 1414, expense_share=1.0, formats=("pdf", "png")))
    files = FileServer(tmp_path / "files")  # what talix dev serves its receipts with
    for d in docs:
        files.add(d.name, d.content)
    nodes: list[Node] = []
    phases: dict[str, float] = {}
    started = time.monotonic()
    try:
        nodes.append(Node(["--head", f"--node-ip-address={head_ip}", f"--port={gcs}",
                           f"--dashboard-host={head_ip}",
                           f"--dashboard-port={dash}", f"--ray-client-server-port={free_port()}",
                           f"--metrics-export-port={metrics_ports[0]}", *agent_ports(),
                           *common], node_env, tmp_path / "head.log"))
        dashboard = f"http://{head_ip}:{dash}"
        wait_for("the head node", lambda: dashboard_nodes(dashboard, token), 60)
        phases = {"head": time.monotonic() - started}
        nodes.append(Node([f"--address={head_ip}:{gcs}", f"--node-ip-address={worker_ip}",
                           f"--metrics-export-port={metrics_ports[1]}", *agent_ports(),
                           *common], node_env, tmp_path / "worker.log"))
        alive = wait_for("two nodes", lambda: len(dashboard_nodes(dashboard, token)) == 2
                         and dashboard_nodes(dashboard, token), 60)
        assert {n["raylet"]["nodeManagerAddress"] for n in alive} == {head_ip, worker_ip}
        # without the token the cluster refuses (token authentication is on)
        assert httpx.get(f"{dashboard}/nodes?view=summary", timeout=5).status_code == 401

        # talix deploy: the Serve config, built from this environment and options
        config = tmp_path / "serve_config.yaml"
        deploy_env = {**base_env, "PYTHONPATH": str(ROOT), "TALIX_APP": app,
                      "TALIX_STORE": store,
                      "TALIX_PARTITIONS": "1", "TALIX_S3_ENDPOINT": s3_server.endpoint,
                      "TALIX_S3_REGION": "us-east-1", "TALIX_API_KEYS_FILE": str(keys_file),
                      "TALIX_DOWNLOAD_ALLOW": '["127.0.0.1/32"]', "TALIX_VIEW_LINGER": "0.2",
                      **secrets}
        built = subprocess.run([str(BIN / "talix"), "deploy", "-o", str(config), "--store",
                                store, "--host", "127.0.0.1", "--port", str(http_port),
                                "--head-only"], env=deploy_env, cwd=tmp_path,
                               capture_output=True, text=True, timeout=120)
        assert built.returncode == 0, built.stdout + built.stderr
        text = config.read_text()
        assert "TALIX_S3_SECRET_KEY" in built.stdout  # named as left out ...
        assert secrets["TALIX_S3_SECRET_KEY"] not in text  # ... and not in the config
        assert f"TALIX_STORE: {store}" in text and "import_path: talix_ray.serve.entry:build" \
            in text

        deployed = subprocess.run([str(BIN / "serve"), "deploy", str(config), "--address",
                                   dashboard], env=base_env, cwd=tmp_path,
                                  capture_output=True, text=True, timeout=120)
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        api = f"http://127.0.0.1:{http_port}"
        wait_for("the HTTP API", lambda: httpx.get(f"{api}/healthz", timeout=5)
                 .status_code == 200, 150, interval=1)
        ready = time.monotonic()
        phases["cluster and serve deploy"] = ready - started

        auth = {"X-API-Key": key}
        assert httpx.post(f"{api}/documents/upload-from-url", json={"url": files.url},
                          timeout=30).status_code == 401
        ids = []
        for doc in docs:
            r = httpx.post(f"{api}/documents/upload-from-url", headers=auth,
                           json={"url": f"{files.url}/{doc.name}"}, timeout=60)
            assert r.status_code == 200, r.text
            ids.append(r.json()["document_id"])

        def expense(document_id: str) -> dict | None:
            r = httpx.get(f"{api}/expenses/{document_id}", headers=auth, timeout=30)
            return r.json() if r.status_code == 200 else None

        found = {d: wait_for(f"the expense of {d}", lambda d=d: expense(d), 120) for d in ids}
        for doc, document_id in zip(docs, ids, strict=True):
            assert found[document_id]["currency"] == doc.truth.currency
            assert found[document_id]["amount"] == str(doc.truth.total)
        def expenses_view() -> list[dict] | None:
            r = httpx.get(f"{api}/expenses", headers=auth, timeout=30)
            if r.status_code != 200:
                raise ValueError(f"{r.status_code} {r.text[:300]}")
            items = r.json()["items"]
            return items if len(items) == 2 else None

        listed = wait_for("the expenses view", expenses_view, 60)
        assert {row["expense_id"] for row in listed} == set(ids)

        # talix status reads where the cluster's store stands (from S3 alone)
        status = subprocess.run([str(BIN / "talix"), "status", "--json"], env=deploy_env,
                                cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        state = json.loads(status.stdout)
        assert len(state["partitions"]) == 1 and state["partitions"][0]["head"] >= 4
        assert state["partitions"][0]["writer_epoch"] >= 1
        assert {"dispatcher"} <= {c["name"] for c in state["consumers"] if c["kind"] ==
                                  "consumer"}
        assert "expenses" in {c["name"] for c in state["consumers"] if c["kind"] == "view"}

        # the talix metrics on Ray's Prometheus endpoints (one per node)
        def scraped() -> str:
            out = "".join(httpx.get(f"http://{ip}:{p}/metrics", timeout=10).text
                          for ip, p in zip((head_ip, worker_ip), metrics_ports, strict=True))
            return out if "talix_http_requests" in out and "talix_commands" in out else ""

        exposition = wait_for("talix metrics on Ray's endpoint", scraped, 60, interval=1)
        uploads = samples(exposition, "talix_http_requests_total", app=app,
                          route="/documents/upload-from-url", status="200")
        assert sum(uploads) == 2, exposition[:3000]
        assert sum(samples(exposition, "talix_commands_total", app=app, outcome="ok")) >= 4
        assert samples(exposition, "talix_segment_commits_count", app=app)
        phases["uploads to expenses, status, metrics"] = time.monotonic() - ready
    finally:
        files.close()
        owned = [(node, node.processes()) for node in nodes]
        stopping = time.monotonic()
        left = [p for node, procs in reversed(owned) for p in node.stop(procs)]
        phases["stop"] = time.monotonic() - stopping
        print(" ".join(f"{k}: {v:.1f} s;" for k, v in phases.items()))
    assert not left, f"Ray processes left running: {left}"
    assert not leftovers(temp_dir.as_posix())
    shutil.rmtree(temp_dir, ignore_errors=True)  # Ray's logs stay only when the test fails
