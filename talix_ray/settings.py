"""Settings from the environment (prefix ``TALIX_``) or a ``.env`` file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .model.errors import TalixError
from .secrets import remember
from .shared.netpolicy import AddressPolicy

if TYPE_CHECKING:
    from .objectstore import S3Options


class Settings(BaseSettings):
    """Where events live and how the journal behaves.

    ``TALIX_STORE``: ``memory://`` (in-process, lost at exit), ``file:///path`` (a local
    directory) or ``s3://bucket/prefix`` (with ``TALIX_S3_ENDPOINT`` for an S3-compatible
    server; credentials from ``TALIX_S3_ACCESS_KEY``/``TALIX_S3_SECRET_KEY`` or the usual AWS
    environment). The secret key is a :class:`~pydantic.SecretStr`: it shows as ``**********``
    in reprs and logs, and reaches Ray workers by reference only (see ``talix_ray.secrets``).
    ``TALIX_DATA_DIR`` (``.talix``) holds what talix-ray generates on this machine: the
    embedded S3 server's data and credentials, the token of a Ray instance it starts.
    """

    model_config = SettingsConfigDict(env_prefix="TALIX_", env_file=".env", extra="ignore")

    store: str = Field("memory://", description="memory://, file:///path or s3://bucket/prefix")
    app: str = Field("talix", description="application name (Ray actor names, S3 prefix)")
    partitions: int | None = Field(None, ge=1, le=4096,
                                   description="fixed at creation; default 4")
    s3_endpoint: str | None = None
    s3_region: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: SecretStr | None = None
    s3_max_attempts: int = Field(3, ge=1, le=20)
    snapshot_every: int = Field(500, ge=1, description="snapshot an aggregate every M events")
    max_active: int = Field(100_000, ge=1, description="active aggregates per host (LRU)")
    remember_commands: int = Field(256, ge=0, le=1_000_000,
                                   description="command ids each aggregate remembers (dedupe)")
    max_event_bytes: int = Field(1 << 20, ge=1024, description="largest event, as stored")
    max_commit_bytes: int = Field(8 << 20, ge=1024,
                                  description="largest set of events one command appends")
    writer_heads_bytes: int = Field(64 << 20, ge=0,
                                    description="memory of a writer's index of stream heads")
    segment_cache_bytes: int = Field(64 << 20, ge=0,
                                     description="segments a journal keeps for consumers")
    index_memtable_bytes: int = Field(4 << 20, ge=4096, description=(
        "a partition's load index held in memory before it is written as a table (as stored);"
        " also what a restart replays from the log"))
    index_lag_segments: int = Field(256, ge=1, description=(
        "write the load index at the latest every N segments (bounds a restart's reading)"))
    index_table_bytes: int = Field(32 << 20, ge=65536,
                                   description="largest load-index table compaction writes")
    index_cache_bytes: int = Field(64 << 20, ge=0,
                                   description="load-index metas and blocks a journal caches")
    view_linger: float = Field(1.0, ge=0, le=3600,
                               description="seconds a view runner gathers events per commit")
    view_batch_events: int = Field(50_000, ge=1, description="most events per view commit")
    data_dir: Path = Field(Path(".talix"), description="local data: embedded S3, Ray token")
    download_allow: list[str] = Field(default_factory=list, max_length=64, description=(
        "networks the URL downloader may reach although they are not public, as a JSON list "
        "(TALIX_DOWNLOAD_ALLOW='[\"127.0.0.1/32\"]' for a local file server in development)"))

    @field_validator("download_allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        try:
            AddressPolicy.of(value)  # a clear error now, not at the first download
        except TalixError as exc:
            raise ValueError(str(exc)) from None
        return value

    def store_options(self) -> S3Options:
        """Keyword arguments for ``open_store(self.store, ...)`` (S3 options for S3 only)."""
        return self.s3_options() if self.store.startswith("s3://") else {}

    def view_options(self) -> dict[str, Any]:
        """Options for the view runners."""
        return {"linger": self.view_linger, "batch_events": self.view_batch_events}

    @field_validator("store")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not v.startswith(("memory://", "file://", "s3://")):
            raise ValueError("use memory://, file:///path or s3://bucket/prefix")
        return v

    @field_validator("s3_secret_key")
    @classmethod
    def _known_secret(cls, v: SecretStr | None) -> SecretStr | None:
        remember(v)  # redacted wherever this process writes error texts
        return v

    def s3_options(self) -> S3Options:
        """Keyword arguments for the S3 object store."""
        return {"endpoint_url": self.s3_endpoint, "region": self.s3_region,
                "access_key": self.s3_access_key, "secret_key": self.s3_secret_key,
                "max_attempts": self.s3_max_attempts}

