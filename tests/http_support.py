"""Serving an app over real HTTP on loopback for tests, and credentials to call it."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import uvicorn

from talix_ray.serve import ApiKey, HttpSettings, hash_key

ADMIN_KEY = "tlx_admin-test-key-0123456789"
READER_KEY = "tlx_reader-test-key-0123456789"
JWT_SECRET = "a-test-secret-that-is-long-enough-for-hs256!"
AUDIENCE = "talix-tests"
ISSUER = "https://issuer.test"


def settings(**kw: Any) -> HttpSettings:
    """HTTP settings with two API keys (one with every scope) and an HS256 JWT secret."""
    base: dict[str, Any] = {
        "api_keys": [ApiKey(name="admin", hash=hash_key(ADMIN_KEY), scopes=["*"]),
                     ApiKey(name="reader", hash=hash_key(READER_KEY), scopes=[])],
        "jwt_secret": JWT_SECRET, "jwt_audience": AUDIENCE, "jwt_issuer": ISSUER,
        "jwt_leeway": 0}
    base.update(kw)
    return HttpSettings(_env_file=None, **base)


def token(sub: str = "user-1", scopes: str = "", *, expires_in: float = 300,
          audience: str = AUDIENCE, issuer: str = ISSUER, key: str = JWT_SECRET,
          algorithm: str = "HS256", **claims: Any) -> str:
    """A JWT for the test settings (change any part to make it invalid)."""
    now = datetime.now(UTC)
    payload = {"sub": sub, "scope": scopes, "aud": audience, "iss": issuer,
               "iat": now, "exp": now + timedelta(seconds=expires_in), **claims}
    return jwt.encode(payload, key, algorithm=algorithm)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free loopback port in a thread; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            lifespan="on", loop="asyncio")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def run_on(loop: asyncio.AbstractEventLoop, coro: Any, timeout: float = 30) -> Any:
    """Run a coroutine on the server's loop (to inspect its runtime) from the test thread."""
    return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)


def app_env(s3_server, app: str) -> dict[str, str]:
    """What a replica needs in its environment: store, credentials, HTTP settings."""
    opts = s3_server.store_options()
    return {
        "TALIX_STORE": f"s3://{s3_server.bucket}/serve-{uuid.uuid4().hex[:10]}",
        "TALIX_APP": app, "TALIX_PARTITIONS": "2",
        "TALIX_S3_ENDPOINT": str(opts["endpoint_url"]), "TALIX_S3_REGION": "us-east-1",
        "TALIX_S3_ACCESS_KEY": str(opts["access_key"]),
        "TALIX_S3_SECRET_KEY": opts["secret_key"].get_secret_value(),
        "TALIX_API_KEYS": json.dumps([
            {"name": "admin", "hash": hash_key(ADMIN_KEY), "scopes": ["*"]},
            {"name": "reader", "hash": hash_key(READER_KEY), "scopes": []}]),
        "TALIX_JWT_SECRET": JWT_SECRET, "TALIX_JWT_AUDIENCE": AUDIENCE,
        "TALIX_JWT_ISSUER": ISSUER, "TALIX_HTTP_TIMEOUT": "5",
    }


def kill_app_actors(app: str) -> None:
    """Kill the named actors of the application `app` (replicas leave them running)."""
    import ray

    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["name"].startswith(f"talix:{app}:"):
            ray.kill(ray.get_actor(entry["name"], namespace=entry["namespace"]),
                     no_restart=True)
