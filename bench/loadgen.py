"""A small, fast HTTP/1.1 load generator: keep-alive connections on raw asyncio sockets,
several processes (``python -m bench.loadgen …`` prints one JSON line per process).

httpx tops out near 180 requests/s at concurrency 32 on these machines, which would make
the client the bottleneck; a pre-built request and a minimal response parser let one
process drive several thousand requests per second. Every request is counted: its status,
and its latency from the first byte written to the last byte read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).parent.parent


def build_request(method: str, url: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    """The bytes of one request (sent again and again on a keep-alive connection)."""
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    i = lower.find(b"content-length:")
    if i >= 0:
        j = lower.find(b"\r\n", i)
        n = int(lower[i + 15:j])
        if n:
            await reader.readexactly(n)
    elif b"transfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def _connection(host: str, port: int, request: bytes, deadline: float,
                      latencies: list[float], statuses: dict[int, int],
                      errors: list[str]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            writer.write(request)
            try:
                status = await _read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                errors.append(type(exc).__name__)
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            latencies.append(time.perf_counter() - t)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def run(url: str, request: bytes, connections: int, duration: float) -> dict[str, object]:
    """Drive ``connections`` keep-alive connections for ``duration`` seconds."""
    parts = urlsplit(url)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors: list[str] = []
    start = time.perf_counter()
    deadline = start + duration
    await asyncio.gather(*(_connection(parts.hostname or "127.0.0.1", parts.port or 80,
                                       request, deadline, latencies, statuses, errors)
                           for _ in range(connections)))
    elapsed = time.perf_counter() - start
    return {"requests": len(latencies), "seconds": elapsed, "statuses": statuses,
            "errors": len(errors), "latencies": latencies}


def load(method: str, url: str, headers: dict[str, str], body: bytes, *, concurrency: int,
         processes: int, duration: float) -> dict[str, object]:
    """Run ``processes`` generator processes sharing ``concurrency`` connections; merged."""
    per = [concurrency // processes + (1 if i < concurrency % processes else 0)
           for i in range(processes)]
    spec = json.dumps({"method": method, "url": url, "headers": headers,
                       "body": body.decode("latin-1"), "duration": duration})
    procs = [subprocess.Popen([sys.executable, "-m", "bench.loadgen", "--spec", spec,
                               "--connections", str(n)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True) for n in per if n]
    outs = [json.loads(p.communicate(timeout=duration + 120)[0]) for p in procs]
    latencies = sorted(x for o in outs for x in o["latencies"])
    statuses: dict[str, int] = {}
    for o in outs:
        for k, v in o["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    requests = sum(o["requests"] for o in outs)
    seconds = max(o["seconds"] for o in outs)
    return {"requests": requests, "rps": requests / seconds, "statuses": statuses,
            "errors": sum(o["errors"] for o in outs),
            "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else None,
            "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else None}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--spec", required=True)
    p.add_argument("--connections", type=int, required=True)
    args = p.parse_args()
    spec = json.loads(args.spec)
    request = build_request(spec["method"], spec["url"], spec["headers"],
                            spec["body"].encode("latin-1"))
    out = asyncio.run(run(spec["url"], request, args.connections, spec["duration"]))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
