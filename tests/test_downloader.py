"""The SSRF corpus: the real Downloader against test servers on loopback, with a connect guard
that fails the test on any attempt to connect outside loopback.

Two loopback addresses play two roles: the "outside world" is a server on 127.0.0.2, which the
downloaders here allow explicitly (``allow=["127.0.0.2/32"]``); the "internal secret" is a
server on 127.0.0.1 (refused, as loopback), listening on the same port, that counts every
request it gets — it must get none. Host names go through a fake resolver (the injectable
part), which also plays the DNS-rebinding attacker.
"""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import logging
import socket
import threading
import time
import tracemalloc
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from talix_ray import ConfigurationError, ValidationError
from talix_ray.shared import Downloader, FileTooLarge, UrlNotAllowed
from talix_ray.shared.netpolicy import DENIED_V4, DENIED_V6, AddressPolicy, denial

PUBLIC_IP = "127.0.0.2"  # stands for a public address: allowed by the downloaders below
SECRET = b"internal-only secret"
PUBLIC = b"public file contents"


# -- the connect guard --------------------------------------------------------------------------
def _is_loopback(host: str) -> bool:
    try:
        addr = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


@pytest.fixture(autouse=True)
def connect_guard(monkeypatch):
    """Every socket connect in this module: outside loopback it is recorded (the test fails)
    and refused before a packet leaves."""
    attempts: list[object] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def check(sock: socket.socket, address: object) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0] if isinstance(address, tuple) else str(address)
            if not _is_loopback(str(host)):
                attempts.append(address)
                raise ConnectionRefusedError(f"connect guard: {address} is not loopback")

    def connect(sock, address):
        check(sock, address)
        return real_connect(sock, address)

    def connect_ex(sock, address):
        check(sock, address)
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield attempts
    assert attempts == [], f"connections outside loopback were attempted: {attempts}"


def test_the_connect_guard_catches_a_connection_outside_loopback(connect_guard):
    with pytest.raises(ConnectionRefusedError), socket.socket() as s:
        s.connect(("192.0.2.1", 80))
    assert connect_guard == [("192.0.2.1", 80)]
    connect_guard.clear()  # seen: this test's own probe


# -- test servers --------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    routes: dict[str, object] = {}
    hits: Counter[str] = Counter()

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              length: bool = True) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Secret(_Handler):
    def do_GET(self) -> None:
        type(self).hits[self.path] += 1
        self._send(200, SECRET, {"Content-Type": "text/plain"})


class _Public(_Handler):
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        q = parse_qs(url.query)
        path = url.path
        if path == "/r":  # redirect to ?to=
            self._send(302, headers={"Location": q["to"][0]})
        elif path == "/loop":
            self._send(302, headers={"Location": "/loop"})
        elif path == "/file.txt" or path.startswith("/name/"):
            self._send(200, PUBLIC, {"Content-Type": "text/plain; charset=utf-8"})
        elif path == "/status":
            self._send(int(q["code"][0]), b"x", {"Content-Type": "text/plain"})
        elif path == "/encoded":  # a body with Content-Encoding: ?ce= (gzip of PUBLIC)
            self._send(200, gzip.compress(PUBLIC), {"Content-Encoding": q["ce"][0],
                                                    "Content-Type": "text/plain"})
        elif path == "/identity":
            self._send(200, PUBLIC, {"Content-Encoding": "identity"})
        elif path == "/bomb":  # 64 MiB of zeros, gzipped twice: ~ a few hundred bytes
            self._send(200, BOMB, {"Content-Encoding": "gzip, gzip",
                                   "Content-Type": "application/octet-stream"})
        elif path == "/big":  # declared length over the limit
            self._send(200, b"x" * 5000, {"Content-Type": "text/plain"})
        elif path == "/big-chunked":  # no length: the limit holds on the bytes read
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:  # the client hangs up at its limit
                for _ in range(10):
                    self.wfile.write(b"400\r\n" + b"y" * 1024 + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass
        elif path == "/te-gzip":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "gzip, chunked")
            self.end_headers()
            body = gzip.compress(PUBLIC)
            self.wfile.write(f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
        elif path == "/slow":  # a drip, one byte at a time: the whole fetch has a deadline
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            try:
                for _ in range(1000):
                    self.wfile.write(b"z")
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                pass
        elif path == "/hang":  # never answers
            time.sleep(3)
        elif path == "/cut":  # promises more than it sends, then closes
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"short")
            self.close_connection = True
        elif path == "/bad-type":
            self._send(200, PUBLIC, {"Content-Type": "text/<script>"})
        else:
            self._send(404, b"", {"Content-Type": "text/plain"})


