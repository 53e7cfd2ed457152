"""The generated HTTP API over real HTTP (uvicorn on loopback, the LocalRuntime on a file://
log): routes, OpenAPI, auth, problem+json errors, limits, idempotency, read-your-writes."""

from __future__ import annotations

import asyncio
import logging
import socket

import httpx
import pytest
from pydantic import BaseModel

from talix_ray import ConfigurationError, LocalRuntime, Service, action, http
from talix_ray.journal import ObjectStoreJournal
from talix_ray.objectstore import LocalObjectStore
from talix_ray.serve import create_app

from . import http_domain
from .http_support import ADMIN_KEY, READER_KEY, serving, settings, token
from .http_support import AUDIENCE as AUDIENCE_
from .http_support import ISSUER as ISSUER_

ADMIN = {"X-API-Key": ADMIN_KEY}
READER = {"X-API-Key": READER_KEY}


def commits(root) -> list:
    """Every commit in the log at ``root`` (read by a read-only journal of its own)."""

    async def read() -> list:
        j = ObjectStoreJournal(LocalObjectStore(root), owned=[])
        await j.open()
        out = []
        for p in range(j.partitions):
            out += [c for s in await j.read_segments(p, 0, 10_000) for c in s.commits]
        await j.close()
        return out

    return asyncio.run(read())


@pytest.fixture
def server(tmp_path):
    """The notes service on uvicorn; yields (base URL, log folder)."""
    root = tmp_path / "log"
    rt = LocalRuntime(ObjectStoreJournal(LocalObjectStore(root)), poll_interval=0.05)
    app = create_app(rt.add(http_domain.service), settings(http_timeout=2,
                                                           http_max_body=4096,
                                                           http_max_upload=64 * 1024))
    with serving(app) as base:
        yield base, root


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server[0], timeout=30) as c:
        yield c


def user_commits(root) -> list:
    return [c for c in commits(root) if not c.store.startswith("talix-")]


def test_routes_and_openapi(client):
    spec = client.get("/openapi.json").json()
    ops = {op["operationId"]: (path, method, op) for path, item in spec["paths"].items()
           for method, op in item.items()}
    assert {"create_note", "edit_note", "archive_note", "get_note", "search", "ping",
            "upload", "healthz"} <= set(ops)
    path, method, op = ops["create_note"]
    assert (path, method) == ("/notes", "post")
    assert op["tags"] == ["notes"] and op["summary"] == "Create a note."
    assert "409" in op["description"] or op["description"].startswith("Fails")
    assert op["security"] == [{"ApiKey": []}, {"Bearer": []}]
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/Written")
    assert "application/problem+json" in op["responses"]["422"]["content"]
    assert any(p["name"] == "Idempotency-Key" for p in op["parameters"])
    path, method, op = ops["archive_note"]
    assert op["x-talix-scopes"] == ["notes:archive"] and "204" in op["responses"]
    assert [p["in"] for p in op["parameters"] if p["name"] == "note_id"] == ["path"]
    body_ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = spec["components"]["schemas"][body_ref.rsplit("/", 1)[1]]
    assert set(body["properties"]) == {"reason"}  # the path parameter is not in the body
    path, method, op = ops["search"]
    assert {p["name"]: p["in"] for p in op["parameters"]} == {"prefix": "query",
                                                               "limit": "query"}
    assert ops["ping"][2]["security"] == [] and ops["healthz"][2]["security"] == []
    upload = ops["upload"][2]["requestBody"]["content"]
    assert list(upload) == ["multipart/form-data"]
    assert "Problem" in spec["components"]["schemas"]
    assert client.get("/docs").status_code == 200
    assert client.get("/healthz").json() == {"status": "ok"}


