"""Objects in S3 or an S3-compatible server, through boto3."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

import boto3
import botocore.exceptions
import urllib3.exceptions
from botocore.config import Config
from pydantic import SecretStr

from ..model.errors import StorageError
from ..secrets import Secret, SecretRef, remember, reveal, share
from .base import (
    AmbiguousWrite,
    Listing,
    ObjectExists,
    ObjectNotFound,
    ObjectStore,
    PreconditionFailed,
    StoredObject,
    check_key,
)

T = TypeVar("T")
# Everything the SDK and its HTTP stack raise besides an HTTP answer (ClientError): connection,
# TLS, timeout, truncated or undecodable responses, local configuration.
_TRANSPORT = (botocore.exceptions.BotoCoreError, urllib3.exceptions.HTTPError, OSError)
# The ones raised before a request leaves the process: a write that failed so did not happen.
_NOT_SENT = (botocore.exceptions.NoCredentialsError,
             botocore.exceptions.PartialCredentialsError,
             botocore.exceptions.CredentialRetrievalError,
             botocore.exceptions.ParamValidationError)


class S3Client(Protocol):
    """The calls talix-ray makes on a boto3 S3 client (boto3 ships no types): the keywords
    are the S3 API's, each response is boto3's dict."""

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, IfNoneMatch: str = ...,
                   IfMatch: str = ...) -> dict[str, Any]: ...

    def get_object(self, *, Bucket: str, Key: str, Range: str = ...) -> dict[str, Any]: ...

    def list_objects_v2(self, *, Bucket: str, Prefix: str = ..., MaxKeys: int = ...,
                        ContinuationToken: str = ..., StartAfter: str = ...,
                        Delimiter: str = ...) -> dict[str, Any]: ...

    def delete_object(self, *, Bucket: str, Key: str) -> dict[str, Any]: ...

    def head_bucket(self, *, Bucket: str) -> dict[str, Any]: ...

    def create_bucket(self, *, Bucket: str) -> dict[str, Any]: ...


def _transport_error(what: str, exc: BaseException, write: bool) -> StorageError:
    """A transport failure as the store's errors: a write whose request may have reached the
    server is ambiguous (the journal reads it back), anything else a plain StorageError."""
    # the type only: botocore's messages carry the endpoint URL
    message = f"{what}: {type(exc).__name__} (transport error)"
    if write and not isinstance(exc, _NOT_SENT):
        return AmbiguousWrite(message)
    return StorageError(message)


class S3ObjectStore(ObjectStore):
    """``s3://bucket/prefix`` with conditional writes (``IfNoneMatch`` / ``IfMatch``).

    boto3 is blocking, so calls run on a thread pool sized like the connection pool. The
    SDK's own retries are set explicitly (``max_attempts``): a retried conditional create may
    report 412 for its own first attempt — the journal resolves that by reading back.
    """

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 region: str | None = None, access_key: str | None = None,
                 secret_key: Secret | None = None, max_attempts: int = 3,
                 connect_timeout: float = 5.0, read_timeout: float = 30.0,
                 max_connections: int = 64) -> None:
        if not bucket:
            raise ValueError("an S3 store needs a bucket")
        self._args = (bucket, prefix)
        # the secret is kept apart: never in a repr, and pickled only as a reference
        self._secret_ref = secret_key if isinstance(secret_key, SecretRef) else None
        plain = reveal(secret_key)
        remember(plain)
        self._secret = SecretStr(plain) if plain is not None else None
        self._kwargs = {"endpoint_url": endpoint_url, "region": region,
                        "access_key": access_key,
                        "max_attempts": max_attempts, "connect_timeout": connect_timeout,
                        "read_timeout": read_timeout, "max_connections": max_connections}
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}"
        config = Config(retries={"max_attempts": max_attempts, "mode": "standard"},
                        connect_timeout=connect_timeout, read_timeout=read_timeout,
                        max_pool_connections=max_connections,
                        s3={"addressing_style": "path"} if endpoint_url else None)
        session = boto3.session.Session()
        self.client: S3Client = session.client("s3", endpoint_url=endpoint_url,
                                               region_name=region or "us-east-1",
                                               aws_access_key_id=access_key,
                                               aws_secret_access_key=plain, config=config)
        self._pool = ThreadPoolExecutor(max_connections, thread_name_prefix="talix-s3")

    def __reduce__(self) -> tuple[Any, ...]:
        # a store travels to Ray workers as its configuration, the secret as a reference
        # (talix_ray.secrets); each process opens its own connections
        secret = self._secret_ref or (share(self._secret) if self._secret else None)
        return (_reopen, (self._args, {**self._kwargs, "secret_key": secret}))

    def __repr__(self) -> str:
        return f"S3ObjectStore({self.url!r})"

    def table_location(self, path: str) -> tuple[str, dict[str, str | SecretStr]] | None:
        opts: dict[str, str | SecretStr] = {"conditional_put": "etag"}  # atomic Delta commits
        kw = self._kwargs
        if kw["endpoint_url"]:
            opts["AWS_ENDPOINT_URL"] = str(kw["endpoint_url"])
            if str(kw["endpoint_url"]).startswith("http://"):
                opts["AWS_ALLOW_HTTP"] = "true"
        opts["AWS_REGION"] = str(kw["region"] or "us-east-1")
        if kw["access_key"]:
            opts["AWS_ACCESS_KEY_ID"] = str(kw["access_key"])
        if self._secret is not None:
            opts["AWS_SECRET_ACCESS_KEY"] = self._secret  # revealed only for Delta Lake's calls
        return f"s3://{self.bucket}/{self._k(path)}", opts

    def _k(self, key: str) -> str:
        return self.prefix + check_key(key)

    async def _call(self, fn: Callable[..., T], /, *args: Any, **kw: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kw))

    @staticmethod
    def _status(exc: botocore.exceptions.ClientError) -> tuple[int, str]:
        meta = exc.response.get("ResponseMetadata", {})
        return int(meta.get("HTTPStatusCode", 0)), exc.response.get("Error", {}).get("Code", "")

    async def create(self, key: str, body: bytes) -> str:
        try:
            r = await self._call(self.client.put_object, Bucket=self.bucket, Key=self._k(key),
                                 Body=body, IfNoneMatch="*")
        except botocore.exceptions.ClientError as exc:
            status, code = self._status(exc)
            if status == 412 or code == "PreconditionFailed":
                raise ObjectExists(f"{key} exists") from None
            raise self._write_error(key, exc) from exc
        except _TRANSPORT as exc:
            raise _transport_error(f"create {key}", exc, True) from exc
        return str(r["ETag"])

    async def put_if_match(self, key: str, body: bytes, etag: str) -> str:
        try:
            r = await self._call(self.client.put_object, Bucket=self.bucket, Key=self._k(key),
                                 Body=body, IfMatch=etag)
        except botocore.exceptions.ClientError as exc:
            status, code = self._status(exc)
            if status in (404, 412) or code in ("PreconditionFailed", "NoSuchKey"):
                raise PreconditionFailed(f"{key} changed") from None
            raise self._write_error(key, exc) from exc
        except _TRANSPORT as exc:
            raise _transport_error(f"put {key}", exc, True) from exc
        return str(r["ETag"])

    def _write_error(self, key: str, exc: botocore.exceptions.ClientError) -> StorageError:
        status, code = self._status(exc)
        if status >= 500 or status in (408, 409, 429) or code in ("SlowDown", "RequestTimeout"):
            return AmbiguousWrite(f"write {key}: HTTP {status} {code}")
        return StorageError(f"write {key}: HTTP {status} {code}: {exc}")

    async def get(self, key: str) -> StoredObject:
        def fetch() -> StoredObject:
            r = self.client.get_object(Bucket=self.bucket, Key=self._k(key))
            return StoredObject(r["Body"].read(), str(r["ETag"]))

        try:
            return await self._call(fetch)
        except botocore.exceptions.ClientError as exc:
            status, code = self._status(exc)
            if status == 404 or code in ("NoSuchKey", "404"):
                raise ObjectNotFound(f"no object {key}") from None
            raise StorageError(f"get {key}: HTTP {status} {code}") from exc
        except _TRANSPORT as exc:
            raise _transport_error(f"get {key}", exc, False) from exc

    async def get_range(self, key: str, start: int, length: int) -> bytes:
        if length <= 0:
            return b""

        def fetch() -> bytes:
            r = self.client.get_object(Bucket=self.bucket, Key=self._k(key),
                                       Range=f"bytes={start}-{start + length - 1}")
            return bytes(r["Body"].read())

        try:
            return await self._call(fetch)
        except botocore.exceptions.ClientError as exc:
            status, code = self._status(exc)
            if status == 404 or code in ("NoSuchKey", "404"):
                raise ObjectNotFound(f"no object {key}") from None
            if status == 416 or code == "InvalidRange":  # at or past its end
                return b""
            raise StorageError(f"get {key}: HTTP {status} {code}") from exc
        except _TRANSPORT as exc:
            raise _transport_error(f"get {key}", exc, False) from exc

    async def list(self, prefix: str, *, start_after: str | None = None,
                   delimiter: str | None = None, limit: int = 1000,
                   token: str | None = None) -> Listing:
        kw: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix + prefix,
                              "MaxKeys": limit}
        if token:  # the server's own position: right whatever order it lists in
            kw["ContinuationToken"] = token
        elif start_after:
            kw["StartAfter"] = self.prefix + start_after
        if delimiter:
            kw["Delimiter"] = delimiter
        try:
            r = await self._call(self.client.list_objects_v2, **kw)
        except botocore.exceptions.ClientError as exc:
            status, code = self._status(exc)
            raise StorageError(f"list {prefix}: HTTP {status} {code}") from exc
        except _TRANSPORT as exc:
            raise _transport_error(f"list {prefix}", exc, False) from exc
        cut = len(self.prefix)
        keys = [o["Key"][cut:] for o in r.get("Contents", [])]
        prefixes = [p["Prefix"][cut:] for p in r.get("CommonPrefixes", [])]
        if start_after and not token:  # some servers include the start key's prefix
            prefixes = [p for p in prefixes if p > start_after]
        truncated = bool(r.get("IsTruncated"))
        return Listing(keys, prefixes, truncated,
                       r.get("NextContinuationToken") if truncated else None)

    async def delete(self, key: str) -> None:
        try:
            await self._call(self.client.delete_object, Bucket=self.bucket, Key=self._k(key))
        except botocore.exceptions.ClientError as exc:
            status, code = self._status(exc)
            if status != 404:
                raise StorageError(f"delete {key}: HTTP {status} {code}") from exc
        except _TRANSPORT as exc:
            raise _transport_error(f"delete {key}", exc, True) from exc

    async def close(self) -> None:
        self._pool.shutdown(wait=False)

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (embedded server, tests)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError:
            self.client.create_bucket(Bucket=self.bucket)


def _reopen(args: tuple[str, str], kwargs: dict[str, Any]) -> S3ObjectStore:
    return S3ObjectStore(*args, **kwargs)