def _gzip_bomb() -> bytes:
    zeros = b"\0" * (1 << 20)
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    once = b"".join(c.compress(zeros) for _ in range(64)) + c.flush()
    return gzip.compress(once, 9)


BOMB = _gzip_bomb()


class _Servers:
    def __init__(self) -> None:
        _Secret.hits = Counter()
        self.secret = ThreadingHTTPServer(("127.0.0.1", 0), _Secret)
        self.port = self.secret.server_address[1]
        self.public = ThreadingHTTPServer((PUBLIC_IP, self.port), _Public)  # same port
        for s in (self.secret, self.public):
            s.daemon_threads = True
            threading.Thread(target=s.serve_forever, daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://{PUBLIC_IP}:{self.port}"

    @property
    def secret_hits(self) -> int:
        return sum(_Secret.hits.values())

    def close(self) -> None:
        for s in (self.secret, self.public):
            s.shutdown()
            s.server_close()


@pytest.fixture(scope="module")
def servers():
    s = _Servers()
    yield s
    s.close()


@pytest.fixture
def no_secret_leaves(servers):
    before = servers.secret_hits
    yield
    assert servers.secret_hits == before, "the internal server was reached"


class FakeResolver:
    """Names of the corpus; ``rebind*`` names answer 127.0.0.2 first and 127.0.0.1 after."""

    def __init__(self) -> None:
        self.queries: Counter[str] = Counter()

    async def resolve(self, host: str, port: int) -> list[str]:
        self.queries[host] += 1
        if host.startswith("rebind"):
            return [PUBLIC_IP] if self.queries[host] == 1 else ["127.0.0.1"]
        table = {
            "public.test": [PUBLIC_IP],
            "mixed.test": [PUBLIC_IP, "127.0.0.1"],  # one bad answer is enough to refuse
            "internal.test": ["10.1.2.3"],
            "metadata.test": ["169.254.169.254"],
            "v6loop.test": ["::1"],
            "mapped.test": ["::ffff:127.0.0.1"],
            "sixtofour.test": ["2002:7f00:1::1"],
            "empty.test": [],
            "garbage.test": ["not-an-address"],
        }
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]


class NoDnsResolver:
    """The system's resolver without DNS (this machine's name server is off loopback):
    numeric hosts in every spelling the C library parses, and ``localhost`` from /etc/hosts."""

    async def resolve(self, host: str, port: int) -> list[str]:
        loop = asyncio.get_running_loop()
        flags = 0 if host.lower() == "localhost" else socket.AI_NUMERICHOST
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=flags)
        return [str(i[4][0]) for i in infos]


def _downloader(**kw: object) -> Downloader:
    return Downloader(**{"allow": [f"{PUBLIC_IP}/32"], "resolver": FakeResolver(),
                         "timeout": 5.0, "max_bytes": 4096, **kw})


async def _refused(dl: Downloader, url: str) -> None:
    with pytest.raises(UrlNotAllowed) as info:
        await dl.fetch(url)
    err = info.value
    assert str(err) == "URL not allowed" and err.status == 422
    assert err.to_problem()["detail"] == "URL not allowed"


