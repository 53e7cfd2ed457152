"""An SSRF-safe downloader for URLs given by users.

Every hop (the URL and each redirect) is parsed, its host resolved once, and every address
checked against :mod:`~talix_ray.shared.netpolicy`; the connection then goes to the address
that was checked — the network layer is pinned to it, whatever the URL's host resolves to
later (no DNS rebinding) — while the ``Host`` header, TLS server name and certificate check
use the URL's host. Bodies are never decoded: the request asks for ``identity`` and a response
with a ``Content-Encoding`` is refused, so the size limit holds on the bytes kept.

The caller learns one thing, ``URL not allowed`` (:class:`UrlNotAllowed`, HTTP 422), whatever
the reason — a refused address, a name that does not resolve, credentials in the URL, an
upstream error, a timeout — so that the answer reveals nothing about internal networks; the
reason goes to the log (logger ``talix.downloader``: WARNING for a refused address, INFO for
the rest). The one other answer is :class:`FileTooLarge`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote

import httpcore
import httpx

from ..model.errors import TalixError, ValidationError
from .filenames import safe_file_name
from .netpolicy import AddressPolicy, IPAddress, IPNetwork

log = logging.getLogger("talix.downloader")

_REDIRECTS = {301, 302, 303, 307, 308}
_USER_AGENT = b"talix-ray-downloader"


class UrlNotAllowed(ValidationError):
    """A download was refused; the reason is in the server log, not in this error."""

    code = "url_not_allowed"

    def __init__(self) -> None:
        super().__init__("URL not allowed")


class FileTooLarge(ValidationError):
    """The file is larger than the downloader's limit."""

    code = "file_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"file too large: more than {limit} bytes")


@dataclass(frozen=True, slots=True)
class DownloadedFile:
    """A fetched file; ``name`` is the last segment of the final URL's path, made safe
    (:func:`~talix_ray.shared.filenames.safe_file_name`)."""

    content: bytes
    content_type: str
    name: str | None
    url: str


class Resolver(Protocol):
    """Turns a host name into the addresses to check and connect to."""

    async def resolve(self, host: str, port: int) -> Sequence[str]:
        """The addresses of ``host``, in the order to try them."""
        ...


class SystemResolver:
    """The operating system's resolver (``getaddrinfo``)."""

    async def resolve(self, host: str, port: int) -> Sequence[str]:
        """The addresses of ``host`` for a TCP connection."""
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        return [str(info[4][0]) for info in infos]


class _Refused(Exception):
    """Internal: why a download is refused (logged, never shown to the caller)."""

    def __init__(self, reason: str, *, address: bool = False) -> None:
        super().__init__(reason)
        self.address = address


