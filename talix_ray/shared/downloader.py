"""An SSRF-safe downloader: http(s) only, public addresses only, size and time limits."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from ..model.errors import ValidationError


@dataclass(frozen=True, slots=True)
class DownloadedFile:
    """A fetched file."""

    content: bytes
    content_type: str
    name: str | None
    url: str


class Downloader:
    """Fetches URLs given by users without letting them reach internal networks.

    * only ``http``/``https``;
    * every address the host resolves to must be public — private, loopback, link-local,
      multicast, reserved and unspecified addresses are refused unless ``allow_private``
      (for development and tests on loopback);
    * redirects are followed by hand (at most ``max_redirects``), each hop checked again;
    * the body is streamed and cut at ``max_bytes``; the whole fetch is bounded by ``timeout``.
    """

    def __init__(self, *, max_bytes: int = 20 * 1024 * 1024, timeout: float = 20.0,
                 max_redirects: int = 5, allow_private: bool = False) -> None:
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.allow_private = allow_private

    async def fetch(self, url: object) -> DownloadedFile:
        """Download ``url``; :class:`ValidationError` for a refused URL or an oversized body."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._fetch(str(url))
        except TimeoutError:
            raise ValidationError(f"download of {url} took longer than {self.timeout}s") from None

    async def _fetch(self, url: str) -> DownloadedFile:
        async with httpx.AsyncClient(follow_redirects=False, timeout=self.timeout,
                                     trust_env=False) as client:
            for _ in range(self.max_redirects + 1):
                await self.check_url(url)
                async with client.stream("GET", url) as resp:
                    if resp.status_code in (301, 302, 303, 307, 308):
                        location = resp.headers.get("location")
                        if not location:
                            raise ValidationError(f"redirect without location from {url}")
                        url = urljoin(url, location)
                        continue
                    if resp.status_code >= 400:
                        raise ValidationError(f"download of {url} failed: HTTP {resp.status_code}")
                    declared = resp.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > self.max_bytes:
                        raise ValidationError(f"file at {url} is too large: {declared} bytes > "
                                              f"{self.max_bytes}")
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in resp.aiter_bytes():
                        size += len(chunk)
                        if size > self.max_bytes:
                            raise ValidationError(f"file at {url} is larger than "
                                                  f"{self.max_bytes} bytes")
                        chunks.append(chunk)
                    ctype = resp.headers.get("content-type", "application/octet-stream")
                    ctype = ctype.split(";")[0].strip().lower() or "application/octet-stream"
                    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or None
                    return DownloadedFile(b"".join(chunks), ctype, name, url)
        raise ValidationError(f"too many redirects fetching {url}")

    async def check_url(self, url: str) -> None:
        """Refuse a URL whose scheme or resolved addresses are not allowed."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValidationError(f"refused URL {url!r}: only http and https are allowed")
        host = parts.hostname
        if not host:
            raise ValidationError(f"refused URL {url!r}: no host")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port,
                                                                  type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ValidationError(f"refused URL {url!r}: cannot resolve {host}: {exc}") from None
        for info in infos:
            addr = ipaddress.ip_address(info[4][0])
            if not self.allow_private and not _is_public(addr):
                raise ValidationError(
                    f"refused URL {url!r}: {host} resolves to non-public address {addr}")


def _is_public(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return not (addr.is_private or addr.is_loopback or addr.is_link_local or addr.is_multicast
                or addr.is_reserved or addr.is_unspecified or not addr.is_global)
