"""The embedded stack: SeaweedFS, a local Ray and Ray Serve, started and stopped together."""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console

from ..model.errors import ConfigurationError
from .keys import dev_api_key

BUCKET = "talix"


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


@dataclass
class DevStack:
    """The application ``factory`` names, served on ``http://127.0.0.1:{port}``.

    ``start()`` runs SeaweedFS with its data in ``data/s3`` (the log lives in
    ``s3://talix/{app}``), a local Ray on loopback with its own token (``data/ray``), and the
    Serve application whose replicas build the runtime from ``TALIX_*``: the processes Ray
    starts inherit this process' environment, so the S3 secret never travels in a
    ``runtime_env``. The server knows the development API key (``data/dev-api-key``) by its
    hash only. ``stop()`` stops all of it; the data stays for the next run.
    """

    data: Path = Path(".talix")
    port: int = 8000
    factory: str = "services.app:build_ray_runtime"
    app: str = "dev"
    num_cpus: int = 2
    download_allow: list[str] = field(default_factory=lambda: ["127.0.0.1/32"])
    console: Console = field(default_factory=Console)
    key: str = ""
    url: str = ""
    _s3: Any = None
    _ray: bool = False

    def start(self) -> DevStack:
        """Start everything; a clear error (and nothing left running) when a part fails."""
        if not 1 <= self.port <= 65535:
            raise ConfigurationError(f"port {self.port} is not a TCP port")
        if not _port_free("127.0.0.1", self.port):
            raise ConfigurationError(f"127.0.0.1:{self.port} is in use (another `talix dev`?)"
                                     "; choose another with --port")
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        from ray import serve

        from ..runtime.ray.local import init_local_ray
        from ..s3server import EmbeddedS3
        from ..serve import HttpSettings, hash_key
        from ..serve.deployment import serve_deployment

        self.data = self.data.resolve()
        self.key = dev_api_key(self.data)
        self._s3 = EmbeddedS3(self.data / "s3", bucket=BUCKET).start()
        self.console.print(f"S3 (SeaweedFS) on {self._s3.endpoint}, data in {self.data / 's3'}")
        cwd = os.getcwd()
        os.environ.update({
            **self._s3.environment(f"s3://{BUCKET}/{self.app}"),
            "TALIX_APP": self.app,
            "TALIX_DATA_DIR": str(self.data),
            "TALIX_DOWNLOAD_ALLOW": json.dumps(self.download_allow),
            "TALIX_API_KEYS": json.dumps([{"name": "dev", "hash": hash_key(self.key),
                                           "scopes": ["*"]}]),
            "PYTHONPATH": os.pathsep.join(p for p in (cwd, os.environ.get("PYTHONPATH"))
                                          if p),
            "RAY_USAGE_STATS_ENABLED": "0",
        })
        os.environ.pop("TALIX_API_KEYS_FILE", None)
        self.console.print(f"Ray on 127.0.0.1 with token authentication (token in "
                           f"{self.data / 'ray'}), {self.num_cpus} CPUs for OCR tasks")
        init_local_ray(self.data / "ray", num_cpus=self.num_cpus, log_to_driver=False)
        self._ray = True
        logging.getLogger("ray.serve").setLevel(logging.WARNING)  # its INFO lines are noise here
        application = serve_deployment(self.factory, settings=HttpSettings())
        serve.start(http_options={"host": "127.0.0.1", "port": self.port})
        self.console.print("deploying the HTTP API on Ray Serve …")
        serve.run(application, name="talix", route_prefix="/")
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop Serve, Ray and SeaweedFS (whatever was started)."""
        # the Ray instance is this stack's own: stopping it stops Serve's controller, proxy and
        # replicas with it (serve.shutdown() first would only add log noise)
        if self._ray:
            import ray

            ray.shutdown()
            self._ray = False
        if self._s3 is not None:
            self._s3.stop()
            self._s3 = None

    def __enter__(self) -> DevStack:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
