"""Files that hold secrets on this machine (keys, tokens): mode 0600, refused when others may
read them."""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

from .model.errors import ConfigurationError


def check_private(path: Path) -> None:
    """Refuse a secret file that others may read or write."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigurationError(f"{path} is accessible to others (mode {mode:o}); "
                                 f"chmod 600 it")


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 (replacing any older file)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def private_text(path: Path, make: Callable[[], str]) -> str:
    """The text of the secret file ``path``; on first use ``make()``'s text, written to a new
    file of mode 0600 (created only if absent). An existing file others may read is refused."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        check_private(path)
        return path.read_text()
    text = make()
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return text


__all__ = ["check_private", "private_text", "write_private"]
