"""The development API key: made once per data directory, kept in a file only you can read."""

from __future__ import annotations

import secrets
from pathlib import Path

from ..model.errors import ConfigurationError
from ..privatefiles import private_text

KEY_FILE = "dev-api-key"


def dev_api_key(data: Path) -> str:
    """The key in ``data/dev-api-key`` (mode 0600), generated on first use. The server gets
    only its hash; a key file that others can read is refused."""
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = data / KEY_FILE
    key = private_text(path, lambda: "tlx_dev_" + secrets.token_urlsafe(32) + "\n").strip()
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
