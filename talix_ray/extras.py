"""The optional parts of talix-ray and the extras that install them.

The core (model, log, engine, LocalRuntime, testkit, HTTP) needs none; ``views`` (Delta Lake
tables), ``ray`` (the RayRuntime, Serve) and ``ocr`` are extras: ``pip install
'talix-ray[views]'``. A part that is used without its extra says which one to install.
"""

from __future__ import annotations

import importlib.util

from .model.errors import ConfigurationError

EXTRAS: dict[str, tuple[str, ...]] = {
    "views": ("deltalake", "pyarrow", "duckdb"),
    "ray": ("ray",),
    "ocr": ("rapidocr_onnxruntime", "pypdfium2"),
}


def installed(extra: str) -> bool:
    """Whether every package of ``extra`` can be imported."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in EXTRAS[extra])
    except (ImportError, ValueError):  # a parent package missing, or a module without a spec
        return False


def require(extra: str, what: str) -> None:
    """Raise a :class:`ConfigurationError` naming the extra when it is not installed."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}")
    if not installed(extra):
        raise ConfigurationError(f"{what} needs the {extra!r} extra: "
                                 f"pip install 'talix-ray[{extra}]'")


def views_wanted(requested: bool | None, declared: bool) -> bool:
    """Whether a runtime runs views: never with ``False``; with ``True`` or when the services
    ``declared`` projections (then the extra is required); otherwise (``None``) the built-in
    ``events`` view when the extra is installed."""
    if requested is False:
        return False
    if requested is True or declared:
        require("views", "views (projections, the events table)")
        return True
    return installed("views")


__all__ = ["EXTRAS", "installed", "require", "views_wanted"]