# -- the corpus ----------------------------------------------------------------------------------
LOOPBACK_SPELLINGS = [
    "127.0.0.1", "127.1", "127.0.1", "2130706433", "0x7f000001", "0x7f.0.0.1", "0x7f.1",
    "0177.0.0.1", "017700000001", "0177.1", "127.000.000.001", "127.255.255.254",
    "localhost", "localhost.", "LOCALHOST", "[::1]", "[0:0:0:0:0:0:0:1]",
    "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::127.0.0.1]", "[0000::1]", "0", "0.0.0.0",
    "[::]", "%31%32%37.0.0.1", "127.0.0.1.nip.io",
]


def _one_address(net: str) -> str:
    n = ipaddress.ip_network(net)
    return str(n.network_address + (1 if n.num_addresses > 2 else 0))


RANGE_ADDRESSES = [_one_address(n) for n in [*DENIED_V4, *DENIED_V6]] + [
    "10.255.255.255", "172.31.255.254", "192.168.255.255", "100.127.255.254",
    "169.254.169.254", "255.255.255.255", "224.0.0.251", "239.255.255.250",
    "2002:a00:1::1", "2002:7f00:1::1", "2001:0:4136:e378:8000:63bf:80ff:fffe",
    "64:ff9b::7f00:1", "64:ff9b::a00:1", "64:ff9b:1::a00:1", "fd00:ec2::254",
    "fe80::1", "fec0::1", "ff02::1", "4000::1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
]


def _url(host: str, port: int, path: str = "/secret") -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}{path}"


NOT_HTTP = ["file:///etc/passwd", "ftp://example.com/x", "gopher://127.0.0.1:70/x",
            "dict://127.0.0.1:11211/stat", "ldap://127.0.0.1/x", "ws://127.0.0.1/x",
            "data:text/plain,hello", "javascript:alert(1)", "jar:http://x/y!/z", "//x/y",
            "/relative", ""]


def test_the_corpus_is_large_enough():
    direct = len(LOOPBACK_SPELLINGS) + len(RANGE_ADDRESSES) + len(NOT_HTTP)
    assert direct + len(REDIRECT_TARGETS) + len(CREDENTIALS) + len(MALFORMED) >= 60


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
async def test_loopback_in_every_spelling_is_refused(host, servers, no_secret_leaves):
    await _refused(Downloader(timeout=5.0, resolver=NoDnsResolver()), _url(host, servers.port))


