"""The embedded S3 server (SeaweedFS) as an attacker on loopback sees it: generated keys only,
every port on loopback, no admin API without credentials, gRPC only with its certificate."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import boto3
import botocore.exceptions
import grpc
import httpx
import psutil
import pytest
from botocore import UNSIGNED
from botocore.config import Config

from talix_ray import ConfigurationError
from talix_ray.s3auth import S3Credentials
from talix_ray.s3server import EmbeddedS3

ROOT = Path(__file__).parent.parent


def _client(server: EmbeddedS3, access: str | None, secret: str | None):
    extra = {"signature_version": UNSIGNED} if access is None else {}
    return boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                        aws_access_key_id=access or "x", aws_secret_access_key=secret or "x",
                        config=Config(retries={"max_attempts": 1},
                                      s3={"addressing_style": "path"}, **extra))


def _status(call) -> int:
    try:
        call()
    except botocore.exceptions.ClientError as exc:
        return int(exc.response["ResponseMetadata"]["HTTPStatusCode"])
    return 200


def test_anonymous_requests_and_wrong_keys_are_refused(s3_server):
    good = s3_server.client()
    good.put_object(Bucket=s3_server.bucket, Key="sec/probe", Body=b"mine")
    creds = s3_server.credentials
    secret = creds.secret_key.get_secret_value()
    for name, c in [("anonymous", _client(s3_server, None, None)),
                    ("wrong secret", _client(s3_server, creds.access_key, secret + "x")),
                    ("unknown key", _client(s3_server, "AKIDONOTEXIST00000000", secret)),
                    ("old fixed key", _client(s3_server, "talix", "talix-secret"))]:
        calls = {"list buckets": lambda c=c: c.list_buckets(),
                 "list objects": lambda c=c: c.list_objects_v2(Bucket=s3_server.bucket),
                 "get": lambda c=c: c.get_object(Bucket=s3_server.bucket, Key="sec/probe"),
                 "put": lambda c=c: c.put_object(Bucket=s3_server.bucket, Key="sec/evil",
                                                 Body=b"x"),
                 "delete": lambda c=c: c.delete_object(Bucket=s3_server.bucket,
                                                       Key="sec/probe")}
        for what, call in calls.items():
            assert _status(call) == 403, f"{name}: {what} was not refused"
    for path in ("/", f"/{s3_server.bucket}", f"/{s3_server.bucket}/sec/probe"):
        assert httpx.get(s3_server.endpoint + path).status_code == 403
    assert good.get_object(Bucket=s3_server.bucket, Key="sec/probe")["Body"].read() == b"mine"
    keys = [o["Key"] for o in good.list_objects_v2(Bucket=s3_server.bucket,
                                                    Prefix="sec/").get("Contents", [])]
    assert keys == ["sec/probe"]  # nothing written, nothing deleted by the refused calls


def _weed_listening(server: EmbeddedS3) -> list[tuple[str, int]]:
    assert server.process is not None
    proc = psutil.Process(server.process.pid)
    out = []
    for p in [proc, *proc.children(recursive=True)]:
        for c in p.net_connections(kind="inet"):
            if c.status == psutil.CONN_LISTEN:
                out.append((c.laddr.ip, c.laddr.port))
    return out


def _loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def test_every_seaweedfs_port_listens_on_loopback_only(s3_server):
    listening = _weed_listening(s3_server)
    assert listening
    assert [a for a in listening if not _loopback(a[0])] == []
    # nothing listens but the ports talix-ray chose (no metrics, Iceberg, Lance, IAM, pprof)
    assert {port for _, port in listening} == set(s3_server.ports.values())


def test_the_admin_http_apis_do_not_answer_without_credentials(s3_server):
    ports = s3_server.ports
    master = f"http://127.0.0.1:{ports['master']}"
    for path in ("/dir/assign", "/dir/lookup?volumeId=1", "/dir/status", "/vol/status",
                 "/vol/grow?count=1", "/vol/vacuum", "/col/delete?collection=x",
                 "/cluster/status", "/submit"):
        r = httpx.post(master + path)
        assert r.status_code in (401, 403, 404, 405), (path, r.status_code, r.text[:200])
        assert "fid" not in r.text and "Volumes" not in r.text
    filer = f"http://127.0.0.1:{ports['filer']}"
    for method, path in (("GET", "/"), ("GET", f"/buckets/{s3_server.bucket}/"),
                         ("PUT", f"/buckets/{s3_server.bucket}/evil"),
                         ("POST", "/evil"), ("DELETE", f"/buckets/{s3_server.bucket}")):
        r = httpx.request(method, filer + path, content=b"x" if method in ("PUT", "POST")
                          else None)
        assert r.status_code >= 400, (method, path, r.status_code)
    volume = f"http://127.0.0.1:{ports['volume']}"
    for method in ("GET", "POST", "PUT", "DELETE"):
        r = httpx.request(method, volume + "/1,0123456789ab",
                          content=b"x" if method in ("POST", "PUT") else None)
        assert r.status_code == 401, (method, r.status_code, r.text[:200])  # needs a JWT
    assert httpx.get(volume + "/ui/index.html").status_code == 401


GRPC = {"master.grpc": "/master_pb.Seaweed/Ping",
        "volume.grpc": "/volume_server_pb.VolumeServer/Ping",
        "filer.grpc": "/filer_pb.SeaweedFiler/Ping",
        "s3.grpc": "/messaging_pb.SeaweedS3IamCache/ListPolicies"}


def _grpc(port: int, method: str, creds: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    target = f"127.0.0.1:{port}"
    channel = grpc.secure_channel(target, creds) if creds else grpc.insecure_channel(target)
    try:
        channel.unary_unary(method)(b"", timeout=5)
        return grpc.StatusCode.OK
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    finally:
        channel.close()


def test_grpc_needs_the_servers_client_certificate(s3_server):
    tls = s3_server.tls
    ca = tls.ca.read_bytes()
    mine = grpc.ssl_channel_credentials(ca, tls.key.read_bytes(), tls.cert.read_bytes())
    no_client_cert = grpc.ssl_channel_credentials(ca)
    for name, method in GRPC.items():
        port = s3_server.ports[name]
        assert _grpc(port, method, None) == grpc.StatusCode.UNAVAILABLE, name  # plaintext
        assert _grpc(port, method, no_client_cert) == grpc.StatusCode.UNAVAILABLE, name
        # the same call with the certificate reaches the service (whatever it answers)
        assert _grpc(port, method, mine) != grpc.StatusCode.UNAVAILABLE, name


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keys_are_generated_private_and_reused_and_talix_s3_prints_them(tmp_path):
    data = tmp_path / "s3"
    data.mkdir(mode=0o700)
    # what a first start leaves behind: a generated pair, private
    creds = S3Credentials.load_or_create(data / "credentials.json")
    assert _mode(data / "credentials.json") == 0o600 and creds.access_key != "talix"
    stored = json.loads((data / "credentials.json").read_text())
    assert len(stored["secret_key"]) >= 40

    proc = subprocess.Popen([sys.executable, "-m", "talix_ray.cli", "s3", "--data", str(data),
                             "--port", "0"], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "400"})
    try:
        lines = []
        deadline = time.monotonic() + 60
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "TALIX_S3_SECRET_KEY=" in line or not line:
                break
        printed = "".join(lines)
        # the restart reused the pair, and printed it
        assert f"TALIX_S3_ACCESS_KEY={creds.access_key}" in printed, printed
        assert f"TALIX_S3_SECRET_KEY={stored['secret_key']}" in printed
        endpoint = next(w.split("=", 1)[1] for w in printed.split()
                        if w.startswith("TALIX_S3_ENDPOINT="))
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id=creds.access_key,
                              aws_secret_access_key=stored["secret_key"],
                              config=Config(s3={"addressing_style": "path"}))
        client.put_object(Bucket="talix", Key="k", Body=b"v")
        assert client.get_object(Bucket="talix", Key="k")["Body"].read() == b"v"
        assert _mode(data) == 0o700
        for f in ("credentials.json", "s3.json", "security.toml", "tls/weed.key",
                  "tls/weed.crt", "tls/ca.crt"):
            assert _mode(data / f) == 0o600, f
        assert sorted(p.name for p in (data / "tls").iterdir()) == [
            "ca.crt", "weed.crt", "weed.key"]  # the CA's private key is never written
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)

    os.chmod(data / "credentials.json", 0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        EmbeddedS3(data).start()
