"""What ``talix dev`` and ``talix demo`` run against a stack: an application's demo.

A demo is a function ``demo(session: DemoSession) -> DemoOutcome`` named by ``--demo
module:function`` (this repository's example: ``services.demo:run``, which uploads generated
receipts and follows them into the expenses view). It gets the running API's URL and a key
with every scope and, under ``talix dev``, a file server on loopback; it says whether everything it
started finished (``talix dev --once`` exits 1 otherwise) and what it started.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from rich.console import Console

from ..model.errors import ConfigurationError
from ..shared.refs import import_ref
from .feed import FileServer


@dataclass(frozen=True)
class DemoSession:
    """A running stack as a demo sees it."""

    url: str  # the API, e.g. http://127.0.0.1:8000
    key: str  # an API key with every scope
    key_file: Path  # where that key is kept (to print a command a user can paste)
    console: Console
    count: int
    seed: int
    timeout: float | None  # most seconds to follow what it started (None: no limit)
    files: FileServer | None = None  # under `talix dev`: files served on 127.0.0.1
    follow: bool = True  # follow what it started until it is done


@dataclass(frozen=True)
class DemoOutcome:
    """What a demo did: whether everything it started finished (when it followed it), and
    what it started (a name → an id, e.g. a file name → the document id the API gave it)."""

    done: bool
    started: dict[str, str] = field(default_factory=dict)


Demo = Callable[[DemoSession], DemoOutcome]


def load_demo(ref: str) -> Demo:
    """The demo ``module:function`` names."""
    found = import_ref(ref, option="--demo")
    if not callable(found):
        raise ConfigurationError(f"--demo {ref}: not a function")
    return cast(Demo, found)


__all__ = ["Demo", "DemoOutcome", "DemoSession", "load_demo"]
