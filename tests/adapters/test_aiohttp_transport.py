"""AiohttpTransport against real servers on 127.0.0.1.

aiohttp.web servers (pytest-aiohttp's ``aiohttp_server``) for well-behaved HTTP, and
raw asyncio protocols for what no web framework will do on purpose: never answer,
trickle a body, send garbage, cut a body short, or never even accept the connection.
The raw servers are callback protocols, so they add no tasks to the loop and the
leak checks can demand that none is left at all.
"""

from __future__ import annotations

import asyncio
import datetime
import gc
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appusers.adapters import AiohttpTransport
from appusers.adapters._aiohttp import MAX_REDIRECTS
from appusers.adapters._loopback import is_loopback
from appusers.adapters.transport_contract import (
    CANARY,
    LoopbackTransportContract,
)
from appusers.errors import AppClosedError, InvalidArgumentError, RequestTimeoutError, TransportError
from appusers.transport import Request, Transport

AiohttpServer = Callable[..., Awaitable[Any]]
TIMEOUT = 0.5  # short enough for a fast suite, long enough that +10 % is 50 ms of slack


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ReferenceTimer:
    """A plain event-loop timer due when the timeout under test is. On a loaded machine the loop
    runs every timer late; how late this one ran is the machine's delay, not the transport's,
    so it is allowed on top of the 10 % (on an idle machine it is ~0)."""

    def __init__(self, configured: float) -> None:
        self.configured = configured
        self.begun = time.monotonic()
        self.fired: float | None = None
        self._handle = asyncio.get_running_loop().call_later(configured, self._fire)

    def _fire(self) -> None:
        self.fired = time.monotonic()

    def assert_within_ten_percent(self) -> None:
        elapsed = time.monotonic() - self.begun
        self._handle.cancel()
        late = 0.0 if self.fired is None else max(0.0, self.fired - self.begun - self.configured)
        configured = self.configured
        assert configured - 0.01 <= elapsed <= configured * 1.1 + late, (
            f"{elapsed:.3f} s for a {configured} s timeout (the loop ran timers {late:.3f} s late)"
        )


def other_tasks() -> set[asyncio.Task[Any]]:
    current = asyncio.current_task()
    return {task for task in asyncio.all_tasks() if task is not current}


@pytest.fixture
async def transport() -> AsyncIterator[AiohttpTransport]:
    async with AiohttpTransport() as transport:
        yield transport


# -- the contract -------------------------------------------------------------------


class TestAiohttpTransport(LoopbackTransportContract):
    TIMEOUT = TIMEOUT

    def make_transport(self) -> Transport:
        return AiohttpTransport()


# -- raw servers for misbehaviour -----------------------------------------------------


class RawConnection(asyncio.Protocol):
    """One accepted connection; ``behaviour`` decides what to do with the request."""

    def __init__(self, behaviour: Callable[[RawConnection], None], record: RawServer) -> None:
        self.behaviour = behaviour
        self.record = record
        self.received = bytearray()
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.answered = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.record.connections.append(self)

    def data_received(self, data: bytes) -> None:
        self.received += data
        if b"\r\n\r\n" in self.received and not self.answered:
            self.answered = True
            self.record.got_request.set()
            self.behaviour(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.record.closed_by_client.set()

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        if not self.transport.is_closing():
            self.transport.write(data)

    def trickle(self, interval: float) -> None:
        """Send one more byte every ``interval`` seconds, forever."""
        self.write(b"x")
        self.timer = asyncio.get_running_loop().call_later(interval, self.trickle, interval)


class RawServer:
    def __init__(self) -> None:
        self.connections: list[RawConnection] = []
        self.got_request = asyncio.Event()
        self.closed_by_client = asyncio.Event()
        self.url = ""


RawServerFactory = Callable[[Callable[[RawConnection], None]], Awaitable[RawServer]]


@pytest.fixture
async def raw_server() -> AsyncIterator[RawServerFactory]:
    servers: list[tuple[asyncio.Server, RawServer]] = []

    async def start(behaviour: Callable[[RawConnection], None]) -> RawServer:
        record = RawServer()
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: RawConnection(behaviour, record), "127.0.0.1", 0)
        record.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        servers.append((server, record))
        return record

    yield start
    for server, record in servers:
        server.close()
        for connection in record.connections:
            if connection.timer is not None:
                connection.timer.cancel()
            if connection.transport is not None:
                connection.transport.abort()
        await server.wait_closed()


