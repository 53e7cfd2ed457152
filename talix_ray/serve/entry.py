"""The Serve application builder a cluster's Serve config names
(``import_path: talix_ray.serve.entry:build``, ``args: {factory: "module:function"}``).

It lives in the installed package, so the cluster's nodes need the package (and the
application's services) installed, not a source checkout with ``serve_app.py``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class EntryArgs(BaseModel):
    """The ``args`` of the application in the Serve config."""

    factory: str = Field("services.app:build_ray_runtime",
                         pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
                         description="module:function making the RayRuntime")


def build(args: dict[str, Any]) -> Any:
    """Serve calls this with the config's ``args``: the ingress deployment of the runtime
    ``args["factory"]`` makes (its options overridden by the config's ``deployments``)."""
    from .deployment import serve_deployment

    return serve_deployment(EntryArgs.model_validate(args).factory)


__all__ = ["EntryArgs", "build"]
