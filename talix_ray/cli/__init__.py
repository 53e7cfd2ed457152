"""The ``talix`` command line (typer + rich): one module per group of commands."""

from __future__ import annotations

from . import dev, http, ops  # noqa: F401  (each registers its commands on ``app``)
from .common import app


def main() -> None:
    """Entry point of the ``talix`` script."""
    app()


__all__ = ["app", "main"]