@pytest.mark.parametrize("address", RANGE_ADDRESSES)
async def test_every_private_and_special_range_is_refused(address, servers, no_secret_leaves):
    await _refused(_downloader(), _url(address, servers.port))
    assert denial(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("url", NOT_HTTP)
async def test_schemes_other_than_http_are_refused(url, no_secret_leaves):
    await _refused(_downloader(), url)


CREDENTIALS = ["http://user:pass@{pub}/file.txt", "http://user@{pub}/file.txt",
               "http://:pass@{pub}/file.txt", "http://user:pass%40x@{pub}/file.txt"]


@pytest.mark.parametrize("template", CREDENTIALS)
async def test_credentials_in_urls_are_refused_and_never_echoed(template, servers, caplog):
    url = template.format(pub=f"{PUBLIC_IP}:{servers.port}")
    with caplog.at_level(logging.INFO, logger="talix.downloader"):
        await _refused(_downloader(), url)
    assert "credentials" in caplog.text
    assert "pass" not in caplog.text and "user" not in caplog.text


MALFORMED = ["http://{pub_host}:99999/file.txt", "http://{pub_host}:0/file.txt", "http:///x",
             "http://[::1/x", "http://exa mple.test/x", "http://①②⑦.0.0.1/", "not a url",
             "http://empty.test/", "http://garbage.test/", "http://nowhere.test/"]


@pytest.mark.parametrize("template", MALFORMED)
async def test_malformed_urls_and_unresolvable_names_are_refused_alike(template):
    await _refused(_downloader(), template.format(pub_host=PUBLIC_IP))


REDIRECT_TARGETS = [
    *(_url(h, 0) for h in ["127.0.0.1", "2130706433", "[::1]", "localhost", "0.0.0.0"]),
    "http://10.0.0.1/", "http://172.16.0.1/", "http://192.168.1.1/", "http://100.64.0.1/",
    "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://[fd00::1]/",
    "http://[::ffff:127.0.0.1]/", "http://[2002:7f00:1::]/", "http://[64:ff9b::7f00:1]/",
    "http://[2001::1]/", "http://224.0.0.1/", "http://240.0.0.1/", "http://198.18.0.1/",
    "http://internal.test/", "http://metadata.test/", "http://v6loop.test/",
    "http://mapped.test/", "http://sixtofour.test/", "http://mixed.test/",
    "file:///etc/passwd", "gopher://127.0.0.1/x", "http://user:pass@public.test/file.txt",
]


@pytest.mark.parametrize("target", REDIRECT_TARGETS)
async def test_redirects_into_refused_targets_are_refused(target, servers, no_secret_leaves):
    target = target.replace(":0/", f":{servers.port}/")
    await _refused(_downloader(), f"{servers.base}/r?to={quote(target, safe='')}")


async def test_an_allowed_redirect_chain_is_followed_and_a_loop_is_cut(servers):
    dl = _downloader()
    inner = quote(f"http://public.test:{servers.port}/file.txt", safe="")
    got = await dl.fetch(f"{servers.base}/r?to={quote(f'/r?to={inner}', safe='')}")
    assert got.content == PUBLIC and got.name == "file.txt"
    assert got.content_type == "text/plain"
    await _refused(dl, f"{servers.base}/loop")


async def test_dns_rebinding_cannot_reach_the_internal_server(servers, no_secret_leaves):
    resolver = FakeResolver()
    dl = _downloader(resolver=resolver)
    got = await dl.fetch(f"http://rebind.test:{servers.port}/file.txt")
    assert got.content == PUBLIC  # the address that was checked, not the second answer
    assert resolver.queries["rebind.test"] == 1  # resolved once: nobody resolves it again
    # a redirect hop is resolved, checked and pinned like the first one
    got = await dl.fetch(f"{servers.base}/r?to="
                         + quote(f"http://rebind-hop.test:{servers.port}/file.txt", safe=""))
    assert got.content == PUBLIC and resolver.queries["rebind-hop.test"] == 1
    # the second answer, asked for directly, is refused
    await _refused(dl, f"http://rebind.test:{servers.port}/file.txt")


async def test_a_name_with_any_refused_answer_is_refused(servers, no_secret_leaves):
    await _refused(_downloader(), f"http://mixed.test:{servers.port}/file.txt")


async def test_a_failed_tls_handshake_is_a_refusal(servers):
    # https to a plain-HTTP server: the handshake fails (mapped, not leaked); the pinned
    # connection went to the checked address only (the guard watches)
    await _refused(_downloader(), f"https://public.test:{servers.port}/file.txt")


# -- bodies ------------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["gzip", "x-gzip", "deflate", "br", "zstd", "gzip, gzip",
                                      "identity, gzip", "GZIP"])
async def test_encoded_bodies_are_refused(encoding, servers):
    await _refused(_downloader(), f"{servers.base}/encoded?ce={quote(encoding)}")


async def test_identity_encoding_is_accepted(servers):
    assert (await _downloader().fetch(f"{servers.base}/identity")).content == PUBLIC


async def test_a_stacked_gzip_bomb_is_never_decoded(servers):
    assert len(BOMB) < 100_000  # 64 MiB once decoded
    dl = _downloader(max_bytes=20 * 1024 * 1024)
    tracemalloc.start()
    try:
        started = time.monotonic()
        await _refused(dl, f"{servers.base}/bomb")
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"{peak} bytes allocated: the bomb was decoded"
    assert elapsed < 2.0


async def test_the_size_limit_holds_with_and_without_a_declared_length(servers):
    for path in ("/big", "/big-chunked"):
        with pytest.raises(FileTooLarge, match="more than 4096 bytes"):
            await _downloader().fetch(f"{servers.base}{path}")


