"""The HTTP API on Ray Serve: real Serve replicas joining RayRuntime shard actors, over real
HTTP on loopback, with the log on the embedded S3 server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from talix_ray.serve import hash_key, serve_deployment

from .http_support import ADMIN_KEY, AUDIENCE, ISSUER, JWT_SECRET, READER_KEY, token

ROOT = Path(__file__).parent.parent
ADMIN = {"X-API-Key": ADMIN_KEY}


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
    import ray

    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["name"].startswith(f"talix:{app}:"):
            ray.kill(ray.get_actor(entry["name"], namespace=entry["namespace"]),
                     no_restart=True)


@pytest.fixture(scope="module")
def notes_app(serve_session, s3_server):
    """The notes service deployed on Serve; yields (base URL, app name)."""
    from ray import serve

    app = f"notes{uuid.uuid4().hex[:6]}"
    env = app_env(s3_server, app)
    serve.run(serve_deployment("tests.http_domain:build_ray_runtime", name="notes",
                               runtime_env={"env_vars": env}),
              name=app, route_prefix=f"/{app}")
    base = f"{serve_session}/{app}"
    yield base, app
    serve.delete(app)
    kill_app_actors(app)


@pytest.fixture
def client(notes_app):
    with httpx.Client(base_url=notes_app[0], timeout=60) as c:
        yield c


def test_routes_auth_and_errors_on_serve(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    spec = client.get("/openapi.json").json()
    assert "/notes/{note_id}/archive" in spec["paths"]
    assert client.get("/docs").status_code == 200
    nid = f"n-{uuid.uuid4().hex[:8]}"
    assert client.post("/notes", json={"note_id": nid, "text": "a"}).status_code == 401
    assert client.post("/notes", json={"note_id": nid, "text": "a"},
                       headers={"Authorization": f"Bearer {token(expires_in=-120)}"}
                       ).status_code == 401
    assert client.get(f"/notes/{nid}", headers=ADMIN).status_code == 404  # nothing written
    r = client.post("/notes", json={"note_id": nid, "text": "a"},
                    headers={"Authorization": f"Bearer {token('carol')}"})
    assert r.status_code == 200 and r.json()["by"] == "jwt:carol"
    for i in range(2, 5):
        r = client.put(f"/notes/{nid}", json={"text": f"v{i}"}, headers=ADMIN)
        assert r.headers["ETag"] == f'"{i}"'
        assert client.get(f"/notes/{nid}", headers={"X-API-Key": READER_KEY}).json()["text"] \
            == f"v{i}"
    r = client.post(f"/notes/{nid}/archive", json={"reason": "x"},
                    headers={"X-API-Key": READER_KEY})
    assert r.status_code == 403
    r = client.post("/boom", json={}, headers=ADMIN)
    assert r.status_code == 500 and "s3cr3t" not in r.text and "error_id" in r.json()
    r = client.post("/slow", json={"seconds": 20}, headers=ADMIN)
    assert r.status_code == 504


def test_one_effect_for_concurrent_requests_with_one_key(notes_app):
    base, _ = notes_app
    nid = f"c-{uuid.uuid4().hex[:8]}"

    async def go():
        async with httpx.AsyncClient(base_url=base, timeout=60) as c:
            await c.post("/notes", json={"note_id": nid, "text": "a"}, headers=ADMIN)
            rs = await asyncio.gather(*(c.put(f"/notes/{nid}", json={"text": "b"},
                                              headers={"Idempotency-Key": "one", **ADMIN})
                                        for _ in range(16)))
            again = await c.put(f"/notes/{nid}", json={"text": "b"},
                                headers={"Idempotency-Key": "one", **ADMIN})
            state = await c.get(f"/notes/{nid}", headers=ADMIN)
            return rs, again, state.json()

    rs, again, state = asyncio.run(go())
    assert {r.status_code for r in rs} == {200} and {r.json()["version"] for r in rs} == {2}
    assert again.headers["Idempotent-Replayed"] == "true"
    assert state["edits"] == 2


def test_requests_survive_a_shard_actor_killed_mid_stream(notes_app):
    import ray

    base, app = notes_app
    nid = f"k-{uuid.uuid4().hex[:8]}"
    shards = [ray.get_actor(e["name"], namespace=e["namespace"])
              for e in ray.util.list_named_actors(all_namespaces=True)
              if e["name"].startswith(f"talix:{app}:shard:")]
    assert shards

    async def go():
        async with httpx.AsyncClient(base_url=base, timeout=120) as c:
            await c.post("/notes", json={"note_id": nid, "text": "0"}, headers=ADMIN)
            statuses = []
            for i in range(1, 31):
                if i == 10:
                    for h in shards:  # restartable: Ray brings them back
                        ray.kill(h, no_restart=False)
                r = await c.put(f"/notes/{nid}", json={"text": str(i)},
                                headers={"Idempotency-Key": f"w{i}", **ADMIN})
                statuses.append(r.status_code)
            state = (await c.get(f"/notes/{nid}", headers=ADMIN)).json()
            return statuses, state

    statuses, state = asyncio.run(go())
    assert statuses == [200] * 30
    assert state["edits"] == 31 and state["text"] == "30"  # each write applied exactly once


def test_schemathesis_finds_no_server_error_and_no_schema_violation(notes_app, tmp_path):
    base, _ = notes_app
    cmd = [str(Path(sys.executable).parent / "schemathesis"), "run", f"{base}/openapi.json",
           "-H", f"X-API-Key: {ADMIN_KEY}", "--checks",
           "not_a_server_error,status_code_conformance,content_type_conformance,"
           "response_headers_conformance,response_schema_conformance,missing_required_header,"
           "unsupported_method,ignored_auth",
           "--exclude-operation-id", "boom", "--exclude-operation-id", "slow",
           "--max-examples", "25", "--workers", "1", "--seed", "1",
           "--phases", "examples,coverage,fuzzing", "--request-timeout", "30"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-4000:]
    assert "passed" in out.stdout


def test_serve_build_gives_a_valid_config(tmp_path):
    from ray.serve.schema import ServeDeploySchema

    target = tmp_path / "serve.yaml"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "TALIX_SERVE_NUM_REPLICAS": "2",
           "TALIX_SERVE_MAX_ONGOING_REQUESTS": "64"}
    subprocess.run([str(Path(sys.executable).parent / "serve"), "build", "serve_app:app",
                    "--app-dir", str(ROOT), "-o", str(target)], check=True, env=env,
                   cwd=tmp_path, timeout=120, capture_output=True)
    config = ServeDeploySchema.model_validate(yaml.safe_load(target.read_text()))
    app = config.applications[0]
    assert app.import_path == "serve_app:app"
    deployment = app.deployments[0]
    assert deployment.name == "talix" and deployment.num_replicas == 2
    assert deployment.max_ongoing_requests == 64
    assert deployment.ray_actor_options.num_cpus == 0


def test_the_example_app_on_serve(serve_session, s3_server):
    """`serve_app:app` itself: the example's routes over Serve, authenticated."""
    from ray import serve
    from ray.serve import Application

    import serve_app

    assert isinstance(serve_app.app, Application)
    app = f"example{uuid.uuid4().hex[:6]}"
    env = app_env(s3_server, app)
    serve.run(serve_deployment("services.app:build_ray_runtime", name="example",
                               runtime_env={"env_vars": env}),
              name=app, route_prefix=f"/{app}")
    try:
        with httpx.Client(base_url=f"{serve_session}/{app}", timeout=60) as c:
            ops = {op["operationId"] for item in c.get("/openapi.json").json()["paths"].values()
                   for op in item.values()}
            assert {"upload_document_from_url", "get_document", "get_expense"} <= ops
            assert c.get("/documents/nope").status_code == 401
            assert c.get("/documents/nope", headers=ADMIN).status_code == 404
            assert c.get("/expenses/nope", headers=ADMIN).status_code == 404
    finally:
        serve.delete(app)
        kill_app_actors(app)
