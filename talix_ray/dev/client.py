"""A small client of a talix-ray HTTP API (what ``talix dev`` and demos call)."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

import httpx

from ..model.errors import TalixError


class ApiError(TalixError):
    """The API answered with an error (its problem+json title and detail) or not at all."""

    code = "api_error"


class ApiClient:
    """Authenticated calls to a talix-ray HTTP API at ``base_url`` with an API key."""

    def __init__(self, base_url: str, key: str, *, timeout: float = 60.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ApiError(f"{base_url!r} is not an http(s) URL")
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout,
                                 headers={"X-API-Key": key})

    def close(self) -> None:
        """Close the connections."""
        self.http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def call(self, method: str, path: str, **kw: Any) -> Any:
        """``method path`` (httpx keyword arguments): the JSON answer, or an
        :class:`ApiError` with the problem's title and detail."""
        try:
            r = self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise ApiError(f"{method} {self.base_url}{path}: {type(exc).__name__} "
                           f"({exc or 'no answer'})") from None
        if r.status_code >= 400:
            try:
                body = r.json()
                what = f"{body.get('title', '')}: {body.get('detail', '')}"
            except ValueError:
                what = r.text[:200]
            raise ApiError(f"{method} {path} answered {r.status_code} {what}".rstrip(": "))
        return r.json()

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until ``/healthz`` answers (Serve's replicas take a while to start)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.http.get("/healthz", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise ApiError(f"{self.base_url} did not answer /healthz in {timeout:.0f} s")
            time.sleep(0.5)