@dataclass(frozen=True)
class _Target:
    url: httpx.URL
    host: str  # ASCII (IDNA) host, no brackets
    port: int
    address: IPAddress  # where the connection goes: checked, then pinned


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """A network backend that connects to one checked address, whatever host it is asked
    for; TLS (started by httpcore afterwards) still uses the URL's host name."""

    def __init__(self, address: IPAddress, port: int) -> None:
        self._address = str(address)
        self._port = port
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None
                          ) -> httpcore.AsyncNetworkStream:
        return await self._inner.connect_tcp(self._address, self._port, timeout=timeout,
                                             local_address=local_address,
                                             socket_options=socket_options)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None
                                  ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class Downloader:
    """Fetches URLs given by users without letting them reach internal networks.

    * ``http``/``https`` only, no credentials in the URL, ports 1-65535;
    * every address the host resolves to must be public (:mod:`.netpolicy`: an explicit list
      of non-public IPv4 and IPv6 ranges) or inside a network of ``allow`` (for development,
      e.g. ``allow=["127.0.0.1/32"]`` for a local file server);
    * the connection goes to the address that was checked (no second resolution);
    * redirects are followed by hand (at most ``max_redirects``), each hop checked and pinned;
    * no content encoding (the body's bytes are the file's), at most ``max_bytes``; the whole
      fetch is bounded by ``timeout``;
    * ``resolver``: how host names are resolved (the system's by default; tests inject one).
    """

    def __init__(self, *, max_bytes: int = 20 * 1024 * 1024, timeout: float = 20.0,
                 max_redirects: int = 5, allow: Iterable[str | IPNetwork] = (),
                 resolver: Resolver | None = None) -> None:
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.policy = AddressPolicy.of(allow)
        self.resolver: Resolver = resolver or SystemResolver()
        self._ssl: ssl.SSLContext | None = None

    async def fetch(self, url: object) -> DownloadedFile:
        """Download ``url``: :class:`UrlNotAllowed` for any refusal or failure,
        :class:`FileTooLarge` above ``max_bytes``."""
        shown = _for_log(url)
        try:
            async with asyncio.timeout(self.timeout):
                return await self._fetch(str(url))
        except FileTooLarge:
            log.info("download of %s refused: larger than %d bytes", shown, self.max_bytes)
            raise
        except _Refused as exc:
            (log.warning if exc.address else log.info)("download of %s refused: %s", shown, exc)
        except TimeoutError:
            log.info("download of %s refused: took longer than %ss", shown, self.timeout)
        except TalixError:
            raise
        except Exception as exc:  # httpcore, TLS, socket and parsing errors alike
            log.info("download of %s failed: %s: %s", shown, type(exc).__name__,
                     _for_log(str(exc)))
        raise UrlNotAllowed()

    async def check_url(self, url: str) -> None:
        """Refuse a URL whose scheme, form or addresses are not allowed
        (:class:`UrlNotAllowed`, reason logged); connects to nothing."""
        try:
            await self._target(str(url))
        except _Refused as exc:
            (log.warning if exc.address else log.info)("URL %s refused: %s", _for_log(url),
                                                       exc)
            raise UrlNotAllowed() from None

    # -- internals ---------------------------------------------------------------------------
    async def _fetch(self, url: str) -> DownloadedFile:
        for _ in range(self.max_redirects + 1):
            target = await self._target(url)
            async with httpcore.AsyncConnectionPool(
                    ssl_context=self._ssl_context(), max_connections=1, http1=True, http2=False,
                    retries=0, network_backend=_PinnedBackend(target.address, target.port)
            ) as pool, pool.stream("GET", _core_url(target), headers=_headers(target),
                                   extensions={"timeout": self._timeouts()}) as resp:
                headers = httpx.Headers(resp.headers)
                if resp.status in _REDIRECTS:
                    location = headers.get("location")
                    if not location:
                        raise _Refused(f"HTTP {resp.status} without a location")
                    url = str(target.url.join(location))
                    continue
                if resp.status != 200:
                    raise _Refused(f"HTTP {resp.status}")
                return await self._read(target, headers, resp)
        raise _Refused(f"more than {self.max_redirects} redirects")

    async def _read(self, target: _Target, headers: httpx.Headers,
                    resp: httpcore.Response) -> DownloadedFile:
        for value in headers.get_list("content-encoding", split_commas=True):
            if value.strip().lower() not in ("", "identity"):
                raise _Refused(f"encoded body ({value.strip()[:40]}) refused")
        declared = headers.get("content-length")
        if declared is not None and declared.strip().isdigit() \
                and int(declared) > self.max_bytes:
            raise FileTooLarge(self.max_bytes)
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.aiter_stream():
            size += len(chunk)
            if size > self.max_bytes:
                raise FileTooLarge(self.max_bytes)
            chunks.append(chunk)
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        raw_name = target.url.raw_path.split(b"?", 1)[0].rsplit(b"/", 1)[-1]
        name = safe_file_name(unquote(raw_name.decode("ascii", "replace")))
        return DownloadedFile(b"".join(chunks), ctype or "application/octet-stream", name,
                              str(target.url))

    async def _target(self, url: str) -> _Target:
        """Parse and check one hop; the address to connect to."""
        try:
            parsed = httpx.URL(url)
            raw_host = parsed.raw_host.decode("ascii")
            port = parsed.port
        except Exception as exc:  # InvalidURL, UnicodeError, TypeError…
            raise _Refused(f"unparsable URL ({type(exc).__name__})") from None
        if parsed.scheme not in ("http", "https"):
            raise _Refused(f"scheme {parsed.scheme[:20]!r} (only http and https)")
        if parsed.userinfo:
            raise _Refused("credentials in the URL")
        if not raw_host:
            raise _Refused("no host")
        port = port if port is not None else (443 if parsed.scheme == "https" else 80)
        if not 0 < port < 65536:
            raise _Refused(f"port {port}")
        try:
            literal: IPAddress | None = ipaddress.ip_address(raw_host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses: list[IPAddress] = [literal]
        else:
            try:
                answers = await self.resolver.resolve(raw_host, port)
                addresses = [ipaddress.ip_address(a) for a in answers]
            except Exception as exc:  # no such name, resolver failure, odd answer
                raise _Refused(f"{raw_host} does not resolve ({type(exc).__name__})") from None
        if not addresses:
            raise _Refused(f"{raw_host} has no address")
        for address in addresses:  # every answer must be allowed, not just the first
            why = self.policy.refusal(address)
            if why is not None:
                raise _Refused(f"{raw_host} resolves to a refused address: {why}",
                               address=True)
        return _Target(parsed, raw_host, port, addresses[0])

    def _timeouts(self) -> dict[str, float]:
        return {"connect": self.timeout, "read": self.timeout, "write": self.timeout,
                "pool": self.timeout}

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()  # certifi's CAs, hostname checking on
        return self._ssl


def _core_url(target: _Target) -> httpcore.URL:
    """The request line's URL built from the checked parts (no second parser involved)."""
    return httpcore.URL(scheme=target.url.raw_scheme, host=target.host.encode("ascii"),
                        port=target.port, target=target.url.raw_path)


def _headers(target: _Target) -> list[tuple[bytes, bytes]]:
    host = f"[{target.host}]" if ":" in target.host else target.host
    default = 443 if target.url.scheme == "https" else 80
    if target.port != default:
        host = f"{host}:{target.port}"
    return [(b"Host", host.encode("ascii")), (b"Accept", b"*/*"),
            (b"Accept-Encoding", b"identity"), (b"User-Agent", _USER_AGENT),
            (b"Connection", b"close")]


def _for_log(url: object) -> str:
    """A URL for the log: no credentials, no query, bounded."""
    text = str(url)
    try:
        u = httpx.URL(text)
        if u.userinfo:
            u = u.copy_with(username=None, password=None)
        text = str(u.copy_with(query=None, fragment=None))
    except Exception:
        text = text.split("?", 1)[0]
        if "@" in text:
            text = "(a URL with credentials)"
    return repr(text[:300])


__all__ = ["DownloadedFile", "Downloader", "FileTooLarge", "Resolver", "SystemResolver",
           "UrlNotAllowed"]
