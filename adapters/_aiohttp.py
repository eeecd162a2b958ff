"""The default transport: aiohttp behind appusers' own ``Request``/``Response``.

This is the only module in appusers that knows aiohttp. Everything aiohttp,
asyncio or the OS can raise is translated in exactly one place,
:meth:`AiohttpTransport._translated`, into :class:`~appusers.errors.TransportError`
(or :class:`~appusers.errors.RequestTimeoutError`), with a message that names the
method and the URL without its query string, and never a header or a body.

What this adapter adds on top of aiohttp, and why:

* **Explicit timeouts** (reliability R2): the request's ``timeout`` or the
  transport's (60 s, not aiohttp's 300 s) bounds the whole exchange, redirects and
  body included.
* **Redirects handled here** (R6), not by aiohttp: same-origin hops follow the fetch
  rules; a hop to another origin loses the ``Authorization`` header; a downgrade
  from https to http is refused; at most :data:`MAX_REDIRECTS` hops.
* **Plain http only to loopback** unless the caller opts in (S4); TLS verified.
* **No cookie jar**: the SDK authenticates with bearer tokens, and a shared jar
  would carry one server's cookies into every later request.
* **One transparent retry for a stale pooled connection** (R5): when a request sent on a
  reused keep-alive connection gets the connection closed or reset before any response,
  the server had closed that idle connection before reading the request (RFC 9112
  §9.3.1), so the request is sent once more, whatever its method. aiohttp's own retry
  (idempotent methods, any connection) is off: every other retry is the App's
  ``RetryPolicy``, so attempts can be counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import enum
import functools
import math
import os
import re
import socket
import ssl
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Final, TypeVar

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ClientRequest
from multidict import CIMultiDictProxy
from yarl import URL

from appusers.errors import (
    AppClosedError,
    AppError,
    InvalidArgumentError,
    RequestTimeoutError,
    TransportError,
)
from appusers.transport import Request, Response, built_response

from ._deadline import Deadline as _Deadline
from ._deadline import Timers
from ._loopback import is_loopback
from ._reading import Chunks, Lines

__all__ = ["MAX_REDIRECTS", "AiohttpStreamResponse", "AiohttpTransport"]

_T = TypeVar("_T")

MAX_REDIRECTS: Final = 10
"""Redirect hops followed before giving up with a ``TransportError``."""

_REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
# fetch's "request-body-header names": they go with the body when a redirect turns
# the request into a body-less GET.
_BODY_HEADERS: Final = frozenset(
    {"content-type", "content-length", "content-encoding", "content-language", "content-location"}
)
# Credentials that belong to the origin they were sent to (fetch drops Authorization
# on a cross-origin redirect; cookies are origin-bound by definition).
_CREDENTIAL_HEADERS: Final = frozenset({"authorization", "cookie", "proxy-authorization"})
# RFC 9110 token: anything else as a method would be a request-smuggling vector.
_METHOD_RE: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_COMMON_METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_URL_CHECKS_KEPT: Final = 256
_FIELDS_KEPT: Final = 64
_FORBIDDEN_HEADER_CHARS: Final = re.compile(r"[\r\n\x00]")
_SKIP_CONTENT_TYPE: Final = ("Content-Type",)
# A Server-Sent Events line longer than this is a broken or hostile server, not data.


class _Attempt:
    """Per request: was it sent on a pooled (reused) connection? Yes unless the connector
    opened a new one for it."""

    __slots__ = ("reused",)

    def __init__(self) -> None:
        self.reused = True


#: The request being sent in this task, told by the connector when it opens a new connection.
_ATTEMPT: contextvars.ContextVar[_Attempt | None] = contextvars.ContextVar("appusers_attempt", default=None)


class _Connector(aiohttp.TCPConnector):
    """A ``TCPConnector`` that tells the request in flight (``_ATTEMPT``) when it opens a new
    connection for it; any other connection it hands out comes from its pool.

    Not a ``TraceConfig``: with one, aiohttp builds and sends about eight trace events per
    request to report this one bit. And not by wrapping ``connect``: that ran for every
    request (a coroutine and a set lookup more), while a new connection is rare
    (benchmarks/run.py, call_function overhead)."""

    async def _create_connection(
        self, req: ClientRequest, traces: list[Any], timeout: aiohttp.ClientTimeout
    ) -> ResponseHandler:
        attempt = _ATTEMPT.get()
        if attempt is not None:
            attempt.reused = False  # set before connecting: a failure to connect is not staleness
        return await super()._create_connection(req, traces, timeout)


def _stale(exc: BaseException, attempt: _Attempt) -> bool:
    """A reused connection that the server had already closed: it died before any response."""
    if not attempt.reused or isinstance(exc, aiohttp.ClientConnectorError):
        return False  # a new connection that failed to open is a connection failure, not staleness
    return isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError)


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPENED = "opened"
    CLOSED = "closed"


def _safe_url(url: URL) -> str:
    """``url`` fit for a message: no query string (streaming URLs may carry a token),
    no fragment, no user info."""
    try:
        return str(url.with_user(None).with_query(None).with_fragment(None))
    except ValueError:
        return "<invalid URL>"


@functools.lru_cache(maxsize=64)
def _client_timeout(timeout: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, sock_connect=timeout)


@functools.lru_cache(maxsize=256)
def _parse_url(raw: str) -> URL:
    # A URL that is already clean ASCII is sent byte for byte (the core percent-encodes
    # e.g. the streaming ``baas_request`` exactly as the protocol says); anything else
    # is quoted by yarl rather than put on the wire raw.
    encoded = raw.isascii() and raw.isprintable() and " " not in raw
    return URL(raw, encoded=encoded)


def _origin(url: URL) -> tuple[str, str, int | None]:
    # yarl's origin() treats "http://h" and "http://h:80" as different; the web does not.
    return (url.scheme.lower(), (url.host or "").lower(), url.port)


def _has_content_type(headers: Mapping[str, str]) -> bool:
    return "Content-Type" in headers or any(name.lower() == "content-type" for name in headers)


def _lower_headers(raw: CIMultiDictProxy[str]) -> dict[str, str]:
    headers = {name.lower(): value for name, value in raw.items()}
    if len(headers) == len(raw):
        return headers  # no field repeated (the usual case)
    headers = {}
    for name, value in raw.items():
        key = name.lower()
        # Repeated fields combine as a comma-separated list (RFC 9110 §5.3).
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _os_error(exc: aiohttp.ClientConnectorError) -> OSError | None:
    # Read defensively: in aiohttp 3.9.2-3.13.0 a ClientConnectorCertificateError (a subclass)
    # never sets what ``os_error`` returns, so reading it raised AttributeError from this border.
    try:
        return exc.os_error
    except AttributeError:
        return None


def _os_reason(exc: OSError) -> str:
    # From the errno: asyncio's own strerror ("Connect call failed (...)") says less.
    if exc.errno:
        return os.strerror(exc.errno)
    return exc.strerror or type(exc).__name__


def _reason(exc: BaseException) -> str:
    """A short, secret-free description of a foreign exception.

    Built from the exception's type, never from its ``str``: aiohttp's response
    errors render the request's URL and headers, Authorization included.
    """
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "TLS certificate verification failed"
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return "TLS handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = _os_error(exc)
        if isinstance(os_error, socket.gaierror):
            return "could not resolve the host name"
        return "could not connect" if os_error is None else f"could not connect ({_os_reason(os_error)})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(exc, aiohttp.ClientPayloadError | asyncio.IncompleteReadError):
        return "the response body was cut short or malformed"
    if isinstance(exc, aiohttp.ClientResponseError):
        return "the server sent a malformed response"
    if isinstance(exc, OSError):
        return _os_reason(exc)
    return type(exc).__name__


class AiohttpTransport:
    """The default :class:`~appusers.transport.Transport`, on one ``aiohttp.ClientSession``.

    The session is created lazily by the first request, inside the running event
    loop (so the transport, like the ``App``, may be built outside any loop), and
    released by :meth:`aclose`. Use it as ``async with AiohttpTransport() as t:``
    or call ``await t.aclose()``; a transport dropped while open warns with a
    ``ResourceWarning``.

    :param timeout: seconds allowed for a whole request (connect, send, redirects,
        headers and body) when the ``Request`` has no ``timeout`` of its own.
    :param connector_limit: most simultaneous connections (``0``: no limit).
    :param allow_insecure_http: allow plain ``http://`` to hosts other than loopback.
    :param ssl_context: TLS settings, e.g. to trust a private CA. ``None``: the system
        trust store, with certificate and host name verification.

    >>> async with AiohttpTransport(timeout=10) as transport:      # doctest: +SKIP
    ...     response = await transport.send(Request("GET", "https://example.com/"))
    """

    def __init__(
        self,
        *,
        timeout: float = 60.0,
        connector_limit: int = 100,
        allow_insecure_http: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._state = _State.UNOPENED
        if not (isinstance(timeout, int | float) and timeout > 0 and math.isfinite(timeout)):
            raise InvalidArgumentError("timeout must be a positive number of seconds")
        if not (isinstance(connector_limit, int) and connector_limit >= 0):
            raise InvalidArgumentError("connector_limit must be an integer >= 0")
        self._timeout = float(timeout)
        self._client_timeout = _client_timeout(self._timeout)
        self._connector_limit = connector_limit
        self._allow_insecure_http = allow_insecure_http
        self._ssl_context = ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # URL string -> (parsed URL, why it may not be requested, the parsed URL as text):
        # the SDK asks for the same few.
        self._url_checks: dict[str, tuple[URL, str | None, str]] = {}
        self._timers: Timers | None = None  # the requests' deadlines, on the session's loop
        # Header names and values known to be printable (the SDK sends the same few, its token
        # among them): never logged, dropped when the transport closes.
        self._clean_fields: dict[str, None] = {}

    def __repr__(self) -> str:
        return f"<AiohttpTransport timeout={self._timeout:g}s state={self._state.value}>"

    def __del__(self) -> None:
        # Only warn: closing needs the loop, which may already be gone (svcs does the same).
        if getattr(self, "_state", None) is _State.OPENED:
            warnings.warn(
                f"{self!r} was not closed; call `await transport.aclose()`",
                ResourceWarning,
                stacklevel=2,
                source=self,
            )

    async def __aenter__(self) -> AiohttpTransport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has been called."""
        return self._state is _State.CLOSED

    async def aclose(self) -> None:
        """Close the session and its connections. Safe to call more than once.

        Requests still in flight fail with :class:`~appusers.errors.AppClosedError`.
        """
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        self._clean_fields.clear()
        if self._timers is not None:
            self._timers.close()
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def send(self, request: Request) -> Response:
        """Send ``request`` and return the response, whatever its status.

        Raises :class:`~appusers.errors.InvalidArgumentError` before any I/O for a bad
        request, :class:`~appusers.errors.RequestTimeoutError` when the timeout
        expires, :class:`~appusers.errors.TransportError` when no usable response
        arrives and :class:`~appusers.errors.AppClosedError` after :meth:`aclose`.
        """
        url, timeout, text = self._check(request)
        session = self._session_in_loop()
        # _translated(), the exchange and the first attempt of _request_once() in one coroutine
        # (three coroutines less per request): the same border, deadline and stale-connection retry.
        method = request.method.upper()  # as aiohttp sends it
        headers = request.headers
        body = request.body
        try:
            # One deadline for the whole exchange: every redirect hop and the body too.
            with _Deadline(timeout, self._timers):
                client_timeout = (
                    self._client_timeout if timeout == self._timeout else _client_timeout(timeout)
                )
                skip = None if body is None or _has_content_type(headers) else _SKIP_CONTENT_TYPE
                attempt = _Attempt()
                token = _ATTEMPT.set(attempt)  # read by _Connector._create_connection, in this task
                try:
                    response = await session.request(method, url, headers=headers, data=body,
                                                     allow_redirects=False, timeout=client_timeout,
                                                     skip_auto_headers=skip)
                except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                    if not _stale(exc, attempt):
                        raise
                    response = None
                finally:
                    _ATTEMPT.reset(token)
                if response is None:
                    response = await self._resend(session, method, url, headers, body, client_timeout, skip)
                if response.status in _REDIRECT_STATUSES:
                    response = await self._follow(session, request, url, timeout, response)
                try:
                    data = await response.read()
                finally:
                    response.release()
            response_url = response.url
            return built_response(
                response.status,
                _lower_headers(response.headers),
                data,
                # The URL asked for, as text, once per URL (yarl builds it anew at every str()).
                text if response_url is url else str(response_url),
            )
        except AppError:
            raise
        except Exception as exc:  # the border: nothing foreign gets past it
            error = self._translate(exc, request.method, url, timeout)
        raise error

    @contextlib.asynccontextmanager
    async def open_stream(
        self, request: Request, *, idle_timeout: float | None = None
    ) -> AsyncIterator[AiohttpStreamResponse]:
        """Send ``request`` and hold its response open to read the body as it arrives.

        For Server-Sent Events. The timeout (the request's, else the transport's)
        bounds getting the response headers; after that the body may stay open
        indefinitely, unless ``idle_timeout`` bounds the wait for each next chunk.
        Leaving the block, normally, by an error or by cancellation, closes the
        connection::

            async with transport.open_stream(request) as stream:
                if stream.status != 200:
                    error_body = await stream.read()
                async for line in stream.iter_lines():
                    ...
        """
        if idle_timeout is not None and not (idle_timeout > 0 and math.isfinite(idle_timeout)):
            raise InvalidArgumentError("idle_timeout must be a positive number of seconds or None")
        url, timeout, _text = self._check(request)
        session = self._session_in_loop()
        response = await self._translated(
            request.method, url, timeout, self._open_within(session, request, url, timeout)
        )
        stream = AiohttpStreamResponse(self, request.method, url, response, idle_timeout, timeout)
        try:
            yield stream
        finally:
            stream._close()

    # -- the error border ---------------------------------------------------------

    async def _translated(self, method: str, url: URL, timeout: float | None, work: Awaitable[_T]) -> _T:
        """Await ``work``; anything foreign it raises leaves as an appusers error.

        The one place that knows aiohttp's, asyncio's and the OS's exceptions (like
        httpx's ``map_httpcore_exceptions``). The new error is raised *after* the
        ``except`` block so that it carries neither ``__cause__`` nor ``__context__``:
        aiohttp's ``ClientResponseError`` keeps the request headers, Authorization
        included, and a chained exception is printed with every traceback.
        """
        try:
            return await work
        except AppError:
            raise
        except Exception as exc:  # the border: nothing foreign gets past it
            error = self._translate(exc, method, url, timeout)
        raise error

    def _translate(self, exc: Exception, method: str, url: URL, timeout: float | None) -> AppError:
        where = f"{method} {_safe_url(url)}"
        if self._state is _State.CLOSED:
            return AppClosedError(f"{where} was interrupted: the transport was closed")
        if isinstance(exc, TimeoutError) or (
            isinstance(exc, aiohttp.ClientConnectorError) and isinstance(_os_error(exc), TimeoutError)
        ):
            after = "" if timeout is None else f" after {timeout:g} s"
            return RequestTimeoutError(f"{where} timed out{after}", method=method, url=_safe_url(url))
        return TransportError(f"{where} failed: {_reason(exc)}", method=method, url=_safe_url(url))

    # -- checks before any I/O ----------------------------------------------------

    def _checked(self, request: Request) -> tuple[URL, float]:
        """The request's parsed URL and timeout, or InvalidArgumentError."""
        url, timeout, _text = self._check(request)
        return url, timeout

    def _check(self, request: Request) -> tuple[URL, float, str]:
        """The request's URL (parsed and as text) and timeout, or InvalidArgumentError."""
        method = request.method
        if not (type(method) is str and method in _COMMON_METHODS) and (
            not isinstance(method, str) or not _METHOD_RE.fullmatch(method)
        ):
            raise InvalidArgumentError("request method must be an HTTP token such as GET or POST")
        clean = self._clean_fields
        for name, value in request.headers.items():
            if type(name) is str and type(value) is str:
                if name in clean and value in clean:
                    continue  # checked before (a bearer token is long: isprintable() reads it all)
                if name.isprintable() and value.isprintable():
                    if len(clean) >= _FIELDS_KEPT:
                        clean.clear()
                    clean[name] = clean[value] = None
                    continue  # no CR, LF or NUL can be in a printable string
            if _FORBIDDEN_HEADER_CHARS.search(name) or _FORBIDDEN_HEADER_CHARS.search(value):
                # Name only: the value may be a credential.
                raise InvalidArgumentError(f"header {name!r} contains a line break or NUL")
        try:
            checked = self._url_checks.get(request.url)
            if checked is None:
                parsed = _parse_url(request.url)
                if len(self._url_checks) >= _URL_CHECKS_KEPT:
                    self._url_checks.clear()
                checked = self._url_checks[request.url] = (parsed, self._url_problem(parsed), str(parsed))
        except (TypeError, ValueError):
            raise InvalidArgumentError("request URL is not a valid URL") from None
        url, problem, text = checked
        if problem is not None:
            raise InvalidArgumentError(f"{request.method} {_safe_url(url)}: {problem}")
        timeout = self._timeout if request.timeout is None else request.timeout
        if not (timeout > 0 and math.isfinite(timeout)):
            raise InvalidArgumentError("request timeout must be a positive number of seconds")
        return url, timeout, text

    def _url_problem(self, url: URL) -> str | None:
        """Why ``url`` may not be requested (asked of the request and of every redirect)."""
        if url.scheme not in ("http", "https") or not url.host:
            return "only absolute http:// and https:// URLs can be requested"
        if url.scheme == "http" and not self._allow_insecure_http and not is_loopback(url.host):
            return (
                "plain http is only allowed to loopback hosts; use https "
                "or opt in with allow_insecure_http=True"
            )
        return None

    def _session_in_loop(self) -> aiohttp.ClientSession:
        if self._state is _State.CLOSED:
            raise AppClosedError("the transport is closed")
        loop = asyncio.get_running_loop()
        if self._session is None:
            connector = _Connector(
                limit=self._connector_limit,
                ssl=self._ssl_context if self._ssl_context is not None else True,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=self._timeout, sock_connect=self._timeout),
                trust_env=False,
            )
            if hasattr(self._session, "_retry_connection"):
                # aiohttp re-sends idempotent requests after any dropped connection; the App's
                # RetryPolicy decides retries instead (see the module docstring).
                self._session._retry_connection = False
            self._loop = loop
            self._timers = Timers(loop)
            self._state = _State.OPENED
        elif loop is not self._loop:
            # An aiohttp session is bound to the loop it was made in.
            raise RuntimeError("AiohttpTransport used from a different event loop than its first request")
        return self._session

    # -- the exchange -------------------------------------------------------------

    async def _open_within(
        self, session: aiohttp.ClientSession, request: Request, url: URL, timeout: float
    ) -> aiohttp.ClientResponse:
        # A stream's deadline covers getting its headers; the body may stay open.
        async with asyncio.timeout(timeout):
            return await self._open(session, request, url, timeout)

    async def _open(
        self, session: aiohttp.ClientSession, request: Request, url: URL, timeout: float
    ) -> aiohttp.ClientResponse:
        """The first response that is not a redirect to follow, its body unread."""
        response = await self._request_once(
            session, request.method.upper(), url, request.headers, request.body, _client_timeout(timeout)
        )
        if response.status in _REDIRECT_STATUSES:
            response = await self._follow(session, request, url, timeout, response)
        return response

    async def _follow(
        self,
        session: aiohttp.ClientSession,
        request: Request,
        url: URL,
        timeout: float,
        response: aiohttp.ClientResponse,
    ) -> aiohttp.ClientResponse:
        """From ``response`` to ``request``, the first response that is not a redirect to follow."""
        method = request.method.upper()  # as aiohttp sends it, so the redirect rules match
        headers = request.headers  # never changed: a redirect makes filtered copies
        body = request.body
        for hop in range(MAX_REDIRECTS + 1):
            location = response.headers.get("Location") if response.status in _REDIRECT_STATUSES else None
            if location is None:
                return response  # a 3xx without Location is returned as is
            status = response.status
            response.release()
            if hop == MAX_REDIRECTS:
                break
            target = self._redirect_target(request.method, url, location)
            if _origin(target) != _origin(url):
                # For the rest of the chain: fetch removes it, it does not restore it.
                headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
            # fetch: 301/302 turn POST into GET, 303 turns anything but GET/HEAD into GET;
            # 307/308 keep method and body.
            to_get = status == 303 and method not in ("GET", "HEAD")
            if to_get or (status in (301, 302) and method == "POST"):
                method = "GET"
                body = None
                headers = {k: v for k, v in headers.items() if k.lower() not in _BODY_HEADERS}
            url = target
            response = await self._request_once(session, method, url, headers, body, _client_timeout(timeout))
        first = _safe_url(_parse_url(request.url))
        raise TransportError(
            f"{request.method} {first} failed: more than {MAX_REDIRECTS} redirects",
            method=request.method,
            url=first,
        )

    @staticmethod
    async def _request_once(
        session: aiohttp.ClientSession,
        method: str,
        url: URL,
        headers: Mapping[str, str],
        body: bytes | None,
        client_timeout: aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse:
        """One request; sent again (once) if a stale pooled connection swallowed it.

        Our asyncio deadline (in the caller) is the one total bound; aiohttp gets no total
        of its own (a second timer per request) but must not fall back to its 300 s default."""
        # The Content-Type the request has, never aiohttp's octet-stream guess for a body
        # without one. Asked per request, not of the session: skipping a header costs aiohttp
        # three header-dict copies per request, and only a body can bring the guess.
        skip = None if body is None or _has_content_type(headers) else _SKIP_CONTENT_TYPE
        attempt = _Attempt()
        token = _ATTEMPT.set(attempt)  # read by _Connector._create_connection, in this task
        try:
            try:
                return await session.request(method, url, headers=headers, data=body, allow_redirects=False,
                                             timeout=client_timeout, skip_auto_headers=skip)
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                if not _stale(exc, attempt):
                    raise
        finally:
            _ATTEMPT.reset(token)
        return await AiohttpTransport._resend(session, method, url, headers, body, client_timeout, skip)

    @staticmethod
    async def _resend(
        session: aiohttp.ClientSession,
        method: str,
        url: URL,
        headers: Mapping[str, str],
        body: bytes | None,
        client_timeout: aiohttp.ClientTimeout,
        skip: tuple[str, ...] | None,
    ) -> aiohttp.ClientResponse:
        """The one retry after a stale pooled connection (with the first try's ``skip``); not
        retried again."""
        token = _ATTEMPT.set(_Attempt())
        try:
            return await session.request(method, url, headers=headers, data=body, allow_redirects=False,
                                         timeout=client_timeout, skip_auto_headers=skip)
        finally:
            _ATTEMPT.reset(token)

    def _redirect_target(self, method: str, url: URL, location: str) -> URL:
        def refuse(why: str) -> TransportError:
            return TransportError(f"{method} {_safe_url(url)}: {why}", method=method, url=_safe_url(url))

        try:
            target = url.join(_parse_url(location))
        except (TypeError, ValueError):
            raise refuse("redirected to an invalid Location") from None
        if url.scheme == "https" and target.scheme == "http":
            raise refuse("refused a redirect from https to plain http")
        problem = self._url_problem(target)
        if problem is not None:
            raise refuse(f"refused a redirect to {_safe_url(target)}: {problem}")
        return target


class AiohttpStreamResponse:
    """An open streamed response, from :meth:`AiohttpTransport.open_stream`.

    ``status``, ``headers`` (lower-case names) and ``url`` are known; the body is
    read with :meth:`iter_lines` (Server-Sent Events), :meth:`iter_chunks` or
    :meth:`read`. Use one of them per stream: they share the connection, not a buffer.
    """

    def __init__(
        self,
        transport: AiohttpTransport,
        method: str,
        url: URL,
        response: aiohttp.ClientResponse,
        idle_timeout: float | None,
        timeout: float,
    ) -> None:
        self._transport = transport
        self._method = method
        self._url = url
        self._response = response
        self._idle_timeout = idle_timeout
        self._timeout = timeout
        self._closed = False
        self.status: int = response.status
        self.headers: Mapping[str, str] = _lower_headers(response.headers)
        self.url: str = str(response.url)

    def __repr__(self) -> str:
        return f"<AiohttpStreamResponse {self.status} {self._method} {_safe_url(self._url)}>"

    async def read(self) -> bytes:
        """The rest of the body, within the request's timeout (for error responses)."""
        return await self._guarded(self._response.read, self._timeout)

    def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive, in chunks of any size."""
        return Chunks(self._next_chunk)

    def iter_lines(self) -> AsyncIterator[bytes]:
        """The body's lines as they arrive, without their LF or CRLF ending."""
        return Lines(self._next_chunk, self._method, _safe_url(self._url))

    async def _next_chunk(self) -> bytes:
        return await self._guarded(self._response.content.readany, self._idle_timeout)

    async def _guarded(self, read: Callable[[], Awaitable[bytes]], timeout: float | None) -> bytes:
        self._check_open()

        async def bounded() -> bytes:
            async with asyncio.timeout(timeout):
                return await read()

        data = await self._transport._translated(self._method, self._url, timeout, bounded())
        # aclose() may end the body "cleanly" (a body delimited by the connection's
        # end looks complete): the reader must still learn that it was cut off.
        self._check_open()
        return data

    def _check_open(self) -> None:
        where = f"{self._method} {_safe_url(self._url)}"
        if self._transport.closed:
            raise AppClosedError(f"{where} was interrupted: the transport was closed")
        if self._closed:
            raise TransportError(
                f"{where}: the stream is closed", method=self._method, url=_safe_url(self._url)
            )

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._response.content.at_eof():
            self._response.release()  # fully read: the connection may be reused
        else:
            self._response.close()  # an open stream: drop the connection