def never_answer(connection: RawConnection) -> None:
    pass


# -- timeouts (reliability R2) --------------------------------------------------------


async def test_headers_never_sent_times_out_within_ten_percent(
    transport: AiohttpTransport, raw_server: RawServerFactory
) -> None:
    server = await raw_server(never_answer)
    reference = ReferenceTimer(TIMEOUT)
    with pytest.raises(RequestTimeoutError, match=r"GET http://127\.0\.0\.1:\d+/slow timed out after 0\.5 s"):
        await transport.send(Request("GET", f"{server.url}/slow", timeout=TIMEOUT))
    reference.assert_within_ten_percent()


async def test_trickled_body_times_out_within_ten_percent(
    transport: AiohttpTransport, raw_server: RawServerFactory
) -> None:
    def trickle(connection: RawConnection) -> None:
        connection.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
        connection.trickle(0.02)  # every read succeeds: only a total deadline stops this

    server = await raw_server(trickle)
    reference = ReferenceTimer(TIMEOUT)
    with pytest.raises(RequestTimeoutError):
        await transport.send(Request("GET", f"{server.url}/trickle", timeout=TIMEOUT))
    reference.assert_within_ten_percent()


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A URL whose TCP connect never completes: a listener with a full accept queue
    drops further SYNs, the loopback equivalent of a firewalled host."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(filler)
    time.sleep(0.05)  # let the kernel settle the fillers into the queue
    yield f"http://127.0.0.1:{port}"
    for filler in fillers:
        filler.close()
    listener.close()


async def test_black_holed_connect_times_out_within_ten_percent(black_hole: str) -> None:
    async with AiohttpTransport(timeout=TIMEOUT) as transport:  # the transport default this time
        reference = ReferenceTimer(TIMEOUT)
        with pytest.raises(RequestTimeoutError):
            await transport.send(Request("POST", f"{black_hole}/login", body=b"{}"))
        reference.assert_within_ten_percent()


async def test_request_timeout_overrides_the_transport_default(raw_server: RawServerFactory) -> None:
    server = await raw_server(never_answer)
    async with AiohttpTransport(timeout=30) as transport:
        reference = ReferenceTimer(0.2)
        with pytest.raises(RequestTimeoutError):
            await transport.send(Request("GET", f"{server.url}/", timeout=0.2))
        reference.assert_within_ten_percent()


# -- faults (R1, R5) -------------------------------------------------------------------


async def test_connection_closed_before_the_response(
    transport: AiohttpTransport, raw_server: RawServerFactory
) -> None:
    def hang_up(connection: RawConnection) -> None:
        assert connection.transport is not None
        connection.transport.close()

    server = await raw_server(hang_up)
    with pytest.raises(TransportError, match="the server closed the connection") as caught:
        await transport.send(Request("POST", f"{server.url}/f", body=b"{}"))
    assert not isinstance(caught.value, RequestTimeoutError)


async def test_body_cut_short(transport: AiohttpTransport, raw_server: RawServerFactory) -> None:
    def cut(connection: RawConnection) -> None:
        connection.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial\":")
        assert connection.transport is not None
        connection.transport.close()

    server = await raw_server(cut)
    with pytest.raises(TransportError, match="cut short"):
        await transport.send(Request("GET", f"{server.url}/profile"))


async def test_garbage_response_leaks_no_header_through_the_chain(
    transport: AiohttpTransport, raw_server: RawServerFactory
) -> None:
    # aiohttp reports this with a ClientResponseError whose repr holds the request
    # headers, Authorization included: it must not survive as a cause or context.
    server = await raw_server(lambda connection: connection.write(b"NOT HTTP AT ALL\r\n\r\n"))
    request = Request("GET", f"{server.url}/p?t={CANARY}", {"Authorization": f"Bearer {CANARY}"})
    with pytest.raises(TransportError, match="malformed response") as caught:
        await transport.send(request)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None
    assert CANARY not in f"{caught.value!s}{caught.value!r}{vars(caught.value)}"


