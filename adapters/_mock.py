"""MockTransport: a real transport whose "network" is a function (like ``httpx.MockTransport``).

For unit tests of the error paths a live server makes awkward: a 503 on the third
call, a refused connection, a response that never comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import attrs

from appusers.errors import AppClosedError, InvalidArgumentError, RequestTimeoutError, TransportError
from appusers.transport import Request, Response

__all__ = ["MockHandler", "MockStreamResponse", "MockTransport"]

MockHandler = Callable[[Request], Response | Awaitable[Response]]
"""Answers one request: a sync or async function ``Request -> Response``."""


class MockTransport:
    """A :class:`~appusers.transport.Transport` that answers with ``handler`` instead of a network.

    The handler may be sync or async. To simulate a network failure it raises an
    appusers error (``TransportError("connection refused")``); anything else it
    raises reaches the caller unchanged, so a broken test fails loudly. An async
    handler runs under the request's ``timeout`` (or the transport's, if any) and
    running out raises :class:`~appusers.errors.RequestTimeoutError`, as a real
    transport would. Every request is recorded in :attr:`requests`, in order::

        def handler(request: Request) -> Response:
            if request.url.endswith("/location"):
                return Response(200, {"content-type": "application/json"}, b'{"hostname": "..."}')
            return Response(404)

        transport = MockTransport(handler)
        ...
        assert [r.method for r in transport.requests] == ["GET"]
    """

    def __init__(self, handler: MockHandler, *, timeout: float | None = None) -> None:
        if timeout is not None and not (timeout > 0 and math.isfinite(timeout)):
            raise InvalidArgumentError("timeout must be a positive number of seconds or None")
        self._handler = handler
        self._timeout = timeout
        self._closed = False
        self.requests: list[Request] = []
        """Every request sent, oldest first (including those the handler failed)."""

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<MockTransport {len(self.requests)} requests, {state}>"

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has been called."""
        return self._closed

    async def send(self, request: Request) -> Response:
        """Record ``request`` and return the handler's response.

        Raises :class:`~appusers.errors.AppClosedError` after :meth:`aclose`.
        """
        if self._closed:
            raise AppClosedError("the transport is closed")
        self.requests.append(request)
        result = self._handler(request)
        if inspect.isawaitable(result):
            timeout = self._timeout if request.timeout is None else request.timeout
            deadline = asyncio.timeout(timeout)
            try:
                async with deadline:
                    result = await result
            except TimeoutError:
                if not deadline.expired():
                    raise  # the handler's own error (it may simulate a timeout itself)
                # Raised below, outside this handler, so that nothing is chained to it.
            else:
                return self._checked(request, result)
            raise RequestTimeoutError(
                f"{request.method} {_without_query(request.url)} timed out after {timeout:g} s",
                method=request.method,
                url=_without_query(request.url),
            )
        return self._checked(request, result)

    @contextlib.asynccontextmanager
    async def open_stream(
        self, request: Request, *, idle_timeout: float | None = None
    ) -> AsyncIterator[MockStreamResponse]:
        """The handler's response as a stream, like ``AiohttpTransport.open_stream``.

        The whole body is there at once, so ``idle_timeout`` never fires; it is
        accepted so that code written for a network stream runs unchanged.
        """
        response = await self.send(request)
        stream = MockStreamResponse(request.method, response)
        try:
            yield stream
        finally:
            stream._closed = True

    async def aclose(self) -> None:
        """Refuse further requests. Safe to call more than once."""
        self._closed = True

    @staticmethod
    def _checked(request: Request, result: object) -> Response:
        if not isinstance(result, Response):
            raise TypeError(f"MockTransport handler returned {type(result).__name__}, not a Response")
        # What a network transport guarantees: lower-case header names and the final URL.
        return attrs.evolve(
            result,
            headers={name.lower(): value for name, value in result.headers.items()},
            url=result.url or request.url,
        )


class MockStreamResponse:
    """A :class:`MockTransport` stream: same reading API as ``AiohttpStreamResponse``."""

    def __init__(self, method: str, response: Response) -> None:
        self._method = method
        self.status: int = response.status
        self.headers: Mapping[str, str] = response.headers
        self.url: str = response.url
        self._body = response.body
        self._closed = False

    def __repr__(self) -> str:
        return f"<MockStreamResponse {self.status} {_without_query(self.url)}>"

    async def read(self) -> bytes:
        """The whole body."""
        self._check_open()
        return self._body

    def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body as a single chunk (none if it is empty)."""
        self._check_open()
        return _ListIterator([self._body] if self._body else [])

    def iter_lines(self) -> AsyncIterator[bytes]:
        """The body's lines without their LF or CRLF ending."""
        self._check_open()
        lines = self._body.split(b"\n")
        if lines[-1] == b"":
            lines.pop()  # the last line ended with LF: nothing follows it
        return _ListIterator([line.removesuffix(b"\r") for line in lines])

    def _check_open(self) -> None:
        if self._closed:
            where = _without_query(self.url)
            raise TransportError(
                f"{self._method} {where}: the stream is closed", method=self._method, url=where
            )


class _ListIterator:
    # Not an async generator: one abandoned by ``break`` would linger until the
    # loop's asyncgen hook closes it.
    def __init__(self, items: list[bytes]) -> None:
        self._items = iter(items)

    def __aiter__(self) -> _ListIterator:
        return self

    async def __anext__(self) -> bytes:
        try:
            return next(self._items)
        except StopIteration:
            raise StopAsyncIteration from None


def _without_query(url: str) -> str:
    return url.split("#", 1)[0].split("?", 1)[0]
