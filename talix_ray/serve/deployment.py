"""The Ray Serve deployment: one FastAPI ingress whose replicas join the running actors.

``serve_deployment("services.app:build_ray_runtime")`` is a Serve application: ``serve run
serve_app:app`` serves it, ``serve build serve_app:app`` writes its config. Each replica
builds the runtime with the factory (reading ``TALIX_*`` from its own environment), joins the
application's shard, dispatcher and view actors — creating any that is missing — and leaves
them running when it stops (``keep_actors``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from ray import serve
from ray.serve import Application

from ..engine.runtime import Runtime
from ..model.errors import ConfigurationError
from ..shared.refs import import_ref
from .app import create_app
from .settings import HttpSettings

RuntimeFactory = Callable[[], Runtime]


def load_factory(factory: str | RuntimeFactory) -> RuntimeFactory:
    """``"module:attribute"`` → the function it names (or the callable itself)."""
    if callable(factory):
        return factory
    found = import_ref(factory, option="runtime factory")
    if not callable(found):
        raise ConfigurationError(f"runtime factory {factory!r} is not callable")
    return cast(RuntimeFactory, found)


def replica_app(factory: str | RuntimeFactory) -> Any:
    """Build the FastAPI app inside a replica: a runtime that joins the running actors."""
    runtime = load_factory(factory)()
    if hasattr(runtime, "keep_actors"):
        runtime.keep_actors = True  # a replica never stops the application's actors
    return create_app(runtime, HttpSettings())


def serve_deployment(factory: str | RuntimeFactory, *, settings: HttpSettings | None = None,
                     name: str = "talix",
                     runtime_env: dict[str, Any] | None = None) -> Application:
    """The Serve application of the runtime ``factory`` makes (``"module:function"``).

    Replicas, autoscaling and ``max_ongoing_requests`` come from ``settings``
    (``TALIX_SERVE_*``); every replica takes no CPU of its own (``num_cpus=0``), so actions
    and OCR tasks keep the cores. Replicas read ``TALIX_*`` (store, credentials) from their
    own environment: the cluster's, or ``runtime_env={"env_vars": {...}}``.
    """
    s = settings or HttpSettings()
    options = s.serve_options()
    if runtime_env:
        options["ray_actor_options"] = {**options["ray_actor_options"],
                                        "runtime_env": runtime_env}
    if isinstance(factory, str):
        load_factory(factory)  # fail now, not in every replica

    def build() -> Any:
        return replica_app(factory)

    ingress = serve.ingress(build)(type("TalixIngress", (), {
        "__doc__": "The talix-ray HTTP API (generated FastAPI app)."}))
    deployment = serve.deployment(name=name, **options)(ingress)
    return deployment.bind()


__all__ = ["load_factory", "serve_deployment"]
