"""The S3 secret key kept secret: never in a repr, a log line, a pickle, an error message, a
dead letter or an object written to storage."""

from __future__ import annotations

import logging
import pickle
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr

from talix_ray import Context, Event, LocalRuntime, Retry, Service, StorageError, action, on_event
from talix_ray.objectstore.s3 import S3ObjectStore
from talix_ray.secrets import MASK, SecretRef, redact
from talix_ray.settings import Settings
from talix_ray.views.location import ViewLocation

from .domain import Add, Added, add, added, counters

ROOT = Path(__file__).parent.parent


def test_settings_show_no_secret():
    value = f"settings-secret-{uuid.uuid4().hex}"
    s = Settings(store="s3://b/p", s3_secret_key=value, s3_access_key="AK")
    assert isinstance(s.s3_secret_key, SecretStr)
    for text in (repr(s), str(s), s.model_dump_json(), repr(s.model_dump()),
                 repr(s.store_options())):
        assert value not in text
    assert s.s3_secret_key.get_secret_value() == value


def test_a_store_shows_and_pickles_no_secret_but_still_works(s3_server):
    secret = s3_server.credentials.secret_key.get_secret_value()
    store = S3ObjectStore(s3_server.bucket, f"sec-{uuid.uuid4().hex[:8]}",
                          **s3_server.store_options())
    assert secret not in repr(store) and secret not in repr(vars(store))
    shipped = pickle.dumps(store)
    assert secret.encode() not in shipped
    again = pickle.loads(shipped)  # same process: the reference resolves here

    async def roundtrip() -> bytes:
        await again.create("k", b"v")
        return (await store.get("k")).body

    import asyncio

    assert asyncio.run(roundtrip()) == b"v"
    uri, options = store.table_location("views")
    assert secret not in repr(options) and secret not in uri
    location = ViewLocation.of_store(store)
    assert location is not None and secret not in repr(location)
    assert location.storage_options["AWS_SECRET_ACCESS_KEY"] == secret  # for Delta's calls


def test_a_pickled_store_elsewhere_has_no_secret_to_find(s3_server):
    """In another process outside Ray, the reference has nothing to resolve: a clear error,
    not a silent switch to other credentials."""
    store = S3ObjectStore(s3_server.bucket, "x", **s3_server.store_options())
    code = ("import pickle, sys\n"
            "try:\n"
            "    pickle.loads(sys.stdin.buffer.read())\n"
            "except Exception as exc:\n"
            "    print(type(exc).__name__, exc)\n")
    out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(store), cwd=ROOT,
                         capture_output=True, timeout=60)
    assert out.stdout.decode().startswith("ConfigurationError"), out
    assert b"TALIX_S3" in out.stdout


def test_an_app_spec_pickles_a_reference_not_the_secret():
    from ray import cloudpickle

    from talix_ray.journal import WriterPolicy
    from talix_ray.runtime.ray.spec import AppSpec

    value = f"spec-secret-{uuid.uuid4().hex}"
    spec = AppSpec(app="a", namespace="n", store_url="s3://b/p",
                   store_options={"endpoint_url": "http://127.0.0.1:1", "access_key": "AK",
                                  "secret_key": SecretStr(value)},
                   partitions=1, shards=1, services=[], registrations=b"", middleware=b"",
                   snapshot_every=None, max_active=1, policy=WriterPolicy())
    assert isinstance(spec.store_options["secret_key"], SecretRef)
    assert value.encode() not in cloudpickle.dumps(spec) and value not in repr(spec)
    assert spec.store_options["secret_key"].get_secret_value() == value


def test_storage_errors_name_neither_the_endpoint_nor_the_secret():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens there
    value = f"err-secret-{uuid.uuid4().hex}"
    store = S3ObjectStore("bucket", "p", endpoint_url=f"http://127.0.0.1:{port}",
                          access_key="AK", secret_key=value, max_attempts=1,
                          connect_timeout=1.0, read_timeout=1.0)
    import asyncio

    async def attempts() -> list[str]:
        out = []
        for call in (lambda: store.get("k"), lambda: store.create("k", b"x"),
                     lambda: store.list(""), lambda: store.delete("k")):
            with pytest.raises(StorageError) as info:
                await call()
            out.append(str(info.value))
        return out

    for message in asyncio.run(attempts()):
        assert str(port) not in message and "127.0.0.1" not in message, message
        assert value not in message


# -- dead letters, logs and stored objects ------------------------------------------------------
class _Leak:
    secret = ""


@action(on_event(added), retry=Retry(max_attempts=2, initial_backoff=0.01))
async def careless_action(event: Event[Added], ctx: Context) -> None:
    """Fails with the secret in its message, as a careless f-string would."""
    raise RuntimeError(f"could not authenticate with {_Leak.secret} at the endpoint")


careless_service = Service("careless", stores=[counters], actions=[careless_action])


async def test_dead_letters_logs_and_stored_objects_hold_no_secret(s3_server, caplog):
    secret = s3_server.credentials.secret_key.get_secret_value()
    _Leak.secret = secret
    prefix = f"dl-{uuid.uuid4().hex[:10]}"
    settings = s3_server.settings(f"s3://{s3_server.bucket}/{prefix}", partitions=1)
    caplog.set_level(logging.DEBUG)  # every logger, boto's included
    rt = LocalRuntime.from_settings(settings, views=False).add(careless_service).create()
    async with rt:
        await rt.run(add, "c1", Add(amount=1))
        await rt.settle(30)
        letters = await rt.deadletters()
    assert len(letters) == 1
    letter = letters[0]
    assert "Traceback" in letter["traceback"] and "careless_action" in letter["traceback"]
    assert MASK in letter["error"] and MASK in letter["traceback"]  # kept, minus the secret
    assert secret not in repr(letter)
    assert secret not in caplog.text
    assert any("dead-lettered" in r.getMessage() for r in caplog.records)
    # every object the application wrote: segments, dead letter, checkpoints…
    store = S3ObjectStore(s3_server.bucket, prefix, **s3_server.store_options())
    keys = (await store.list_all("")).keys
    assert any(k.startswith("deadletters/") for k in keys)
    for key in keys:
        assert secret.encode() not in (await store.get(key)).body, key


def test_redact_masks_what_this_process_knows():
    value = f"known-{uuid.uuid4().hex}"
    Settings(s3_secret_key=value)  # settings register their secret for redaction
    assert redact(f"a {value} b {value}") == f"a {MASK} b {MASK}"
    assert redact("nothing here") == "nothing here"
