"""Benchmark: the generated HTTP API on Ray Serve vs a plain FastAPI deployment on Serve.

One Ray, one Serve instance, one run, samples interleaved:

(a) p50 of a trivial talix action route (API key, query model, response model) vs the same
    route written by hand in a plain Serve FastAPI deployment → ``serve_overhead_ratio``;
(b) p50 of a POST that runs one command vs (plain route p50 + in-process RayRuntime command
    p50) → ``command_route_ratio``;
(c) requests/s at concurrency 32 of the talix route vs the plain route, alternating rounds,
    medians and spread → ``rps_ratio``; the load generator's ceiling against a trivial
    uvicorn route is measured in the same run and reported beside it.
"""

from __future__ import annotations

import os
import sys

# this file is called http.py: keep its folder off the import path, or it hides the stdlib
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(
    os.path.abspath(__file__))]

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT))

import ray
from ray import serve

from bench._common import write_results
from bench.http_app import API_KEY, plain, service
from bench.loadgen import build_request, load
from bench.ray_domain import Bump, bump
from talix_ray.runtime.ray import RayRuntime
from talix_ray.runtime.ray.local import init_local_ray
from talix_ray.serve import hash_key, serve_deployment


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Conn:
    """A blocking keep-alive HTTP/1.1 connection for latency samples (no client overhead
    to speak of: a pre-built request, a minimal parser)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def request(self, raw: bytes) -> tuple[int, float]:
        t = time.perf_counter()
        self.sock.sendall(raw)
        while b"\r\n\r\n" not in self.buf:
            self.buf += self._recv()
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lower = head.lower()
        i = lower.find(b"content-length:")
        n = int(lower[i + 15:lower.find(b"\r\n", i)]) if i >= 0 else 0
        while len(rest) < n:
            rest += self._recv()
        self.buf = rest[n:]
        return int(head[9:12]), time.perf_counter() - t

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        return data


def p50(xs: list[float]) -> float:
    return statistics.median(xs)


def spread(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples (≈ 100 s)")
    args = ap.parse_args()
    samples = 150 if args.quick else 600
    rounds = 3 if args.quick else 5
    duration = 4.0 if args.quick else 8.0
    concurrency, processes = 32, 2

    tmp = tempfile.mkdtemp(prefix="talix-bench-http-")
    app_name = f"bench{uuid.uuid4().hex[:6]}"
    store = f"file://{tmp}/log"
    env = {"TALIX_STORE": store, "TALIX_APP": app_name, "TALIX_PARTITIONS": "2",
           "TALIX_API_KEYS": json.dumps([{"name": "bench", "hash": hash_key(API_KEY),
                                          "scopes": ["*"]}])}
    # loopback only, token authentication with a token of its own
    init_local_ray(tempfile.mkdtemp(prefix="talix-bench-ray-"), num_cpus=2,
                   include_dashboard=False, log_to_driver=False,
                   runtime_env={"env_vars": {"PYTHONPATH": str(ROOT),
                                             "RAY_USAGE_STATS_ENABLED": "0"}})
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port},
                logging_config={"enable_access_log": False, "log_level": "WARNING"})
    serve.run(serve_deployment("bench.http_app:build_runtime", name="talix",
                               runtime_env={"env_vars": env}),
              name="talix", route_prefix="/talix")
    plain_app = serve.deployment(name="plain", max_ongoing_requests=128,
                                 ray_actor_options={"num_cpus": 0})(
        serve.ingress(plain)(type("Plain", (), {})))
    serve.run(plain_app.bind(), name="plain", route_prefix="/plain")
    ceiling_port = free_port()
    ceiling = subprocess.Popen([sys.executable, "-m", "uvicorn", "bench.http_app:ceiling",
                                "--host", "127.0.0.1", "--port", str(ceiling_port),
                                "--log-level", "warning", "--no-access-log"], cwd=ROOT)

    base = f"http://127.0.0.1:{port}"
    headers = {"X-API-Key": API_KEY}
    ping_t = build_request("GET", f"{base}/talix/ping?n=7", headers)
    ping_p = build_request("GET", f"{base}/plain/ping?n=7", headers)
    body = b'{"n": 1}'

    def post(counter: str) -> bytes:
        return build_request("POST", f"{base}/talix/counters/{counter}/bump",
                             {**headers, "Content-Type": "application/json"}, body)

    runtime = RayRuntime(store, app=app_name, keep_actors=True, views=False, dispatch=False,
                         timers=False).add(service)

    async def measure() -> dict[str, object]:
        await runtime.start()
        conn = Conn(port)
        lat: dict[str, list[float]] = {"talix_ping": [], "plain_ping": [], "talix_post": [],
                                       "inproc_command": []}
        statuses: dict[str, dict[int, int]] = {k: {} for k in lat}
        # warm-up: every path, every aggregate's actor and connection
        for i in range(30):
            conn.request(ping_t)
            conn.request(ping_p)
            conn.request(post(f"w{i % 4}"))
            await runtime.run(bump, f"w{i % 4}", Bump(n=1))
        for i in range(samples):
            counter = f"c{i % 16}"
            order = [("talix_ping", ping_t), ("plain_ping", ping_p),
                     ("talix_post", post(counter)), ("inproc_command", None)]
            order = order[i % 4:] + order[:i % 4]  # rotate who goes first
            for name, raw in order:
                if raw is None:
                    t = time.perf_counter()
                    await runtime.run(bump, counter, Bump(n=1))
                    lat[name].append(time.perf_counter() - t)
                    statuses[name][200] = statuses[name].get(200, 0) + 1
                    continue
                status, dt = conn.request(raw)
                lat[name].append(dt)
                statuses[name][status] = statuses[name].get(status, 0) + 1
        await runtime.stop()
        return {"latency_ms": {k: {"p50": 1000 * p50(v), "p90": 1000 * sorted(v)[
            int(len(v) * 0.9)], "n": len(v)} for k, v in lat.items()},
            "statuses": statuses, "raw": lat}

    latency = asyncio.run(measure())
    for name, st in latency["statuses"].items():  # type: ignore[union-attr]
        assert set(st) == {200}, f"{name}: unexpected statuses {st}"

    rps_runs: dict[str, list[dict[str, object]]] = {"talix": [], "plain": [], "ceiling": []}
    targets = {"talix": f"{base}/talix/ping?n=7", "plain": f"{base}/plain/ping?n=7",
               "ceiling": f"http://127.0.0.1:{ceiling_port}/ping"}
    for r in range(rounds):
        order = ["talix", "plain"] if r % 2 == 0 else ["plain", "talix"]
        for name in [*order, "ceiling"]:
            res = load("GET", targets[name], headers, b"", concurrency=concurrency,
                       processes=processes, duration=duration)
            bad = {k: v for k, v in res["statuses"].items() if k != "200"}  # type: ignore
            assert not bad and not res["errors"], f"{name}: {res}"
            rps_runs[name].append(res)
    ceiling.terminate()
    ceiling.wait(10)

    lm = latency["latency_ms"]  # type: ignore[index]
    serve_overhead = lm["talix_ping"]["p50"] / lm["plain_ping"]["p50"]
    command_route = lm["talix_post"]["p50"] / (lm["plain_ping"]["p50"]
                                                + lm["inproc_command"]["p50"])
    rps = {k: [float(x["rps"]) for x in v] for k, v in rps_runs.items()}  # type: ignore
    ratios = [t / p for t, p in zip(rps["talix"], rps["plain"], strict=True)]
    rps_ratio = statistics.median(ratios)
    raw = latency.pop("raw")  # type: ignore[arg-type]
    write_results("http", {
        "what": {
            "talix": "Ray Serve ingress generated by talix (auth by API key, query model, "
                     "response model), 1 replica, num_cpus=0, max_ongoing_requests=128",
            "plain": "a hand-written FastAPI route on a Serve deployment doing the same work "
                     "(API key hash check, same models), same replica options",
            "command": "POST /counters/{id}/bump runs one command in a shard actor; baseline "
                       "= plain route p50 + the p50 of the same command from an in-process "
                       "RayRuntime (driver), both on a file:// log",
            "load": f"{processes} generator processes, {concurrency} keep-alive connections, "
                    f"{duration:g} s per run, {rounds} alternating rounds; every response "
                    "counted and checked (all 200)",
            "latency": f"{samples} interleaved samples per path on one keep-alive connection",
        },
        "latency": latency,
        "latency_spread_ms": {k: spread([1000 * x for x in v]) for k, v in raw.items()},
        "rps": {k: spread(v) for k, v in rps.items()},
        "rps_ratio_per_round": ratios,
        "load_generator_ceiling_rps": spread(rps["ceiling"]),
        "runs": rps_runs,
    }, {"serve_overhead_ratio": round(serve_overhead, 3),
        "command_route_ratio": round(command_route, 3),
        "rps_ratio": round(rps_ratio, 3)})
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