async def test_transfer_encodings_other_than_chunked_are_refused(servers):
    await _refused(_downloader(), f"{servers.base}/te-gzip")


async def test_slow_and_silent_servers_hit_the_deadline(servers):
    for path in ("/slow", "/hang"):
        started = time.monotonic()
        await _refused(_downloader(timeout=1.0, max_bytes=100_000), f"{servers.base}{path}")
        assert time.monotonic() - started < 2.5


@pytest.mark.parametrize("code", [204, 206, 300, 304, 400, 401, 403, 404, 418, 500, 502, 503])
async def test_upstream_statuses_are_not_echoed(code, servers):
    await _refused(_downloader(), f"{servers.base}/status?code={code}")


async def test_transport_errors_become_talix_errors(servers):
    with socket.socket() as s:  # a port with nobody listening
        s.bind((PUBLIC_IP, 0))
        closed = s.getsockname()[1]
    for url in (f"http://{PUBLIC_IP}:{closed}/x", f"{servers.base}/cut"):
        await _refused(_downloader(), url)


async def test_a_refusal_says_nothing_but_the_reason_is_logged(servers, caplog):
    dl = _downloader()
    with caplog.at_level(logging.INFO, logger="talix.downloader"):
        errors = []
        for url in (f"http://internal.test:{servers.port}/x", "http://nowhere.test/x",
                    f"{servers.base}/status?code=404", f"http://127.0.0.1:{servers.port}/"):
            with pytest.raises(ValidationError) as info:
                await dl.fetch(url)
            errors.append((type(info.value), str(info.value), info.value.to_problem()))
    assert len(set(map(str, errors))) == 1  # indistinguishable to the caller
    assert "10.1.2.3" in caplog.text and "private" in caplog.text  # the server knows why
    assert "does not resolve" in caplog.text and "HTTP 404" in caplog.text
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # refused addresses are warnings; the rest is INFO


async def test_downloaded_names_are_sanitized(servers):
    dl = _downloader()
    for raw, expected in [("%E2%80%AEfdp.exe", "fdp.exe"),  # right-to-left override
                          ("a%0D%0ASet-Cookie:x.txt", "aSet-Cookie_x.txt"),
                          ("..%2F..%2Fetc%2Fpasswd", "_.._etc_passwd"), ("%00", None),
                          ("x" * 300 + ".pdf", "x" * 196 + ".pdf")]:
        got = await dl.fetch(f"{servers.base}/name/{raw}")
        assert got.name == expected, raw


# -- the address policy --------------------------------------------------------------------
@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700::1111",
                                     "2a00:1450:4001:81c::200e", "2001:4860:4860::8888"])
def test_public_addresses_are_allowed(address):
    assert AddressPolicy().refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("net", [*DENIED_V4, *DENIED_V6])
def test_every_listed_range_is_denied_at_both_ends(net):
    n = ipaddress.ip_network(net)
    for address in (n.network_address, n.broadcast_address):
        assert denial(address) is not None


def test_6to4_is_denied_whatever_python_thinks():
    embedded = ipaddress.ip_address("2002:7f00:1::1")  # 6to4 of 127.0.0.1
    assert denial(embedded) is not None  # is_global was True for it on Python 3.11


def test_the_allow_list_is_narrow_and_checked():
    policy = AddressPolicy.of(["127.0.0.1/32"])
    assert policy.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert policy.refusal(ipaddress.ip_address("127.0.0.2")) is not None
    assert policy.refusal(ipaddress.ip_address("::1")) is not None
    for bad in (["127.0.0.1/8"], ["localhost"], "127.0.0.1/32", [object()]):
        with pytest.raises(ConfigurationError):
            Downloader(allow=bad)  # type: ignore[arg-type]


async def test_check_url_connects_to_nothing(servers, no_secret_leaves):
    dl = _downloader()
    await dl.check_url(f"{servers.base}/file.txt")
    with pytest.raises(UrlNotAllowed):
        await dl.check_url(f"http://127.0.0.1:{servers.port}/secret")
