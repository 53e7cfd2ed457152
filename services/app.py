"""The example application assembled: its services and the shared services it needs."""

from __future__ import annotations

from collections.abc import Sequence

from talix_ray import Downloader, LocalRuntime, Runtime
from talix_ray.settings import Settings

from . import documents, expenses
from .documents import DocumentAnalyzer, OcrAnalyzer


def build_runtime(settings: Settings | None = None, *, ray: bool = False,
                  download_allow: Sequence[str] = ()) -> Runtime:
    """The example on the LocalRuntime (or the RayRuntime), storage from ``TALIX_*``.
    ``download_allow``: networks the URL downloader may reach although they are not public
    (``["127.0.0.1/32"]`` for a local file server in development)."""
    if ray:
        from talix_ray import RayRuntime

        runtime: Runtime = RayRuntime.from_settings(
            settings, ray_init={"num_cpus": 2, "log_to_driver": False})
    else:
        runtime = LocalRuntime.from_settings(settings)
    return (runtime
            .register(DocumentAnalyzer, OcrAnalyzer())  # RapidOCR; text/plain as is
            .register(Downloader, Downloader(allow=download_allow))
            .add(documents.service, expenses.service)
            .create())


def build_ray_runtime() -> Runtime:
    """The example on the RayRuntime, from ``TALIX_*``: what every Serve replica runs."""
    return build_runtime(ray=True)
