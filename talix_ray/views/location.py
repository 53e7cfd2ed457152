"""Where a runtime's views live: ``views/{name}/`` next to its events, as Delta tables."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from ..model.errors import ConfigurationError
from ..model.names import check_name
from ..objectstore import open_store
from ..settings import Settings

if TYPE_CHECKING:
    from ..settings import Settings


@dataclass(frozen=True)
class ViewLocation:
    """The folder holding every view table (a local path or an ``s3://`` URI) and the storage
    options Delta Lake needs to reach it (secrets kept as ``SecretStr``: masked in reprs)."""

    base: str
    options: dict[str, str | SecretStr] = field(default_factory=dict)

    @property
    def storage_options(self) -> dict[str, str]:
        """The options as Delta Lake takes them, secrets revealed: only for its calls."""
        return {k: v.get_secret_value() if isinstance(v, SecretStr) else v
                for k, v in self.options.items()}

    def uri(self, view: str) -> str:
        """The Delta table of ``view``."""
        return f"{self.base.rstrip('/')}/{check_name('view', view)}"

    @property
    def is_local(self) -> bool:
        """Whether the tables are in a local directory."""
        return "://" not in self.base or self.base.startswith("file://")

    @classmethod
    def of_store(cls, store: Any) -> ViewLocation | None:
        """``views/`` in an object store (``None`` for an in-process store)."""
        where = store.table_location("views") if store is not None else None
        return None if where is None else cls(where[0], where[1])

    @classmethod
    def of_url(cls, url: str, **s3_options: Any) -> ViewLocation:
        """``views/`` under a store URL (``file:///path`` or ``s3://bucket/prefix``) or a
        plain directory."""
        parts = urlsplit(url)
        if parts.scheme in ("", "file"):
            path = parts.path if parts.scheme else url
            if not path:
                raise ConfigurationError(f"invalid views location {url!r}")
            return cls(os.path.join(os.path.abspath(path), "views"))
        if parts.scheme == "s3":
            loc = cls.of_store(open_store(url, **s3_options))
            assert loc is not None
            return loc
        raise ConfigurationError(f"views need a store every reader reaches (file:// or s3://), "
                                 f"not {url!r}")

    @classmethod
    def of_settings(cls, settings: Settings | None = None) -> ViewLocation:
        """``views/`` of the store the settings (``TALIX_*``) name."""
        s = settings or Settings()
        if s.store == "memory://":
            raise ConfigurationError("the store is memory:// (private to its process): views "
                                     "are read from a file:// or s3:// store; set TALIX_STORE")
        return cls.of_url(s.store, **s.store_options())

    @classmethod
    def temporary(cls) -> ViewLocation:
        """A fresh local directory (for runtimes whose events live in memory)."""
        return cls(os.path.join(tempfile.mkdtemp(prefix="talix-views-"), "views"))
