"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray on loopback only

from talix_ray import Testkit


@pytest.fixture
def testkit():
    """A testkit with the example services and a text analyzer."""
    from services import documents, expenses
    from services.documents import DocumentAnalyzer, TextAnalyzer

    kit = Testkit(documents.service, expenses.service).register(DocumentAnalyzer, TextAnalyzer())
    yield kit
    kit.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real SeaweedFS S3 server on loopback for the whole session."""
    from talix_ray.s3server import EmbeddedS3

    server = EmbeddedS3(tmp_path_factory.mktemp("seaweedfs")).start()
    yield server
    server.stop()


@pytest.fixture(params=["memory", "local", "s3"])
def object_store(request, tmp_path):
    """Each object store backend, empty (a fresh prefix on the shared S3 server)."""
    import uuid

    from talix_ray.objectstore import LocalObjectStore, MemoryObjectStore

    if request.param == "memory":
        yield MemoryObjectStore()
    elif request.param == "local":
        yield LocalObjectStore(tmp_path / "objects")
    else:
        from talix_ray.objectstore.s3 import S3ObjectStore

        server = request.getfixturevalue("s3_server")
        yield S3ObjectStore(server.bucket, f"t-{uuid.uuid4().hex[:12]}",
                            **server.store_options())


@pytest.fixture(scope="session")
def ray_session(tmp_path_factory):
    """One Ray instance for the whole test session (workers import the repo's packages),
    started the way talix-ray starts one: on loopback, with token authentication and a token
    of its own (not the user's ``~/.ray/auth_token``)."""
    import ray

    from talix_ray.runtime.ray.local import init_local_ray

    root = str(Path(__file__).parent.parent)
    init_local_ray(tmp_path_factory.mktemp("ray-token"), num_cpus=2, include_dashboard=False,
                   log_to_driver=False,
                   runtime_env={"env_vars": {"PYTHONPATH": root,
                                             "RAY_USAGE_STATS_ENABLED": "0"}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def serve_session(ray_session):
    """Ray Serve on the session's Ray, its HTTP proxy on a free loopback port; yields the
    proxy's base URL."""
    import socket

    from ray import serve

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()
