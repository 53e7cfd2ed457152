"""The Serve config of an application on a Ray cluster (what ``talix deploy`` writes and
``serve deploy`` submits).

The config names the application builder :func:`talix_ray.serve.entry.build` (inside the
installed package, so a cluster needs no source checkout) with the runtime factory as its
argument; the ingress deployment's replicas, autoscaling and concurrency come from the
``TALIX_SERVE_*`` settings, and the replicas' environment (``runtime_env.env_vars``) carries
the ``TALIX_*`` settings of the application: store, app name, partitions, region, API-key
file, JWT checks, limits.

Secrets never go into the config (Ray shows it in its dashboard and keeps it in the GCS):
:data:`SECRET_VARIABLES` are left out and belong in the nodes' own environment, or are not
needed at all on AWS, where the instance profile gives S3 access.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError

from ..model.errors import ConfigurationError
from ..settings import Settings
from .settings import HttpSettings

#: settings whose values are secrets: never written into a Serve config
SECRET_VARIABLES = frozenset({"TALIX_S3_ACCESS_KEY", "TALIX_S3_SECRET_KEY", "TALIX_JWT_SECRET"})
DEFAULT_FACTORY = "services.app:build_ray_runtime"
APP_NAME = "talix"


@contextmanager
def _environment(env: Mapping[str, str]) -> Any:
    """``os.environ`` with only ``env`` among the ``TALIX_*`` variables, for validating."""
    saved = dict(os.environ)
    try:
        for key in [k for k in os.environ if k.startswith("TALIX_")]:
            del os.environ[key]
        os.environ.update(env)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def split_environment(environ: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The ``TALIX_*`` variables of ``environ`` that go into the config, and the names of
    those left out because they are secrets."""
    keep = {k: v for k, v in sorted(environ.items())
            if k.startswith("TALIX_") and k not in SECRET_VARIABLES}
    secret = sorted(k for k in environ if k in SECRET_VARIABLES)
    return keep, secret


def check_settings(env: Mapping[str, str]) -> None:
    """Validate the settings ``env`` describes as a replica would read them (an API-key file
    that only exists on the cluster's nodes is not read here); a
    :class:`~talix_ray.model.errors.ConfigurationError` names the first problem."""
    local = dict(env)
    keys_file = local.get("TALIX_API_KEYS_FILE")
    if keys_file and not os.path.exists(keys_file):
        local.pop("TALIX_API_KEYS_FILE")
    with _environment(local):
        try:
            settings = Settings(_env_file=None)
            HttpSettings(_env_file=None)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(x) for x in err["loc"])
            raise ConfigurationError(f"TALIX_{where.upper()}: {err['msg']}") from None
    if not settings.store.startswith(("s3://", "file://")):
        raise ConfigurationError(
            "a cluster needs storage every node reaches: set TALIX_STORE (or --store) to "
            f"s3://bucket/prefix or a shared file:///path, not {settings.store!r}")


def serve_config(env: Mapping[str, str], *, factory: str = DEFAULT_FACTORY,
                 host: str = "0.0.0.0", port: int = 8000,
                 proxy_location: str = "EveryNode") -> dict[str, Any]:
    """The Serve config (``serve deploy`` format) of the application ``factory`` makes, its
    replicas configured by ``env`` (``TALIX_*`` variables, secrets excluded). Validated
    against Ray Serve's own schema; :class:`ConfigurationError` for bad settings."""
    from ray.serve.schema import ServeDeploySchema  # the ray extra

    from .deployment import load_factory
    leaked = sorted(SECRET_VARIABLES & set(env))
    if leaked:
        raise ConfigurationError(f"secrets do not go into a Serve config: {', '.join(leaked)}")
    check_settings(env)
    load_factory(factory)  # fail here, not in the cluster's controller
    with _environment({k: v for k, v in env.items() if k != "TALIX_API_KEYS_FILE"}):
        options = HttpSettings(_env_file=None).serve_options()
    log_json = env.get("TALIX_LOG_JSON", "").strip().lower() in ("1", "true", "yes", "on")
    config: dict[str, Any] = {
        "proxy_location": proxy_location,
        "http_options": {"host": host, "port": port},
        "logging_config": {"encoding": "JSON" if log_json else "TEXT", "log_level": "INFO"},
        "applications": [{
            "name": APP_NAME,
            "route_prefix": "/",
            "import_path": "talix_ray.serve.entry:build",
            "args": {"factory": factory},
            "runtime_env": {"env_vars": dict(env)},
            "deployments": [{"name": APP_NAME, **options}],
        }],
    }
    try:
        ServeDeploySchema.model_validate(config)
    except ValidationError as exc:
        raise ConfigurationError(f"invalid Serve config: {exc.errors()[0]['msg']}") from None
    return config


__all__ = ["APP_NAME", "DEFAULT_FACTORY", "SECRET_VARIABLES", "check_settings",
           "serve_config", "split_environment"]
