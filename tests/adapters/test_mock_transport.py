"""MockTransport against the transport contract, plus what is particular to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from appusers.adapters import MockTransport
from appusers.adapters.transport_contract import Served, ServeFactory, ServerHandler, TransportContract
from appusers.errors import AppClosedError, InvalidArgumentError, RequestTimeoutError, TransportError
from appusers.transport import Request, Response

BASE = "https://mock.test"
REFUSED = "https://refused.test"


class TestMockTransport(TransportContract):
    TIMEOUT = 0.2

    @pytest.fixture
    async def serve(self) -> AsyncIterator[ServeFactory]:
        transports: list[MockTransport] = []

        async def factory(handler: ServerHandler) -> Served:
            async def network(request: Request) -> Response:
                # The mock's stand-in for a host nobody listens on.
                if request.url.startswith(REFUSED):
                    raise TransportError(
                        f"{request.method} {request.url.split('?')[0]} failed: connection refused",
                        method=request.method,
                        url=request.url.split("?")[0],
                    )
                return await handler(request)

            transport = MockTransport(network)
            transports.append(transport)
            return Served(transport, BASE, refused_url=f"{REFUSED}/")

        yield factory
        for transport in transports:
            await transport.aclose()


async def test_sync_handler_and_recorded_requests() -> None:
    transport = MockTransport(lambda request: Response(201, body=request.url.encode()))
    first = Request("GET", f"{BASE}/one")
    second = Request("POST", f"{BASE}/two", {"Authorization": "Bearer t"}, b"{}")
    assert (await transport.send(first)).body == first.url.encode()
    assert (await transport.send(second)).status == 201
    assert transport.requests == [first, second]


async def test_async_handler_can_simulate_failures_in_sequence() -> None:
    outcomes: list[Response | Exception] = [
        TransportError("connection reset"),
        Response(503, {"content-type": "text/html"}, b"<html>busy</html>"),
        Response(200, body=b"{}"),
    ]

    async def handler(request: Request) -> Response:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    transport = MockTransport(handler)
    request = Request("GET", f"{BASE}/flaky")
    with pytest.raises(TransportError, match="connection reset"):
        await transport.send(request)
    assert (await transport.send(request)).status == 503
    assert (await transport.send(request)).status == 200
    assert len(transport.requests) == 3  # failed requests are recorded too


async def test_a_handler_bug_is_not_disguised() -> None:
    def broken(request: Request) -> Response:
        raise KeyError("test bug")

    with pytest.raises(KeyError):
        await MockTransport(broken).send(Request("GET", f"{BASE}/"))


async def test_a_handler_that_returns_something_else_is_a_type_error() -> None:
    transport = MockTransport(lambda request: {"status": 200})  # type: ignore[arg-type, return-value]
    with pytest.raises(TypeError, match="dict"):
        await transport.send(Request("GET", f"{BASE}/"))


async def test_handler_timeout_error_is_not_mistaken_for_the_deadline() -> None:
    async def handler(request: Request) -> Response:
        raise RequestTimeoutError("simulated", method=request.method, url=request.url)

    with pytest.raises(RequestTimeoutError, match=r"^simulated$"):
        await MockTransport(handler).send(Request("GET", f"{BASE}/", timeout=5))


async def test_transport_default_timeout_applies_without_a_request_timeout() -> None:
    async def slow(request: Request) -> Response:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    with pytest.raises(RequestTimeoutError, match=r"timed out after 0\.05 s"):
        await MockTransport(slow, timeout=0.05).send(Request("GET", f"{BASE}/"))


def test_invalid_default_timeout() -> None:
    with pytest.raises(InvalidArgumentError):
        MockTransport(lambda r: Response(200), timeout=0)


async def test_closed_transport_does_not_call_the_handler() -> None:
    transport = MockTransport(lambda request: Response(200))
    await transport.aclose()
    assert transport.closed
    with pytest.raises(AppClosedError):
        await transport.send(Request("GET", f"{BASE}/"))
    assert transport.requests == []
    assert repr(transport) == "<MockTransport 0 requests, closed>"
