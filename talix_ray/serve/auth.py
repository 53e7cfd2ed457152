"""Who is calling: API keys (kept as hashes) and JWT bearer tokens (pyjwt).

``X-API-Key: <key>`` or ``Authorization: Bearer <key>`` for API keys; ``Authorization:
Bearer <jwt>`` for tokens. A token must carry ``exp``; ``iss`` and ``aud`` are checked when
configured; only the configured algorithms are accepted, each with the matching kind of key
(an HMAC secret for HS*, public keys for the others), so no algorithm confusion is possible.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
from jwt.types import Options

from ..model.errors import Forbidden, Unauthenticated
from ..model.principal import Principal
from ..secrets import remember
from .settings import HttpSettings, hash_key

log = logging.getLogger("talix.http")
REALM = 'Bearer realm="talix"'
_HMAC = ("HS256", "HS384", "HS512")


class AuthError(Unauthenticated):
    """401 with the ``WWW-Authenticate`` challenge to send."""

    def __init__(self, message: str, challenge: str = REALM) -> None:
        super().__init__(message)
        self.challenge = challenge


class ScopeError(Forbidden):
    """403: the caller lacks scopes."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(f"missing scope(s): {' '.join(missing)}")
        self.challenge = f'{REALM}, error="insufficient_scope", scope="{" ".join(missing)}"'


class Authenticator:
    """Turns request headers into a :class:`Principal`, or refuses them."""

    def __init__(self, settings: HttpSettings) -> None:
        self._keys = {k.hash: k for k in settings.api_keys}
        self._settings = settings
        self._hmac_key = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        remember(settings.jwt_secret)  # redacted from dead letters and logged errors
        self._public_key = _read_public_key(settings.jwt_public_key)
        self._jwks = _read_jwks(settings.jwt_jwks_file)
        algs = settings.jwt_algorithms
        self._hmac_algs = [a for a in algs if a in _HMAC] if self._hmac_key else []
        self._public_algs = [a for a in algs if a not in _HMAC] \
            if (self._public_key is not None or self._jwks is not None) else []

    @property
    def configured(self) -> bool:
        """Whether any credential can succeed (otherwise every protected route is a 401)."""
        return bool(self._keys or self._hmac_algs or self._public_algs)

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """The caller; :class:`AuthError` (401) without valid credentials."""
        api_key = headers.get("x-api-key")
        if api_key is not None:
            return self._api_key(api_key)
        auth = headers.get("authorization")
        if auth is None:
            raise AuthError("credentials required: an API key (X-API-Key) or a bearer token")
        scheme, _, value = auth.strip().partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            raise AuthError("unsupported authorization scheme: use Bearer",
                            f'{REALM}, error="invalid_request"')
        if value.count(".") == 2:
            return self._jwt(value)
        return self._api_key(value)

    def _api_key(self, key: str) -> Principal:
        digest = hash_key(key)
        for stored, entry in self._keys.items():  # compare every entry in constant time
            if hmac.compare_digest(stored, digest):
                return Principal("api_key", entry.name, frozenset(entry.scopes))
        raise AuthError("invalid API key", f'{REALM}, error="invalid_token"')

    def _jwt(self, token: str) -> Principal:
        s = self._settings
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("malformed bearer token", f'{REALM}, error="invalid_token"') from None
        alg = header.get("alg")
        key: Any
        if alg in self._hmac_algs:
            key = self._hmac_key
        elif alg in self._public_algs:
            key = self._public_key
            if self._jwks is not None:
                kid = header.get("kid")
                matches = [k for k in self._jwks.keys if kid is None or k.key_id == kid]
                if not matches:
                    raise AuthError("unknown token key", f'{REALM}, error="invalid_token"')
                key = matches[0].key
        else:
            raise AuthError("token algorithm not accepted", f'{REALM}, error="invalid_token"')
        options: Options = {"require": ["exp"], "verify_aud": s.jwt_audience is not None,
                                   "verify_iss": s.jwt_issuer is not None}
        try:
            claims = jwt.decode(token, key, algorithms=[alg], audience=s.jwt_audience,
                                issuer=s.jwt_issuer, leeway=s.jwt_leeway, options=options)
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired", f'{REALM}, error="invalid_token"') from None
        except jwt.PyJWTError as exc:
            log.info("bearer token refused: %s", exc)
            raise AuthError("invalid token", f'{REALM}, error="invalid_token"') from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise AuthError("token without a subject", f'{REALM}, error="invalid_token"')
        return Principal("jwt", subject[:256], _scopes(claims.get(s.jwt_scope_claim)), claims)


def check_scopes(principal: Principal, required: tuple[str, ...]) -> None:
    """403 unless ``principal`` holds every scope in ``required``."""
    missing = principal.missing_scopes(required)
    if missing:
        raise ScopeError(missing)


def _scopes(value: object) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list | tuple):
        return frozenset(str(v) for v in value)
    return frozenset()


def _read_public_key(value: str | None) -> str | None:
    if not value:
        return None
    if "-----BEGIN" in value:
        return value
    return Path(value).read_text()


def _read_jwks(path: Path | None) -> jwt.PyJWKSet | None:
    if path is None:
        return None
    return jwt.PyJWKSet.from_dict(json.loads(path.read_text()))
