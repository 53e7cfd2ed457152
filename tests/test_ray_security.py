"""A Ray that talix-ray starts: every socket on loopback, token authentication on with a token
of its own; and the S3 secret never inside what travels to Ray workers."""

from __future__ import annotations

import ipaddress
import json
import os
import stat
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import grpc
import psutil

ROOT = Path(__file__).parent.parent
GCS_METHOD = "/ray.rpc.NodeInfoGcsService/GetClusterId"


def _loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def listening_outside_loopback(root_pid: int) -> tuple[list[str], int]:
    """Listening sockets of ``root_pid`` and all its descendants (Ray's GCS, raylet, agents,
    workers) that are not on loopback, and how many listening sockets there are."""
    root = psutil.Process(root_pid)
    bad, n = [], 0
    for p in [root, *root.children(recursive=True)]:
        try:
            conns = p.net_connections(kind="inet")
        except psutil.Error:
            continue
        for c in conns:
            if c.status == psutil.CONN_LISTEN:
                n += 1
                if not _loopback(c.laddr.ip):
                    bad.append(f"{p.name()}[{p.pid}] {c.laddr.ip}:{c.laddr.port}")
    return bad, n


def gcs_call(address: str, token: str | None) -> str:
    """One read-only call to the GCS, with or without a bearer token: the status code."""
    channel = grpc.insecure_channel(address)
    try:
        metadata = [("authorization", f"Bearer {token}")] if token else None
        channel.unary_unary(GCS_METHOD)(b"", timeout=10, metadata=metadata)
        return "OK"
    except grpc.RpcError as exc:
        return str(exc.code().name)
    finally:
        channel.close()


def test_the_session_ray_is_on_loopback_and_demands_its_own_token(ray_session):
    ray = ray_session
    bad, n = listening_outside_loopback(os.getpid())
    assert n > 3 and bad == []
    token_path = Path(os.environ["RAY_AUTH_TOKEN_PATH"])
    assert stat.S_IMODE(token_path.stat().st_mode) == 0o600
    assert token_path != Path.home() / ".ray" / "auth_token"  # not the user's token
    gcs = ray.get_runtime_context().gcs_address
    assert gcs.startswith("127.0.0.1:")
    assert gcs_call(gcs, None) == "UNAUTHENTICATED"
    assert gcs_call(gcs, "0" * 64) == "UNAUTHENTICATED"
    assert gcs_call(gcs, token_path.read_text().strip()) == "OK"


STARTS_RAY = textwrap.dedent('''
    import asyncio, json, os, sys
    import ray  # imported first, as a user's script does: Ray reads its settings here
    from talix_ray.runtime.ray import RayRuntime
    from talix_ray.settings import Settings
    from tests.domain import Add, add, plain_service
    from tests.test_ray_security import gcs_call, listening_outside_loopback

    async def main(out, tmp):
        settings = Settings(store=f"file://{tmp}/events", data_dir=f"{tmp}/data")
        rt = RayRuntime(settings=settings, app="sec", partitions=1, shards=1, views=False,
                        dispatch=False, ray_init={"num_cpus": 1, "log_to_driver": False,
                        "runtime_env": {"env_vars": {"PYTHONPATH": os.getcwd()}}})
        async with rt.add(plain_service).create():
            await rt.run(add, "a", Add(amount=1))  # a shard actor: a worker process
            bad, n = listening_outside_loopback(os.getpid())
            gcs = ray.get_runtime_context().gcs_address
            path = f"{tmp}/data/ray/auth_token"
            token = open(path).read().strip() if os.path.exists(path) else None
            result = {"bad": bad, "listening": n, "gcs": gcs,
                      "no_token": gcs_call(gcs, None), "token": gcs_call(gcs, token),
                      "node_ip": ray.util.get_node_ip_address()}
        with open(out, "w") as f:
            json.dump(result, f)

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    os._exit(0)
''')


def test_a_ray_started_by_the_runtime_binds_loopback_with_token_auth(tmp_path):
    """The real entry point, in a fresh process that imported ray before talix-ray starts it
    (the dev stack's case), with no Ray variables set and a home without a Ray token."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RAY_AUTH", "RAY_ENABLE_WINDOWS", "RAY_ADDRESS"))}
    env.update(HOME=str(home), PYTHONPATH=str(ROOT), RAY_USAGE_STATS_ENABLED="0")
    out = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, "-c", STARTS_RAY, str(out), str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["listening"] > 3 and result["bad"] == []
    assert result["node_ip"] == "127.0.0.1" and result["gcs"].startswith("127.0.0.1:")
    assert result["no_token"] == "UNAUTHENTICATED" and result["token"] == "OK"
    token = tmp_path / "data" / "ray" / "auth_token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert stat.S_IMODE(token.parent.stat().st_mode) == 0o700
    assert not (home / ".ray" / "auth_token").exists()  # the user's token is left alone


async def test_the_s3_secret_travels_to_workers_by_reference_only(s3_server, ray_session):
    from ray import cloudpickle
    from ray.experimental import internal_kv

    from talix_ray.runtime.ray import RayRuntime
    from talix_ray.secrets import KV_NAMESPACE, SecretRef

    from .domain import Add, add, plain_service

    secret = s3_server.credentials.secret_key.get_secret_value()
    settings = s3_server.settings(f"s3://{s3_server.bucket}/sec-{uuid.uuid4().hex[:10]}")
    rt = RayRuntime(settings=settings, app=f"s{uuid.uuid4().hex[:10]}", partitions=1, shards=1,
                    views=False, dispatch=False).add(plain_service).create()
    async with rt:
        r = await rt.run(add, "a", Add(amount=2))  # the shard actor opened the store
        assert r.version == 1
        spec = rt.spec
        assert spec is not None
        ref = spec.store_options["secret_key"]
        assert isinstance(ref, SecretRef)
        shipped = cloudpickle.dumps(spec)
        assert secret.encode() not in shipped and secret not in repr(spec)
        store = rt.journal.store
        assert secret.encode() not in cloudpickle.dumps(store) and secret not in repr(store)
        # where workers get it: the cluster's KV store, under the reference's id
        assert internal_kv._internal_kv_get(ref.id, namespace=KV_NAMESPACE) == secret.encode()
