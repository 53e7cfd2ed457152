"""The ``talix`` command line."""

from __future__ import annotations

import asyncio
import os
import sys

import typer
from rich.console import Console

app = typer.Typer(help="talix-ray: event-sourced services on Ray.", no_args_is_help=True)
console = Console()


@app.callback()
def _root() -> None:
    """talix-ray: event-sourced services on Ray."""


@app.command()
def dev(
    samples: str = typer.Option("services/samples", help="folder of documents to upload"),
) -> None:
    """Run the example application end to end, embedded on this machine."""
    from .devstack import run_demo

    code = asyncio.run(run_demo(samples, console))
    _exit(code)


def _exit(code: int) -> None:
    """Leave without running interpreter teardown of native thread pools (see README)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    """Entry point of the ``talix`` script."""
    app()


if __name__ == "__main__":
    main()
