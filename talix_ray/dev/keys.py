"""The development API key: made once per data directory, kept in a file only you can read."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from ..model.errors import ConfigurationError

KEY_FILE = "dev-api-key"


def dev_api_key(data: Path) -> str:
    """The key in ``data/dev-api-key`` (mode 0600), generated on first use. The server gets
    only its hash; a key file that others can read is refused."""
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = data / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise ConfigurationError(f"the API key file {path} is readable by others (mode "
                                     f"{mode:o}); chmod 600 it or delete it") from None
        key = path.read_text().strip()
    else:
        key = "tlx_dev_" + secrets.token_urlsafe(32)
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n")
        return key
    if not key.startswith("tlx_"):
        raise ConfigurationError(f"{path} does not hold a talix API key; delete it")
    return key


def read_key(path: Path) -> str:
    """An API key from a file (``talix demo --key-file``)."""
    try:
        key = path.read_text().strip()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the API key file {path}: {exc.strerror}") \
            from None
    if not key:
        raise ConfigurationError(f"the API key file {path} is empty")
    return key