def test_commands_queries_and_read_your_writes(client):
    r = client.post("/notes", json={"note_id": "n1", "text": "hello"}, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json() == {"note_id": "n1", "version": 1, "by": "api_key:admin"}
    assert r.headers["ETag"] == '"1"' and r.headers["X-Talix-Versions"] == "notes/n1=1"
    for i in range(2, 6):  # a write, then a read right after: always the new version
        r = client.put("/notes/n1", json={"text": f"v{i}"}, headers=ADMIN)
        assert r.headers["ETag"] == f'"{i}"'
        assert client.get("/notes/n1", headers=READER).json() == {
            "text": f"v{i}", "archived": False, "edits": i}
    r = client.get("/search", params={"prefix": "n", "limit": 5}, headers=READER)
    assert r.json() == {"prefix": "n", "limit": 5}
    assert client.get("/ping").json() == {"pong": True}  # public
    r = client.post("/notes/n1/archive", json={"reason": "done"}, headers=ADMIN)
    assert r.status_code == 204 and r.content == b""
    r = client.post("/notes/n1/archive", json={"reason": "again"}, headers=ADMIN)
    assert r.status_code == 400 and r.json()["detail"] == "archived already"


def test_the_principal_is_in_the_events_metadata(server, client):
    client.post("/notes", json={"note_id": "m1", "text": "x"},
                headers={"Authorization": f"Bearer {token('alice')}"})
    client.put("/notes/m1", json={"text": "y"}, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    metas = [e.metadata for c in user_commits(server[1]) for e in c.events]
    assert metas == [{"principal": "jwt:alice"}, {"principal": "api_key:admin"}]


@pytest.mark.parametrize("headers, challenge", [
    ({}, 'Bearer realm="talix"'),
    ({"X-API-Key": "wrong"}, 'error="invalid_token"'),
    ({"Authorization": "Bearer wrong-key"}, 'error="invalid_token"'),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, 'error="invalid_request"'),
    ({"Authorization": f"Bearer {token(expires_in=-5)}"}, 'error="invalid_token"'),
    ({"Authorization": f"Bearer {token(audience='someone-else')}"}, 'error="invalid_token"'),
    ({"Authorization": f"Bearer {token(issuer='https://evil.test')}"}, 'error="invalid_token"'),
    ({"Authorization": f"Bearer {token(key='another-secret-of-sufficient-length!!')}"},
     'error="invalid_token"'),
    ({"Authorization": "Bearer " + token(algorithm="none", key=None)},
     'error="invalid_token"'),
])
def test_bad_credentials_are_401_and_write_nothing(server, client, headers, challenge):
    r = client.post("/notes", json={"note_id": "x1", "text": "t"}, headers=headers)
    assert r.status_code == 401, r.text
    assert challenge in r.headers["WWW-Authenticate"]
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 401
    assert client.get("/notes/x1", headers=ADMIN).status_code == 404
    assert user_commits(server[1]) == []


def test_a_token_without_exp_is_refused(client):
    import jwt as pyjwt

    raw = pyjwt.encode({"sub": "u", "aud": "talix-tests", "iss": "https://issuer.test"},
                       "a-test-secret-that-is-long-enough-for-hs256!", algorithm="HS256")
    r = client.get("/notes/a", headers={"Authorization": f"Bearer {raw}"})
    assert r.status_code == 401


def test_scopes_are_403_and_write_nothing(server, client):
    client.post("/notes", json={"note_id": "s1", "text": "t"}, headers=ADMIN)
    before = len(user_commits(server[1]))
    for headers in (READER, {"Authorization": f"Bearer {token(scopes='notes:read')}"}):
        r = client.post("/notes/s1/archive", json={"reason": "x"}, headers=headers)
        assert r.status_code == 403 and 'insufficient_scope' in r.headers["WWW-Authenticate"]
        assert r.json()["detail"] == "missing scope(s): notes:archive"
    ok = client.post("/notes/s1/archive", json={"reason": "x"},
                     headers={"Authorization": f"Bearer {token(scopes='notes:archive')}"})
    assert ok.status_code == 204
    assert len(user_commits(server[1])) == before + 1
    assert client.post("/forbidden", json={}, headers=ADMIN).status_code == 403


def test_validation_errors_name_fields_and_never_echo_values(client):
    secret = "Sup3r-Secret-Value-1234"
    r = client.post("/notes", json={"note_id": secret + "!!", "text": ""}, headers=ADMIN)
    assert r.status_code == 422
    body = r.json()
    assert r.headers["content-type"] == "application/problem+json"
    assert {e["field"] for e in body["errors"]} == {"body.note_id", "body.text"}
    assert secret not in r.text
    r = client.post("/notes", content=b'{"note_id": ', headers={**ADMIN,
                                                                "content-type": "application/json"})
    assert r.status_code == 422 and r.json()["errors"][0]["type"] == "json_invalid"
    r = client.get("/search", params={"limit": "lots"}, headers=READER)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "query.limit"
    r = client.get("/notes/BAD ID", headers=READER)
    assert r.status_code == 422 and "BAD ID" not in r.text


def test_status_codes_as_problems(client):
    assert client.get("/nowhere").status_code == 404
    r = client.delete("/notes", headers=ADMIN)
    assert r.status_code == 405 and r.headers["content-type"] == "application/problem+json"
    r = client.post("/notes", content=b"note_id=n", headers={
        **ADMIN, "content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415
    client.post("/notes", json={"note_id": "dup", "text": "t"}, headers=ADMIN)
    r = client.post("/notes", json={"note_id": "dup", "text": "t"}, headers=ADMIN)
    assert r.status_code == 409 and r.json()["type"] == "urn:talix:error:already_exists"
    assert client.get("/notes/none", headers=READER).status_code == 404


def test_an_unexpected_exception_is_a_generic_500_with_an_error_id(client, caplog):
    caplog.set_level(logging.ERROR, logger="talix.http")
    r = client.post("/boom", json={}, headers=ADMIN)
    assert r.status_code == 500
    body = r.json()
    assert set(body) == {"type", "title", "status", "detail", "error_id", "request_id"}
    for leak in ("RuntimeError", "s3cr3t", "/srv/app", "10.0.0.7", "Traceback", "db.py"):
        assert leak not in r.text
    assert body["error_id"] in caplog.text and "RuntimeError" in caplog.text


def test_slow_requests_are_504(client):
    r = client.post("/slow", json={"seconds": 10}, headers=ADMIN)
    assert r.status_code == 504 and "Idempotency-Key" in r.json()["detail"]


def test_body_limits_are_checked_before_reading(client, server):
    big = {"note_id": "big", "text": "x" * 5000}  # over the 4 KiB JSON limit
    r = client.post("/notes", json=big, headers=ADMIN)
    assert r.status_code == 413
    # a lying Content-Length does not get past the limit either (raw socket, streamed body)
    host, port = server[0].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as s:
        body = b'{"note_id": "big2", "text": "' + b"y" * 8000 + b'"}'
        head = (f"POST /notes HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {ADMIN_KEY}\r\n"
                "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        s.sendall(head.encode())
        for i in range(0, len(body), 1000):
            part = body[i:i + 1000]
            s.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        s.sendall(b"0\r\n\r\n")
        reply = s.recv(4096).decode()
    assert reply.startswith("HTTP/1.1 413")
    r = client.post("/files", files={"file": ("a.bin", b"z" * 70_000)}, data={"title": "t"},
                    headers=ADMIN)
    assert r.status_code == 413
    assert user_commits(server[1]) == []


def test_multipart_upload(client):
    payload = bytes(range(256)) * 10
    r = client.post("/files", files={"file": ("scan.png", payload, "image/png")},
                    data={"title": "receipt"}, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json() == {"size": 2560, "filename": "scan.png", "content_type": "image/png",
                        "title": "receipt"}
    r = client.post("/files", files={"title": (None, "no file")}, headers=ADMIN)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.file"
    r = client.post("/files", json={"title": "x"}, headers=ADMIN)
    assert r.status_code == 415


def test_idempotency_key_replays_the_recorded_response(server, client):
    client.post("/notes", json={"note_id": "i1", "text": "a"}, headers=ADMIN)
    key = {"Idempotency-Key": "edit-1", **ADMIN}
    first = client.put("/notes/i1", json={"text": "b"}, headers=key)
    again = client.put("/notes/i1", json={"text": "b"}, headers=key)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() == {"note_id": "i1", "version": 2,
                                            "by": "api_key:admin"}
    assert again.headers["Idempotent-Replayed"] == "true" and again.headers["ETag"] == '"2"'
    assert "Idempotent-Replayed" not in first.headers
    assert client.get("/notes/i1", headers=READER).json()["edits"] == 2
    r = client.put("/notes/i1", json={"text": "different"}, headers=key)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "Idempotency-Key"
    # the key belongs to its caller: another caller's same key is another request
    other = client.put("/notes/i1", json={"text": "b"},
                       headers={"Idempotency-Key": "edit-1",
                                "Authorization": f"Bearer {token('bob')}"})
    assert other.json()["version"] == 3
    # an error answer is replayed too, without running the action again
    client.post("/notes/i1/archive", json={"reason": "r"}, headers=ADMIN)
    k2 = {"Idempotency-Key": "edit-2", **ADMIN}
    assert client.put("/notes/i1", json={"text": "c"}, headers=k2).status_code == 400
    assert client.put("/notes/i1", json={"text": "c"}, headers=k2).status_code == 400
    assert [c.aggregate_id for c in user_commits(server[1])].count("i1") == 4


def test_concurrent_requests_with_one_key_have_one_effect(server):
    base, root = server

    async def go():
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            await c.post("/notes", json={"note_id": "c1", "text": "a"}, headers=ADMIN)
            rs = await asyncio.gather(*(c.put("/notes/c1", json={"text": "b"},
                                              headers={"Idempotency-Key": "same", **ADMIN})
                                        for _ in range(12)))
            return rs

    rs = asyncio.run(go())
    assert {r.status_code for r in rs} == {200}
    assert {r.json()["version"] for r in rs} == {2}
    assert [c.aggregate_id for c in user_commits(root)].count("c1") == 2


def test_idempotency_keys_expire(tmp_path):
    from talix_ray import Clock, FixedClock

    clock = FixedClock()
    rt = LocalRuntime(ObjectStoreJournal(LocalObjectStore(tmp_path / "log")))
    rt.register(Clock, clock).add(http_domain.service)
    with serving(create_app(rt, settings(idempotency_ttl=60))) as base, \
            httpx.Client(base_url=base) as c:
        c.post("/notes", json={"note_id": "e1", "text": "a"}, headers=ADMIN)
        h = {"Idempotency-Key": "k", **ADMIN}
        assert c.put("/notes/e1", json={"text": "b"}, headers=h).json()["version"] == 2
        clock.advance(seconds=59)
        assert c.put("/notes/e1", json={"text": "b"}, headers=h).json()["version"] == 2
        clock.advance(seconds=2)
        assert c.put("/notes/e1", json={"text": "b"}, headers=h).json()["version"] == 3


def test_a_bad_idempotency_key_is_422(client):
    r = client.put("/notes/k1", json={"text": "b"}, headers={"Idempotency-Key": "x" * 300,
                                                              **ADMIN})
    assert r.status_code == 422
    assert client.get("/notes/k1", headers=READER).status_code == 404


def test_no_credentials_configured_means_every_route_is_401(tmp_path):
    rt = LocalRuntime().add(http_domain.service)
    app = create_app(rt, settings(api_keys=[], jwt_secret=None))
    with serving(app) as base, httpx.Client(base_url=base) as c:
        assert c.get("/notes/a", headers=ADMIN).status_code == 401
        assert c.get("/ping").status_code == 200


class In(BaseModel):
    a: str


def test_bad_route_declarations_are_refused():
    @action(http.post("/x/{b}"))
    async def wrong_param(input: In, ctx) -> None: ...

    with pytest.raises(ConfigurationError, match=r"path parameter\(s\) \['b'\]"):
        create_app(LocalRuntime().add(Service("bad", actions=[wrong_param])))

    @action(http.get("/ping"))
    async def clash(input: In, ctx) -> None: ...

    with pytest.raises(ConfigurationError, match="declared by both"):
        create_app(LocalRuntime().add(http_domain.service, Service("other", actions=[clash])))
    with pytest.raises(ConfigurationError, match="public route cannot require scopes"):
        action(http.get("/p"), public=True, scopes=["a"])
    with pytest.raises(ConfigurationError, match="invalid scope"):
        action(http.get("/p"), scopes=["has space"])


def test_request_ids_are_echoed_or_made(client):
    r = client.get("/notes/zz", headers={**READER, "X-Request-Id": "abc-123"})
    assert r.headers["X-Request-Id"] == "abc-123" and r.json()["request_id"] == "abc-123"
    r = client.get("/notes/zz", headers={**READER, "X-Request-Id": "bad id; drop"})
    assert r.headers["X-Request-Id"] != "bad id; drop"



def test_talix_serve_local_serves_over_http(tmp_path):
    """The CLI: `talix serve --local` on a file:// store, then requests, then SIGTERM."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from talix_ray.serve import hash_key

    from .http_support import free_port

    root = Path(__file__).parent.parent
    port = free_port()
    env = {**os.environ, "TALIX_STORE": f"file://{tmp_path / 'log'}",
           "TALIX_API_KEYS": json.dumps([{"name": "cli", "hash": hash_key("cli-key"),
                                          "scopes": []}])}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "talix"), "serve", "--local",
                             "--app", "tests.http_domain:build_local_runtime",
                             "--port", str(port)], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(0.1)
        h = {"X-API-Key": "cli-key"}
        assert httpx.post(f"{base}/notes", json={"note_id": "cli", "text": "x"}).status_code \
            == 401
        r = httpx.post(f"{base}/notes", json={"note_id": "cli", "text": "x"}, headers=h)
        assert r.status_code == 200 and r.json()["by"] == "api_key:cli"
        assert httpx.get(f"{base}/notes/cli", headers=h).json()["text"] == "x"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert [c.aggregate_id for c in user_commits(tmp_path / "log")] == ["cli"]


def test_rs256_es256_and_jwks_tokens(tmp_path):
    import json

    import jwt as pyjwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from .http_support import settings as make_settings
    from .http_support import token as make_token

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())

    def pem(key) -> str:
        return key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def signer(key) -> str:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()

    rt = LocalRuntime().add(http_domain.service)
    s = make_settings(jwt_secret=None, jwt_public_key=pem(rsa_key))
    with serving(create_app(rt, s)) as base, httpx.Client(base_url=base) as c:
        good = make_token("rsa-user", key=signer(rsa_key), algorithm="RS256")
        assert c.get("/search", headers={"Authorization": f"Bearer {good}"}).status_code == 200
        # algorithm confusion: an HS256 token keyed with the public key is refused
        forged = pyjwt.encode({"sub": "x", "exp": 4_000_000_000, "aud": AUDIENCE_,
                               "iss": ISSUER_}, "not-the-key-but-long-enough-for-hmac-256!!",
                              algorithm="HS256")
        assert c.get("/search", headers={"Authorization": f"Bearer {forged}"}).status_code \
            == 401
        other = make_token("x", key=signer(rsa.generate_private_key(
            public_exponent=65537, key_size=2048)), algorithm="RS256")
        assert c.get("/search", headers={"Authorization": f"Bearer {other}"}).status_code \
            == 401

    jwk = json.loads(pyjwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "ES256", "use": "sig"}]}))
    rt = LocalRuntime().add(http_domain.service)
    s = make_settings(jwt_secret=None, jwt_jwks_file=jwks)
    with serving(create_app(rt, s)) as base, httpx.Client(base_url=base) as c:
        good = pyjwt.encode({"sub": "ec-user", "exp": 4_000_000_000, "aud": AUDIENCE_,
                             "iss": ISSUER_}, signer(ec_key), algorithm="ES256",
                            headers={"kid": "k1"})
        r = c.post("/notes", json={"note_id": "jw", "text": "t"},
                   headers={"Authorization": f"Bearer {good}"})
        assert r.status_code == 200 and r.json()["by"] == "jwt:ec-user"
        wrong_kid = pyjwt.encode({"sub": "ec-user", "exp": 4_000_000_000, "aud": AUDIENCE_,
                                  "iss": ISSUER_}, signer(ec_key), algorithm="ES256",
                                 headers={"kid": "k2"})
        assert c.get("/search", headers={"Authorization": f"Bearer {wrong_kid}"}
                     ).status_code == 401


def test_the_jwt_secret_is_redacted_once_the_server_knows_it():
    """A traceback kept in a dead letter or a log line never shows the HMAC secret."""
    import secrets as random

    from pydantic import SecretStr

    from talix_ray.secrets import redact
    from talix_ray.serve.auth import Authenticator

    secret = random.token_urlsafe(40)
    assert secret in redact(f"failed with {secret}")  # unknown so far
    Authenticator(settings(jwt_secret=SecretStr(secret)))
    assert secret not in redact(f"failed with {secret}")
