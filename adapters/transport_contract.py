"""The contract every :class:`~appusers.transport.Transport` must meet, as a pytest test base class.

A transport adapter proves itself by subclassing :class:`TransportContract` in its
test module and providing the ``serve`` fixture; every test below is inherited.
``serve(handler)`` puts ``handler`` behind the transport under test: a real server
for a network transport, the handler itself for a mock::

    class TestMyTransport(TransportContract):
        @pytest.fixture
        async def serve(self, my_server_factory):
            async def factory(handler):
                base_url = await my_server_factory(handler)
                return Served(MyTransport(), base_url, refused_url="http://127.0.0.1:9/")
            return factory

The subclass closes its transports when the test ends.

Imports pytest: only test code imports this module.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, ClassVar

import attrs
import pytest

from appusers.errors import AppClosedError, RequestTimeoutError, TransportError
from appusers.transport import Request, Response, Transport

__all__ = [
    "CANARY", "LoopbackTransportContract", "ServeFactory", "Served", "ServerHandler", "TransportContract",
    "free_port",
]

# Stands in for a token: it must never show up in a repr, a message or a chained error.
CANARY = "eyJcanary.dHJhbnNwb3J0LXNlY3JldA.sig-91c0de"

ServerHandler = Callable[[Request], Awaitable[Response]]
"""The server's side of an exchange: the request as the server received it (full URL,
headers, body) in, the response to send out."""


@attrs.frozen
class Served:
    """What ``serve(handler)`` returns."""

    transport: Transport
    base_url: str
    """Absolute URL without a trailing slash; every path under it reaches the handler."""
    refused_url: str
    """A URL at which the transport gets no response at all: the connection is refused."""


ServeFactory = Callable[[ServerHandler], Awaitable[Served]]


def _error_chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack: list[BaseException | None] = [error]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack += [current.__cause__, current.__context__]


def _assert_no_canary(error: BaseException) -> None:
    for link in _error_chain(error):
        for text in (str(link), repr(link), repr(link.args), repr(vars(link))):
            assert CANARY not in text, f"secret leaked through {type(link).__name__}"


class TransportContract:
    """Behaviour shared by every transport; subclasses supply the ``serve`` fixture."""

    TIMEOUT: ClassVar[float] = 0.5
    """The short timeout the timeout tests configure; expiry must come within +10 %."""

    @pytest.fixture
    def serve(self) -> ServeFactory:
        """Override: ``serve(handler) -> Served``, a transport in front of ``handler``."""
        raise NotImplementedError("a TransportContract subclass must provide the serve fixture")

    @staticmethod
    async def ok(request: Request) -> Response:
        return Response(200, {"Content-Type": "text/plain"}, b"ok")

    async def test_is_a_transport(self, serve: ServeFactory) -> None:
        served = await serve(self.ok)
        assert isinstance(served.transport, Transport)

    @pytest.mark.parametrize("status", [200, 201, 204, 400, 401, 403, 404, 409, 429, 500, 502, 503])
    async def test_every_status_is_returned_not_raised(self, serve: ServeFactory, status: int) -> None:
        body = b"" if status == 204 else b'{"error":"x"}'

        async def handler(request: Request) -> Response:
            return Response(status, {"Content-Type": "application/json"}, body)

        served = await serve(handler)
        response = await served.transport.send(Request("GET", f"{served.base_url}/status"))
        assert response.status == status
        assert response.body == body

    async def test_response_header_names_are_lower_case(self, serve: ServeFactory) -> None:
        async def handler(request: Request) -> Response:
            return Response(200, {"X-Request-ID": "Abc-123", "Content-Type": "Application/JSON"}, b"{}")

        served = await serve(handler)
        response = await served.transport.send(Request("GET", f"{served.base_url}/h"))
        assert all(name == name.lower() for name in response.headers)
        assert response.headers["x-request-id"] == "Abc-123"  # values untouched
        assert response.headers["content-type"] == "Application/JSON"

    @pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def test_request_reaches_the_server_intact(self, serve: ServeFactory, method: str) -> None:
        seen: list[Request] = []

        async def handler(request: Request) -> Response:
            seen.append(request)
            return Response(200)

        served = await serve(handler)
        # Percent-escapes as the streaming endpoint's baas_request carries them.
        url = f"{served.base_url}/api/client/v2.0/app/x/functions/call?baas_request=eyJ%2B%2F%3D&n=1"
        headers = {"Accept": "application/json", "X-Custom": "Value With Spaces"}
        body = None if method in ("GET", "DELETE") else b'{"name":"f","arguments":[]}'
        await served.transport.send(Request(method, url, headers, body))
        (got,) = seen
        assert got.method == method
        assert got.url == url
        received = {name.lower(): value for name, value in got.headers.items()}
        for name, value in headers.items():
            assert received[name.lower()] == value
        assert (got.body or b"") == (body or b"")

    async def test_binary_bodies_round_trip(self, serve: ServeFactory) -> None:
        async def echo(request: Request) -> Response:
            return Response(200, {"Content-Type": "application/octet-stream"}, request.body or b"")

        served = await serve(echo)
        payload = bytes(range(256)) * 4096  # 1 MiB, every byte value, NULs included
        response = await served.transport.send(Request("POST", f"{served.base_url}/echo", body=payload))
        assert response.body == payload

    async def test_empty_bodies(self, serve: ServeFactory) -> None:
        async def echo(request: Request) -> Response:
            return Response(200, body=request.body or b"")

        served = await serve(echo)
        for body in (None, b""):
            response = await served.transport.send(Request("POST", f"{served.base_url}/e", body=body))
            assert response.body == b""

    async def test_response_url_is_the_request_url(self, serve: ServeFactory) -> None:
        served = await serve(self.ok)
        url = f"{served.base_url}/a/b?c=d"
        assert (await served.transport.send(Request("GET", url))).url == url

    async def test_concurrent_requests_are_independent(self, serve: ServeFactory) -> None:
        async def echo_path(request: Request) -> Response:
            await asyncio.sleep(0)
            return Response(200, body=request.url.rsplit("/", 1)[1].encode())

        served = await serve(echo_path)
        responses = await asyncio.gather(
            *(served.transport.send(Request("GET", f"{served.base_url}/{i}")) for i in range(25))
        )
        assert [r.body for r in responses] == [str(i).encode() for i in range(25)]

    async def test_timeout_raises_request_timeout_error_within_ten_percent(self, serve: ServeFactory) -> None:
        async def never_answers(request: Request) -> Response:
            await asyncio.sleep(3600)
            raise AssertionError("unreachable")

        served = await serve(never_answers)
        started = time.monotonic()
        with pytest.raises(RequestTimeoutError) as caught:
            await served.transport.send(Request("GET", f"{served.base_url}/slow", timeout=self.TIMEOUT))
        elapsed = time.monotonic() - started
        assert self.TIMEOUT - 0.01 <= elapsed <= self.TIMEOUT * 1.1, elapsed
        assert isinstance(caught.value, TimeoutError)
        assert isinstance(caught.value, TransportError)
        assert caught.value.method == "GET"

    async def test_refused_connection_raises_transport_error(self, serve: ServeFactory) -> None:
        served = await serve(self.ok)
        with pytest.raises(TransportError) as caught:
            await served.transport.send(Request("POST", served.refused_url, body=b"{}"))
        assert not isinstance(caught.value, RequestTimeoutError)
        assert caught.value.method == "POST"

    async def test_errors_name_method_and_url_but_not_the_query(self, serve: ServeFactory) -> None:
        async def never_answers(request: Request) -> Response:
            await asyncio.sleep(3600)
            raise AssertionError("unreachable")

        served = await serve(never_answers)
        slow = Request("GET", f"{served.base_url}/stream/path?baas_at={CANARY}", timeout=self.TIMEOUT)
        refused = Request("DELETE", f"{served.refused_url.rstrip('/')}/gone?baas_at={CANARY}")
        for request in (slow, refused):
            with pytest.raises(TransportError) as caught:
                await served.transport.send(request)
            message = str(caught.value)
            assert request.method in message
            assert request.url.split("?")[0] in message
            assert "baas_at" not in message
            assert caught.value.url == request.url.split("?")[0]

    async def test_secrets_stay_out_of_reprs_messages_and_chains(self, serve: ServeFactory) -> None:
        async def never_answers(request: Request) -> Response:
            await asyncio.sleep(3600)
            raise AssertionError("unreachable")

        served = await serve(never_answers)
        secret_headers = {"Authorization": f"Bearer {CANARY}", "Cookie": f"session={CANARY}"}
        body = f'{{"password": "{CANARY}"}}'.encode()
        requests = [
            Request("POST", f"{served.base_url}/login?t={CANARY}", secret_headers, body, self.TIMEOUT),
            Request("POST", f"{served.refused_url.rstrip('/')}/login?t={CANARY}", secret_headers, body),
        ]
        for request in requests:
            with pytest.raises(TransportError) as caught:
                await served.transport.send(request)
            _assert_no_canary(caught.value)
        assert CANARY not in repr(served.transport)

    async def test_aclose_is_idempotent_and_final(self, serve: ServeFactory) -> None:
        served = await serve(self.ok)
        await served.transport.send(Request("GET", f"{served.base_url}/before"))
        await served.transport.aclose()
        await served.transport.aclose()
        with pytest.raises(AppClosedError):
            await served.transport.send(Request("GET", f"{served.base_url}/after"))

    # -- streaming, for transports that offer ``open_stream`` --------------------

    @staticmethod
    def _streaming(served: Served) -> Any:
        if not hasattr(served.transport, "open_stream"):
            pytest.skip("this transport has no open_stream")
        return served.transport

    async def test_stream_lines_end_with_lf_or_crlf(self, serve: ServeFactory) -> None:
        async def events(request: Request) -> Response:
            body = b'event: message\r\ndata: {"a":1}\r\n\r\n: comment\ndata: %0A\n\ntail'
            return Response(200, {"Content-Type": "text/event-stream"}, body)

        served = await serve(events)
        request = Request("GET", f"{served.base_url}/events", {"Accept": "text/event-stream"})
        async with self._streaming(served).open_stream(request) as stream:
            assert stream.status == 200
            assert stream.headers["content-type"] == "text/event-stream"
            lines = [line async for line in stream.iter_lines()]
        assert lines == [b"event: message", b'data: {"a":1}', b"", b": comment", b"data: %0A", b"", b"tail"]

    async def test_stream_error_body_is_readable(self, serve: ServeFactory) -> None:
        async def denied(request: Request) -> Response:
            return Response(401, {"Content-Type": "application/json"}, b'{"error_code":"InvalidSession"}')

        served = await serve(denied)
        async with self._streaming(served).open_stream(Request("GET", f"{served.base_url}/s")) as stream:
            assert stream.status == 401
            assert await stream.read() == b'{"error_code":"InvalidSession"}'

    async def test_stream_refused_raises_transport_error(self, serve: ServeFactory) -> None:
        served = await serve(self.ok)
        with pytest.raises(TransportError):
            async with self._streaming(served).open_stream(Request("GET", served.refused_url)):
                raise AssertionError("unreachable")

    async def test_aclose_before_any_request(self, serve: ServeFactory) -> None:
        served = await serve(self.ok)
        await served.transport.aclose()
        with pytest.raises(AppClosedError):
            await served.transport.send(Request("GET", f"{served.base_url}/after"))


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LoopbackTransportContract(TransportContract):
    """The contract with ``serve`` already provided: a real aiohttp server on 127.0.0.1.

    A subclass only says how to make its transport::

        class TestMyTransport(LoopbackTransportContract):
            def make_transport(self) -> Transport:
                return MyTransport()

    Needs pytest-aiohttp (for its ``aiohttp_server`` fixture).
    """

    def make_transport(self) -> Transport:
        raise NotImplementedError("a LoopbackTransportContract subclass must provide make_transport")

    @pytest.fixture
    async def serve(self, aiohttp_server: Any) -> Any:
        from aiohttp import web

        transports: list[Transport] = []

        async def factory(handler: ServerHandler) -> Served:
            base_url = ""

            async def adapter(web_request: web.Request) -> web.StreamResponse:
                request = Request(
                    web_request.method,
                    base_url + web_request.raw_path,
                    dict(web_request.headers),
                    await web_request.read(),
                )
                response = await handler(request)
                return web.Response(
                    status=response.status, headers=dict(response.headers), body=response.body or None
                )

            app = web.Application(client_max_size=4 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", adapter)
            server = await aiohttp_server(app)
            base_url = str(server.make_url("")).rstrip("/")
            transport = self.make_transport()
            transports.append(transport)
            return Served(transport, base_url, refused_url=f"http://127.0.0.1:{free_port()}/")

        yield factory
        for transport in transports:
            await transport.aclose()
