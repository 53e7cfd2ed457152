"""What every ``talix`` command shares: the Typer app, the console, settings, errors."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import typer
from rich.console import Console

if TYPE_CHECKING:
    from ..engine.runtime import Runtime
    from ..settings import Settings

T = TypeVar("T")

app = typer.Typer(help="talix-ray: event-sourced services on Ray.", no_args_is_help=True)
console = Console()
STORE_OPTION = typer.Option(None, "--store",
                            help="the application's store (default: TALIX_STORE)")
APP_HELP = ("module:attribute naming the application: a runtime, or a function taking the "
            "Settings (TALIX_*, --store) and returning one; modules of the current directory "
            "import")


@app.callback()
def _root() -> None:
    """talix-ray: event-sourced services on Ray."""
    # modules of the current directory import (--app, --demo), as with ``python -m``: the
    # installed ``talix`` script's path has its own directory instead
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def _settings(store: str | None) -> Settings:
    from ..settings import Settings

    return Settings(store=store) if store else Settings()


def _load_runtime(app_ref: str, settings: Settings) -> Runtime:
    """The runtime ``module:attr`` names (a runtime, or a function of the settings making
    one), created."""
    from ..engine.runtime import Runtime
    from ..model.errors import NotFound
    from ..shared.refs import import_ref

    target = import_ref(app_ref, option="--app", default_attribute="runtime")
    runtime = target(settings) if callable(target) and not isinstance(target, Runtime) \
        else target
    if not isinstance(runtime, Runtime):
        raise NotFound(f"{app_ref} is not a runtime or a function making one")
    if runtime.app is None:
        runtime.create()
    return runtime


def _guard(fn: Callable[[], T]) -> T:
    """Run ``fn``; an expected error — a talix error, invalid settings, a bad value the
    command was given (``ValueError``) — prints one line and exits 2. Anything else is a
    defect and keeps its traceback (an ``--app`` that cannot be imported is a talix
    :class:`ConfigurationError`, see :func:`_load_runtime`)."""
    from pydantic import ValidationError as SettingsError

    from ..model.errors import TalixError

    try:
        return fn()
    except (SettingsError, TalixError, ValueError) as exc:
        message = " ".join(str(exc).split())  # one line, whatever the terminal's width
        console.print(f"[red]error:[/red] {message}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from exc


