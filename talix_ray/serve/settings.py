"""Settings of the HTTP layer: credentials, limits and the Serve deployment (``TALIX_*``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, TypedDict

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ..model.action import check_scopes

_HASH_PREFIX = "sha256:"


class ApiKey(BaseModel):
    """One API key as the server keeps it: a name, the key's SHA-256 and its scopes.

    The key itself is never stored: ``talix apikey create NAME --scope …`` prints a new key
    once, with the entry to add to ``TALIX_API_KEYS``.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9_.@\-]{1,64}$")
    hash: str = Field(pattern=r"^sha256:[0-9a-f]{64}$", repr=False)
    scopes: list[str] = Field(default_factory=list)

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, v: list[str]) -> list[str]:
        return list(check_scopes(v, public=False))


class HttpSettings(BaseSettings):
    """How the generated HTTP API authenticates, limits and deploys (``TALIX_*`` variables).

    Credentials: ``TALIX_API_KEYS`` (a JSON list of ``{"name", "hash", "scopes"}``) or
    ``TALIX_API_KEYS_FILE`` (a file holding that list); JWT bearer tokens with
    ``TALIX_JWT_SECRET`` (HS256) or ``TALIX_JWT_PUBLIC_KEY`` (PEM text or a file path) or
    ``TALIX_JWT_JWKS_FILE`` (RS256/ES256), checked against ``TALIX_JWT_ISSUER`` and
    ``TALIX_JWT_AUDIENCE`` when set. With none of them, every non-public route answers 401.
    """

    model_config = SettingsConfigDict(env_prefix="TALIX_", env_file=".env", extra="ignore")

    api_keys: Annotated[list[ApiKey], NoDecode] = Field(default_factory=list)
    api_keys_file: Path | None = None
    jwt_secret: SecretStr | None = None
    jwt_public_key: str | None = Field(None, description="PEM text, or the path of a PEM file")
    jwt_jwks_file: Path | None = None
    jwt_algorithms: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["HS256", "RS256", "ES256"])
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_leeway: float = Field(30.0, ge=0, le=600, description="clock skew allowed, seconds")
    jwt_scope_claim: str = "scope"

    http_max_body: int = Field(1024 * 1024, ge=1024, description="bytes of a JSON body")
    http_max_upload: int = Field(20 * 1024 * 1024, ge=1024,
                                 description="bytes of a multipart (file upload) body")
    http_timeout: float = Field(30.0, gt=0, le=3600, description="seconds per request (504)")
    http_docs: bool = Field(True, description="serve /docs and /openapi.json (public)")
    idempotency_ttl: float = Field(24 * 3600, gt=0, description="seconds a key is remembered")

    serve_num_replicas: int = Field(1, ge=1, le=1024)
    serve_max_replicas: int | None = Field(
        None, ge=1, le=1024, description="autoscale between serve_num_replicas and this")
    serve_target_ongoing_requests: float = Field(32, gt=0)
    serve_max_ongoing_requests: int = Field(128, ge=1, le=100_000)
    http_host: str = "127.0.0.1"
    http_port: int = Field(8000, ge=1, le=65535)

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_keys(cls, v: object) -> object:
        if isinstance(v, str):
            try:
                return json.loads(v) if v.strip() else []
            except ValueError as exc:
                raise ValueError(f"TALIX_API_KEYS is not a JSON list: {exc}") from None
        return v

    @field_validator("jwt_algorithms", mode="before")
    @classmethod
    def _parse_algorithms(cls, v: object) -> object:
        if isinstance(v, str):
            return [a.strip() for a in v.split(",") if a.strip()]
        return v

    @field_validator("jwt_algorithms")
    @classmethod
    def _known_algorithms(cls, v: list[str]) -> list[str]:
        allowed = {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384",
                   "PS512", "ES256", "ES384", "ES512", "EdDSA"}
        bad = [a for a in v if a not in allowed]
        if bad:
            raise ValueError(f"unsupported JWT algorithm(s) {bad}; 'none' is never accepted")
        return v

    @model_validator(mode="after")
    def _load_key_file(self) -> HttpSettings:
        if self.api_keys_file is not None:
            try:
                raw = json.loads(self.api_keys_file.read_text())
            except (OSError, ValueError) as exc:
                raise ValueError(f"TALIX_API_KEYS_FILE {self.api_keys_file}: {exc}") from None
            self.api_keys = [*self.api_keys, *(ApiKey.model_validate(k) for k in raw)]
        names = [k.name for k in self.api_keys]
        if len(names) != len(set(names)):
            raise ValueError("two API keys with one name")
        return self

    def serve_options(self) -> ServeOptions:
        """Options of the Serve ingress deployment (replicas, autoscaling, concurrency)."""
        options: ServeOptions = {
            "max_ongoing_requests": self.serve_max_ongoing_requests,
            "ray_actor_options": {"num_cpus": 0},
        }
        if self.serve_max_replicas and self.serve_max_replicas > self.serve_num_replicas:
            options["autoscaling_config"] = {
                "min_replicas": self.serve_num_replicas,
                "max_replicas": self.serve_max_replicas,
                "target_ongoing_requests": self.serve_target_ongoing_requests}
        else:
            options["num_replicas"] = self.serve_num_replicas
        return options


class ServeOptions(TypedDict, total=False):
    """Keyword arguments of ``serve.deployment`` that the settings decide."""

    max_ongoing_requests: int
    ray_actor_options: dict[str, object]
    autoscaling_config: dict[str, float]
    num_replicas: int


def hash_key(key: str) -> str:
    """The stored form of an API key."""
    import hashlib

    return _HASH_PREFIX + hashlib.sha256(key.encode()).hexdigest()
