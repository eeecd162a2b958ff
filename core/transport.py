"""The HTTP seam: our own frozen request in, our own frozen response out.

A transport is anything with ``async def send(request) -> Response``. The core
never sees an HTTP library's types or exceptions: an adapter raises only
:class:`~appusers.errors.TransportError` (or its ``RequestTimeoutError``) when no
response arrived, and returns every response it got, whatever its status.

Adapters: ``appusers.adapters.AiohttpTransport`` (the default) and
``appusers.adapters.MockTransport`` (a real transport fed by a handler function,
for unit tests of error paths).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, runtime_checkable

import attrs

__all__ = ["Request", "Response", "StreamResponse", "StreamingTransport", "Transport", "redact_headers"]

_SECRET_HEADERS = frozenset({"authorization", "cookie", "set-cookie", "proxy-authorization"})


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``headers`` safe to print: credentials replaced by ``"<redacted>"``."""
    return {k: ("<redacted>" if k.lower() in _SECRET_HEADERS else v) for k, v in headers.items()}


def _without_query(url: str) -> str:
    """``url`` minus query and fragment: streaming URLs can carry a token in the query."""
    return url.split("?", 1)[0].split("#", 1)[0]


def _freeze_headers(value: Mapping[str, str] | None) -> Mapping[str, str]:
    return dict(value or {})


@attrs.frozen(repr=False)
class Request:
    """One HTTP request. ``timeout`` is the total time allowed, in seconds."""

    method: str
    url: str
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=_freeze_headers)
    body: bytes | None = None
    timeout: float | None = None

    def __repr__(self) -> str:
        # Never the body (passwords, keys) nor the Authorization header.
        size = 0 if self.body is None else len(self.body)
        return (
            f"Request({self.method} {_without_query(self.url)}, headers={redact_headers(self.headers)!r}, "
            f"body=<{size} bytes>)"
        )


@attrs.frozen(repr=False)
class Response:
    """One HTTP response. Header names are lower-case."""

    status: int
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=_freeze_headers)
    body: bytes = b""
    url: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def json(self) -> Any:
        """The body parsed as JSON (``None`` for an empty body). Raises ``ValueError``."""
        if not self.body:
            return None
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Response({self.status}, url={_without_query(self.url)!r}, body=<{len(self.body)} bytes>)"


_new = object.__new__
_set = object.__setattr__


def built_request(method: str, url: str, headers: dict[str, str], body: bytes | None,
                  timeout: float | None) -> Request:
    """``Request(method, url, headers, body, timeout)`` for a caller that made ``headers`` for
    this request alone: the same object without the converter's copy and attrs' per-field
    set-up, half the cost (a function call builds one per call; benchmarks/run.py)."""
    request: Request = _new(Request)
    _set(request, "method", method)
    _set(request, "url", url)
    _set(request, "headers", headers)
    _set(request, "body", body)
    _set(request, "timeout", timeout)
    return request


def built_response(status: int, headers: dict[str, str], body: bytes, url: str) -> Response:
    """``Response(status, headers, body, url)`` for an adapter that made ``headers`` for this
    response alone, as :func:`built_request`."""
    response: Response = _new(Response)
    _set(response, "status", status)
    _set(response, "headers", headers)
    _set(response, "body", body)
    _set(response, "url", url)
    return response


@runtime_checkable
class Transport(Protocol):
    """What the core needs from HTTP."""

    async def send(self, request: Request) -> Response:
        """Send ``request``; return the response whatever its status.

        Raise ``TransportError`` (``RequestTimeoutError`` on timeout) when no
        response arrives. Never raise a library's own exception.
        """
        ...

    async def aclose(self) -> None:
        """Release connections. Safe to call more than once."""
        ...


class StreamResponse(Protocol):
    """An open response whose body is read as it arrives (Server-Sent Events).

    Status, lower-case headers and final URL are known on opening; read the body
    with one of ``read()``, ``iter_lines()`` or ``iter_chunks()``.
    """

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def url(self) -> str: ...

    async def read(self) -> bytes:
        """The rest of the body (for error responses), within the request's timeout."""
        ...

    def iter_lines(self) -> AsyncIterator[bytes]:
        """The body's lines as they arrive, without their LF or CRLF ending."""
        ...

    def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive."""
        ...


@runtime_checkable
class StreamingTransport(Transport, Protocol):
    """A transport that can also hold a response open (``watch``, App Services' streaming call).

    Both ``AiohttpTransport`` and ``MockTransport`` are streaming transports.
    """

    def open_stream(
        self, request: Request, *, idle_timeout: float | None = None
    ) -> AbstractAsyncContextManager[StreamResponse]:
        """Send ``request``; the block holds its response open and closes it on exit.

        ``request.timeout`` bounds getting the headers; ``idle_timeout`` (``None``:
        unbounded) the wait for each next piece of the body. Errors as for ``send``.
        """
        ...
