"""Secrets (the S3 secret key, later API-key hashes and JWT keys): never in a repr, a log line,
a pickle shipped to Ray workers or a record written to storage.

* A secret in memory is a pydantic :class:`~pydantic.SecretStr` (its repr is ``'**********'``).
* A secret that must reach another process travels as a :class:`SecretRef`: a random id, not
  the value. :func:`share` registers the value in this process and, when Ray is running, in the
  cluster's key-value store (GCS internal KV, namespace ``talix-secrets``); a worker that
  unpickles the reference fetches the value from there on first use. That store is reachable
  only by authenticated Ray clients (token authentication), who can run code on the cluster
  anyway; the value never appears in task arguments, actor specs, the dashboard's job
  metadata (``runtime_env``) or object storage. Entries live as long as the cluster, so that
  actors restarted after their driver left still find them.
* :func:`redact` replaces every secret this process knows by ``**********`` in a text (dead
  letters keep their tracebacks, minus secrets).
"""

from __future__ import annotations

import secrets as _random
import sys
import threading
from typing import Any

from pydantic import SecretStr

from .model.errors import ConfigurationError

MASK = "**********"
KV_NAMESPACE = "talix-secrets"
_MIN_REDACTED = 6  # shorter values would mangle ordinary text; no real secret is that short

_lock = threading.Lock()
_by_id: dict[str, str] = {}
_by_value: dict[str, str] = {}
_published: set[tuple[str, str]] = set()  # (cluster GCS address, id)


class SecretRef:
    """A reference to a secret held by :func:`share`; pickles as its id only."""

    __slots__ = ("id",)

    def __init__(self, id: str) -> None:
        self.id = id

    def get_secret_value(self) -> str:
        """The value: from this process, or from the Ray cluster's KV store."""
        with _lock:
            value = _by_id.get(self.id)
        if value is None:
            value = _from_ray(self.id)
            if value is None:
                raise ConfigurationError(
                    "a secret this process was given by reference is not available here: it "
                    "is shared through the Ray cluster that the sending process ran in; give "
                    "this process its own credentials (TALIX_S3_* settings)")
            remember(value, id=self.id)
        return value

    def __reduce__(self) -> tuple[Any, ...]:
        return (SecretRef, (self.id,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretRef) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"SecretRef({self.id[:6]}…)"


Secret = str | SecretStr | SecretRef


def reveal(secret: Secret | None) -> str | None:
    """The plain value of a secret, reference or string (``None`` stays ``None``)."""
    if secret is None:
        return None
    if isinstance(secret, SecretRef | SecretStr):
        return secret.get_secret_value()
    if isinstance(secret, str):
        return secret
    raise TypeError(f"a secret is a str, SecretStr or SecretRef, not {type(secret).__name__}")


def remember(secret: Secret | None, *, id: str | None = None) -> str | None:
    """Register a secret's value for :func:`redact` (and under ``id`` for references);
    returns its id (``None`` for ``None``)."""
    value = reveal(secret)
    if value is None:
        return None
    with _lock:
        known = _by_value.get(value)
        if known is not None and (id is None or id == known):
            return known
        sid = id or _random.token_urlsafe(18)
        _by_value.setdefault(value, sid)
        _by_id[sid] = value
        return sid


def share(secret: Secret) -> SecretRef:
    """A reference to ``secret`` that other processes of this Ray cluster can resolve (just
    this process when Ray is not running)."""
    if isinstance(secret, SecretRef):
        return secret
    value = reveal(secret)
    assert value is not None
    sid = remember(value)
    assert sid is not None
    _to_ray(sid, value)
    return SecretRef(sid)


def redact(text: str) -> str:
    """``text`` with every secret known to this process replaced by ``**********``."""
    with _lock:
        values = sorted((v for v in _by_value if len(v) >= _MIN_REDACTED), key=len,
                        reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text


def _ray_kv() -> Any:
    """Ray's internal KV module when this process is connected to a Ray cluster."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    from ray.experimental import internal_kv

    return internal_kv


def _to_ray(sid: str, value: str) -> None:
    kv = _ray_kv()
    if kv is None:
        return
    import ray

    where = (str(ray.get_runtime_context().gcs_address), sid)
    with _lock:
        if where in _published:
            return
    kv._internal_kv_put(sid, value.encode(), overwrite=True, namespace=KV_NAMESPACE)
    with _lock:
        _published.add(where)


def _from_ray(sid: str) -> str | None:
    kv = _ray_kv()
    if kv is None:
        return None
    raw = kv._internal_kv_get(sid, namespace=KV_NAMESPACE)
    return None if raw is None else bytes(raw).decode()


__all__ = ["MASK", "Secret", "SecretRef", "redact", "remember", "reveal", "share"]