async def test_no_secret_in_any_log_at_debug(
    transport: AiohttpTransport, origin: Recorder, foreign: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: aiohttp's and asyncio's included
    origin.redirects["/away"] = (307, f"{foreign.url}/x")
    headers = {"Authorization": f"Bearer {CANARY}"}
    await transport.send(Request("POST", f"{origin.url}/away?t={CANARY}", headers, CANARY.encode()))
    with pytest.raises(TransportError):
        await transport.send(Request("POST", f"http://127.0.0.1:{free_port()}/?t={CANARY}", headers))
    # The test servers' access log does print the query (a server-side matter); the
    # client side must print nothing.
    client_side = [r for r in caplog.records if not r.name.startswith(("aiohttp.access", "aiohttp.server"))]
    assert not [r for r in client_side if CANARY in r.getMessage()]
    assert any(CANARY in r.getMessage() for r in caplog.records)  # proves the capture worked


async def test_refused_names_the_reason(transport: AiohttpTransport) -> None:
    with pytest.raises(TransportError, match=r"could not connect \(.*[Rr]efused"):
        await transport.send(Request("GET", f"http://127.0.0.1:{free_port()}/location"))


# -- security checks before any I/O (S4) ----------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/api",
        "http://10.0.0.1/",
        "http://[2001:db8::1]/",
        "http://127.0.0.1.example.com/",  # looks like loopback, is not
        "ftp://127.0.0.1/file",
        "/relative/path",
        "http:///no-host",
        "not a url",
    ],
)
async def test_refused_urls_raise_before_any_io(url: str) -> None:
    transport = AiohttpTransport()
    with pytest.raises(InvalidArgumentError):
        await transport.send(Request("GET", url))
    assert "state=unopened" in repr(transport)  # no session, so no I/O
    await transport.aclose()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("LocalHost", True),
        ("128.0.0.1", False),
        ("0.0.0.0", False),
        ("example.com", False),
        ("localhost.example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_allow_insecure_http_opts_in() -> None:
    request = Request("GET", "http://example.com/api")
    url, _ = AiohttpTransport(allow_insecure_http=True)._checked(request)  # validation only, no I/O
    assert url.host == "example.com"
    with pytest.raises(InvalidArgumentError, match="allow_insecure_http"):
        AiohttpTransport()._checked(request)


@pytest.mark.parametrize(
    "request_",
    [
        Request("GET", "http://127.0.0.1:1/", {"X-Bad": f"Bearer {CANARY}\r\nX-Injected: 1"}),
        Request("GET /smuggle HTTP/1.1\r\n", "http://127.0.0.1:1/"),
        Request("GET", "http://127.0.0.1:1/", timeout=0),
        Request("GET", "http://127.0.0.1:1/", timeout=float("nan")),
        Request("GET", "http://127.0.0.1:1/", timeout=-1),
    ],
)
async def test_malformed_requests_raise_before_any_io(request_: Request) -> None:
    transport = AiohttpTransport()
    with pytest.raises(InvalidArgumentError) as caught:
        await transport.send(request_)
    assert CANARY not in str(caught.value)
    assert "state=unopened" in repr(transport)


@pytest.mark.parametrize(
    "kwargs", [{"timeout": 0}, {"timeout": float("inf")}, {"timeout": -5}, {"connector_limit": -1}]
)
def test_invalid_construction(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        AiohttpTransport(**kwargs)


# -- TLS (S4) -------------------------------------------------------------------------


def self_signed(directory: Path, san: x509.GeneralName) -> tuple[Path, Path]:
    """A self-signed CA certificate for ``san`` (cert file, key file) in ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "appusers test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (cert file, key file)."""
    return self_signed(tmp_path_factory.mktemp("tls"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")))


@pytest.fixture(scope="module")
def other_host_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for a host name that is not the one the client connects to."""
    return self_signed(tmp_path_factory.mktemp("tls-other"), x509.DNSName("other.invalid"))


async def serve_tls(aiohttp_server: AiohttpServer, certificate: tuple[Path, Path]) -> Any:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(*certificate)
    downgrade_target = f"http://127.0.0.1:{free_port()}/ok"

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="secure")

    async def downgrade(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": downgrade_target})

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/downgrade", downgrade)
    return await aiohttp_server(app, ssl=server_context)


@pytest.fixture
async def tls_server(aiohttp_server: AiohttpServer, certificate: tuple[Path, Path]) -> Any:
    return await serve_tls(aiohttp_server, certificate)


# The certificate-failure path: aiohttp 3.9.0-3.9.1 accepted an untrusted certificate and
# 3.9.2-3.13.0 made the transport raise AttributeError instead of a TransportError. .ci/test runs
# these tests on the newest aiohttp and again on the declared floor (the lowest-versions job).


async def test_untrusted_certificate_is_rejected(transport: AiohttpTransport, tls_server: Any) -> None:
    url = str(tls_server.make_url("/ok"))
    with pytest.raises(TransportError) as caught:
        await transport.send(Request("GET", url))
    assert type(caught.value) is TransportError  # not a timeout, not a foreign error
    assert str(caught.value) == f"GET {url} failed: TLS certificate verification failed"
    assert (caught.value.method, caught.value.url) == ("GET", url)


async def test_certificate_for_another_host_is_rejected(
    aiohttp_server: AiohttpServer, other_host_certificate: tuple[Path, Path]
) -> None:
    # Trusted issuer, wrong name: host name verification is on even with a private CA.
    server = await serve_tls(aiohttp_server, other_host_certificate)
    url = str(server.make_url("/ok"))
    context = ssl.create_default_context(cafile=str(other_host_certificate[0]))
    async with AiohttpTransport(ssl_context=context) as transport:
        with pytest.raises(TransportError) as caught:
            await transport.send(Request("GET", url))
    assert type(caught.value) is TransportError
    assert str(caught.value) == f"GET {url} failed: TLS certificate verification failed"


async def test_ssl_context_can_trust_a_private_certificate(
    tls_server: Any, certificate: tuple[Path, Path]
) -> None:
    context = ssl.create_default_context(cafile=str(certificate[0]))
    async with AiohttpTransport(ssl_context=context) as transport:
        response = await transport.send(Request("GET", str(tls_server.make_url("/ok"))))
    assert response.body == b"secure"


async def test_https_to_http_redirect_is_refused(tls_server: Any, certificate: tuple[Path, Path]) -> None:
    context = ssl.create_default_context(cafile=str(certificate[0]))
    async with AiohttpTransport(ssl_context=context) as transport:
        with pytest.raises(TransportError, match="from https to plain http"):
            await transport.send(
                Request("GET", str(tls_server.make_url("/downgrade")), {"Authorization": "Bearer t"})
            )


# -- redirects (R6) ---------------------------------------------------------------------


class Recorder:
    """An aiohttp app that records what reached it and redirects on demand."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self.handle)
        self.redirects: dict[str, tuple[int, str | None]] = {}
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.seen.append((request.method, request.path, headers, await request.read()))
        if request.path.startswith("/hop/"):
            left = int(request.path.rsplit("/", 1)[1])
            if left > 0:
                return web.Response(status=302, headers={"Location": f"/hop/{left - 1}"})
        if request.path in self.redirects:
            status, location = self.redirects[request.path]
            return web.Response(
                status=status, headers={} if location is None else {"Location": location}, text="moved"
            )
        return web.Response(text=f"{request.method} {request.path}")


@pytest.fixture
async def origin(aiohttp_server: AiohttpServer) -> Recorder:
    recorder = Recorder()
    server = await aiohttp_server(recorder.app)
    recorder.url = str(server.make_url("")).rstrip("/")
    return recorder


@pytest.fixture
async def foreign(aiohttp_server: AiohttpServer) -> Recorder:
    # Another port on the same host is another origin.
    recorder = Recorder()
    server = await aiohttp_server(recorder.app)
    recorder.url = str(server.make_url("")).rstrip("/")
    return recorder


AUTH = {"Authorization": f"Bearer {CANARY}", "Content-Type": "application/json", "X-Trace": "t1"}


@pytest.mark.parametrize(
    ("status", "method", "followed_as", "keeps_body"),
    [
        (307, "POST", "POST", True),
        (308, "PUT", "PUT", True),
        (303, "POST", "GET", False),
        (303, "DELETE", "GET", False),
        (303, "GET", "GET", True),  # nothing to rewrite
        (302, "POST", "GET", False),
        (301, "POST", "GET", False),
        (301, "PUT", "PUT", True),  # fetch only rewrites POST on 301/302
    ],
)
async def test_same_origin_redirects_follow_the_fetch_rules(
    transport: AiohttpTransport,
    origin: Recorder,
    status: int,
    method: str,
    followed_as: str,
    keeps_body: bool,
) -> None:
    origin.redirects["/old"] = (status, "/new")
    body = None if method == "GET" else b'{"k":1}'
    response = await transport.send(Request(method, f"{origin.url}/old", AUTH, body))
    assert response.status == 200
    assert response.url == f"{origin.url}/new"
    assert response.body == f"{followed_as} /new".encode()
    got_method, _, headers, got_body = origin.seen[-1]
    assert got_method == followed_as
    assert headers["authorization"] == f"Bearer {CANARY}"  # same origin keeps credentials
    if keeps_body:
        assert got_body == (body or b"")
        assert headers["content-type"] == "application/json"
    else:
        assert got_body == b""
        assert "content-type" not in headers


async def test_cross_origin_redirect_drops_credentials(
    transport: AiohttpTransport, origin: Recorder, foreign: Recorder
) -> None:
    origin.redirects["/moved"] = (307, f"{foreign.url}/bounce")
    foreign.redirects["/bounce"] = (307, f"{origin.url}/home")
    headers = {**AUTH, "Cookie": f"s={CANARY}"}
    response = await transport.send(Request("POST", f"{origin.url}/moved", headers, b"{}"))
    assert response.status == 200
    assert response.url == f"{origin.url}/home"
    (_, _, foreign_headers, foreign_body) = foreign.seen[0]
    assert "authorization" not in foreign_headers
    assert "cookie" not in foreign_headers
    assert foreign_headers["x-trace"] == "t1"  # only credentials are dropped
    assert foreign_body == b"{}"
    # Once dropped, not restored: the foreign origin chose where the request went next.
    assert "authorization" not in origin.seen[-1][2]


async def test_ten_redirects_are_followed_and_the_eleventh_is_refused(
    transport: AiohttpTransport, origin: Recorder
) -> None:
    response = await transport.send(Request("GET", f"{origin.url}/hop/{MAX_REDIRECTS}"))
    assert response.url == f"{origin.url}/hop/0"
    with pytest.raises(TransportError, match=f"more than {MAX_REDIRECTS} redirects") as caught:
        await transport.send(Request("GET", f"{origin.url}/hop/{MAX_REDIRECTS + 1}?t=secret"))
    assert caught.value.url == f"{origin.url}/hop/{MAX_REDIRECTS + 1}"


async def test_redirect_loop_is_bounded(transport: AiohttpTransport, origin: Recorder) -> None:
    origin.redirects["/loop"] = (308, "/loop")
    with pytest.raises(TransportError, match="redirects"):
        await transport.send(Request("GET", f"{origin.url}/loop"))
    assert len(origin.seen) == MAX_REDIRECTS + 1


async def test_redirect_without_location_is_returned(transport: AiohttpTransport, origin: Recorder) -> None:
    origin.redirects["/nowhere"] = (302, None)
    response = await transport.send(Request("GET", f"{origin.url}/nowhere"))
    assert response.status == 302
    assert response.body == b"moved"


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://example.com/steal", "plain http is only allowed to loopback"),
        ("ftp://127.0.0.1/file", "only absolute http"),
        ("http://[bad", "invalid Location"),
    ],
)
async def test_unsafe_redirect_targets_are_refused(
    transport: AiohttpTransport, origin: Recorder, location: str, reason: str
) -> None:
    origin.redirects["/go"] = (302, location)
    with pytest.raises(TransportError, match=reason):
        await transport.send(Request("GET", f"{origin.url}/go", AUTH))


async def test_relative_location(transport: AiohttpTransport, origin: Recorder) -> None:
    origin.redirects["/a/b/c"] = (301, "../d?x=1")
    response = await transport.send(Request("GET", f"{origin.url}/a/b/c"))
    assert response.url == f"{origin.url}/a/d?x=1"


# -- responses ----------------------------------------------------------------------------


async def test_repeated_response_headers_are_combined(
    transport: AiohttpTransport, aiohttp_server: AiohttpServer
) -> None:
    async def handler(request: web.Request) -> web.Response:
        response = web.Response(text="x")
        response.headers.add("X-Multi", "a")
        response.headers.add("X-Multi", "b")
        return response

    app = web.Application()
    app.router.add_get("/", handler)
    server = await aiohttp_server(app)
    response = await transport.send(Request("GET", str(server.make_url("/"))))
    assert response.headers["x-multi"] == "a, b"


async def test_no_cookie_jar_carries_state_between_requests(
    transport: AiohttpTransport, origin: Recorder, aiohttp_server: AiohttpServer
) -> None:
    app = web.Application()

    async def set_cookie(request: web.Request) -> web.Response:
        response = web.Response(text="x")
        response.set_cookie("session", "server-side-state")
        return response

    app.router.add_get("/", set_cookie)
    server = await aiohttp_server(app)
    await transport.send(Request("GET", str(server.make_url("/"))))
    await transport.send(Request("GET", f"{origin.url}/next"))
    assert "cookie" not in origin.seen[0][2]


async def test_only_the_requested_content_type_is_sent(transport: AiohttpTransport, origin: Recorder) -> None:
    await transport.send(Request("POST", f"{origin.url}/raw", body=b"{}"))
    await transport.send(Request("post", f"{origin.url}/json", {"Content-Type": "application/json"}, b"{}"))
    (_, _, raw_headers, _), (method, _, json_headers, _) = origin.seen
    assert "content-type" not in raw_headers
    assert json_headers["content-type"] == "application/json"
    assert method == "POST"


# -- lifecycle (R12) ------------------------------------------------------------------------


def test_built_outside_a_loop_and_dropped_unused_is_silent() -> None:
    transport = AiohttpTransport()
    assert "state=unopened" in repr(transport)
    del transport
    gc.collect()  # filterwarnings=error: a warning from __del__ would fail the test


async def test_dropped_while_open_warns(origin: Recorder) -> None:
    transport = AiohttpTransport()
    await transport.send(Request("GET", f"{origin.url}/"))
    session = transport._session
    assert session is not None
    with pytest.warns(ResourceWarning, match="was not closed"):
        del transport
        gc.collect()
    await session.close()


async def test_aclose_interrupts_requests_in_flight(raw_server: RawServerFactory) -> None:
    server = await raw_server(never_answer)
    transport = AiohttpTransport()
    pending = asyncio.create_task(transport.send(Request("GET", f"{server.url}/slow", timeout=30)))
    await asyncio.wait_for(server.got_request.wait(), 5)
    await transport.aclose()
    with pytest.raises(AppClosedError):
        await pending
    await asyncio.wait_for(server.closed_by_client.wait(), 5)
    assert transport.closed


async def test_cancelled_send_leaks_no_task_and_no_socket(raw_server: RawServerFactory) -> None:
    server = await raw_server(never_answer)
    assert other_tasks() == set()
    async with AiohttpTransport() as transport:
        pending = asyncio.create_task(transport.send(Request("GET", f"{server.url}/slow", timeout=30)))
        await asyncio.wait_for(server.got_request.wait(), 5)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        await asyncio.wait_for(server.closed_by_client.wait(), 5)  # the socket was closed
        assert other_tasks() == set()
        # The transport is still usable after a cancellation.
        second = await raw_server(
            lambda c: c.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        )
        assert (await transport.send(Request("GET", f"{second.url}/"))).status == 204
    assert other_tasks() == set()


async def test_a_transport_serves_one_event_loop(origin: Recorder) -> None:
    async with AiohttpTransport() as transport:
        await transport.send(Request("GET", f"{origin.url}/"))
        transport._loop = asyncio.new_event_loop()  # stands in for "another loop"
        try:
            with pytest.raises(RuntimeError, match="different event loop"):
                await transport.send(Request("GET", f"{origin.url}/"))
        finally:
            transport._loop.close()
            transport._loop = asyncio.get_running_loop()


# -- streaming ---------------------------------------------------------------------------


@pytest.fixture
async def sse(aiohttp_server: AiohttpServer) -> Any:
    """``/events`` sends a few events in awkward chunks then holds the stream open;
    ``/finite`` sends one line every 0.05 s for 0.35 s then ends; ``/denied`` is a 401."""
    state: dict[str, Any] = {"disconnected": asyncio.Event()}

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            for chunk in (b"event: message\r\nda", b"ta: {\"a\":", b"1}\r\n\r\n", b": keep-alive\n\n"):
                await response.write(chunk)
                await asyncio.sleep(0.01)
            await asyncio.sleep(3600)
        finally:
            state["disconnected"].set()  # handler_cancellation: the client went away
        return response

    async def finite(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(7):
            await response.write(f"data: {i}\n".encode())
            await asyncio.sleep(0.05)
        await response.write_eof()
        return response

    async def denied(request: web.Request) -> web.Response:
        return web.json_response({"error": "invalid session", "error_code": "InvalidSession"}, status=401)

    app = web.Application()
    app.router.add_get("/events", events)
    app.router.add_get("/finite", finite)
    app.router.add_get("/denied", denied)
    server = await aiohttp_server(app)
    state["url"] = str(server.make_url("")).rstrip("/")
    return state


async def test_stream_lines(transport: AiohttpTransport, sse: Any) -> None:
    request = Request("GET", f"{sse['url']}/events", {"Accept": "text/event-stream"})
    lines = []
    async with transport.open_stream(request) as stream:
        assert stream.status == 200
        assert stream.headers["content-type"] == "text/event-stream"
        async for line in stream.iter_lines():
            lines.append(line)
            if len(lines) == 5:
                break
    assert lines == [b"event: message", b'data: {"a":1}', b"", b": keep-alive", b""]
    await asyncio.wait_for(sse["disconnected"].wait(), 5)  # leaving the block closed the connection


async def test_stream_body_outlives_the_request_timeout(transport: AiohttpTransport, sse: Any) -> None:
    request = Request("GET", f"{sse['url']}/finite", timeout=0.15)
    async with transport.open_stream(request) as stream:
        lines = [line async for line in stream.iter_lines()]
    assert lines == [f"data: {i}".encode() for i in range(7)]


async def test_stream_chunks(transport: AiohttpTransport, sse: Any) -> None:
    async with transport.open_stream(Request("GET", f"{sse['url']}/finite")) as stream:
        body = b"".join([chunk async for chunk in stream.iter_chunks()])
    assert body == b"".join(f"data: {i}\n".encode() for i in range(7))


async def test_stream_error_status_can_be_read(transport: AiohttpTransport, sse: Any) -> None:
    async with transport.open_stream(Request("GET", f"{sse['url']}/denied")) as stream:
        assert stream.status == 401
        assert b"InvalidSession" in await stream.read()


async def test_stream_idle_timeout(transport: AiohttpTransport, sse: Any) -> None:
    async with transport.open_stream(Request("GET", f"{sse['url']}/events"), idle_timeout=0.3) as stream:
        lines = stream.iter_lines()
        for _ in range(5):
            await lines.__anext__()
        reference = ReferenceTimer(0.3)
        with pytest.raises(RequestTimeoutError):
            await lines.__anext__()
        reference.assert_within_ten_percent()


async def test_stream_headers_timeout(transport: AiohttpTransport, raw_server: RawServerFactory) -> None:
    server = await raw_server(never_answer)
    reference = ReferenceTimer(TIMEOUT)
    with pytest.raises(RequestTimeoutError):
        async with transport.open_stream(Request("GET", f"{server.url}/events", timeout=TIMEOUT)):
            raise AssertionError("unreachable")
    reference.assert_within_ten_percent()


async def test_stream_closed_after_its_block(transport: AiohttpTransport, sse: Any) -> None:
    async with transport.open_stream(Request("GET", f"{sse['url']}/finite")) as stream:
        pass
    with pytest.raises(TransportError, match="stream is closed"):
        await stream.iter_lines().__anext__()


async def test_cancelled_stream_reader_leaks_nothing(raw_server: RawServerFactory) -> None:
    def one_event_then_hold(connection: RawConnection) -> None:
        connection.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: 1\n\n")

    server = await raw_server(one_event_then_hold)
    first_line = asyncio.Event()

    async def consume(transport: AiohttpTransport) -> None:
        async with transport.open_stream(Request("GET", f"{server.url}/events")) as stream:
            async for _ in stream.iter_lines():
                first_line.set()

    async with AiohttpTransport() as transport:
        reader = asyncio.create_task(consume(transport))
        await asyncio.wait_for(first_line.wait(), 5)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        await asyncio.wait_for(server.closed_by_client.wait(), 5)
        assert other_tasks() == set()
    assert other_tasks() == set()


async def test_aclose_ends_open_streams(raw_server: RawServerFactory) -> None:
    server = await raw_server(
        lambda c: c.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: 1\n")
    )
    transport = AiohttpTransport()
    async with transport.open_stream(Request("GET", f"{server.url}/events")) as stream:
        lines = stream.iter_lines()
        assert await lines.__anext__() == b"data: 1"
        await transport.aclose()
        with pytest.raises(AppClosedError):
            await lines.__anext__()
    with pytest.raises(AppClosedError):
        async with transport.open_stream(Request("GET", f"{server.url}/events")):
            raise AssertionError("unreachable")


async def test_stream_refuses_insecure_urls_before_io() -> None:
    transport = AiohttpTransport()
    with pytest.raises(InvalidArgumentError):
        async with transport.open_stream(Request("GET", "http://example.com/events")):
            raise AssertionError("unreachable")
    assert "state=unopened" in repr(transport)

