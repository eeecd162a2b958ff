"""``UrlRequestTransport``: the HTTP seam on Kivy's ``UrlRequest``, for mobile builds without aiohttp.

``UrlRequest`` runs each request in a thread of its own and normally hands the
result back through Kivy's ``Clock``. Here the dispatch is triggered on the
asyncio loop that awaits the request instead (with ``App.async_run`` that is
Kivy's loop and thread anyway), so requests also work before Kivy's loop has
started, e.g. while an app restores its users, and without a window. Also:

* Kivy keeps the ``on_*`` callbacks as weak methods, so each in-flight request's
  callbacks live on a small object this transport holds strongly until it ends;
  otherwise a collected callback would leave the request hanging.
* ``UrlRequest``'s ``timeout`` is per socket operation, not for the whole
  request, so the total timeout is kept on the asyncio side and the request is
  cancelled when it expires.

The raw status, headers and body are captured in the worker thread (a subclass
of ``UrlRequestUrllib``, the implementation Kivy 2.3's ``UrlRequest`` names by
default), because ``UrlRequest`` itself decodes bodies to text or JSON and folds
``Set-Cookie`` headers.

Streaming (``open_stream``, for ``watch``): stock ``UrlRequest`` hands over the
body only once it has all of it, and an event stream never ends. Its
``on_progress`` mode does read in chunks, but reports only byte counts, through
the same result queue that is drained by a trigger. So a second subclass replaces
the one step that reads the body (``get_response``, called in the worker thread
once the headers are in): it posts the head, then each piece as
``HTTPResponse.read1`` returns it, straight onto the awaiting loop with
``call_soon_threadsafe`` (into an ``asyncio.Queue``; the order of posting is the
order of arrival). Everything else stays ``UrlRequest``'s: the thread, the
connection set-up (TLS, ``ca_file``, ``verify``), and failures, which still reach
the loop through its ``on_error`` dispatch, after the pieces already posted.
Rejected alternatives: a thread of our own around ``http.client`` (a second HTTP
stack beside ``UrlRequest``, with its own TLS set-up to keep in step), and
``UrlRequestRequests`` (not Kivy's default implementation; ``requests`` pools
its connections out of reach, so closing a stream promptly would mean reaching
into urllib3).

* Once the head is in, the socket's own timeout is lifted: a change stream may
  be silent for hours; ``idle_timeout`` bounds each wait on the asyncio side.
* At most :data:`_BUFFERED_CHUNKS` pieces wait unread: then the worker blocks
  (and the server sees TCP back-pressure) until the reader catches up.
* Leaving the block cancels the request and shuts its socket down, which wakes
  the worker from a blocking read at once; the server sees the connection end.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import itertools
import math
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar
from urllib.parse import urljoin, urlsplit

from kivy.network.urlrequest import UrlRequestUrllib

from appusers.adapters._loopback import is_loopback
from appusers.adapters._reading import MAX_LINE_BYTES, Chunks, Lines
from appusers.errors import (
    AppClosedError,
    AppError,
    InvalidArgumentError,
    RequestTimeoutError,
    TransportError,
)
from appusers.transport import Request, Response

__all__ = ["MAX_LINE_BYTES", "MAX_REDIRECTS", "UrlRequestStreamResponse", "UrlRequestTransport"]

_T = TypeVar("_T")

_DEFAULT_SOCKET_TIMEOUT = 60.0
MAX_REDIRECTS = 10
"""Redirect hops followed before giving up with a ``TransportError`` (as ``AiohttpTransport``)."""
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_BODY_HEADERS = frozenset(
    {"content-type", "content-length", "content-encoding", "content-language", "content-location"}
)
# Credentials belong to the origin they were sent to (fetch drops them on a cross-origin hop).
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_CHUNK_BYTES = 64 * 1024
_BUFFERED_CHUNKS = 64
_ids = itertools.count(1)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return (parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or default)


def _safe_url(url: str) -> str:
    """The URL without query, fragment or user info: those can carry secrets."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def _merged_headers(raw: list[tuple[str, str]]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for name, value in raw:
        key = name.lower()
        # Repeated fields combine as a comma-separated list (RFC 9110 §5.3).
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    return merged


class _RawUrlRequest(UrlRequestUrllib):  # type: ignore[misc]
    """Keeps the undecoded status, headers and body next to Kivy's decoded result, and its
    connection, so that an abandoned or failed request closes its socket at once.

    (``UrlRequest`` closes the connection only after a success; after an error the socket
    would stay open, held by the queued exception, until the Clock next ticks.)
    """

    raw: tuple[int, list[tuple[str, str]], bytes] | None = None
    connection: Any = None
    # The connected socket, kept apart from ``connection.sock``: http.client drops that
    # reference when a response is delimited by the connection's end, and abort() must
    # still be able to shut the socket down.
    sock: socket.socket | None = None
    _defer_start = True

    def __init__(self, url: str, *, loop: asyncio.AbstractEventLoop, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)  # does not start the thread yet: see start()

        def trigger(*_: Any) -> None:
            try:
                loop.call_soon_threadsafe(self._dispatch_result, 0)
            except RuntimeError:  # the loop is closed: drop what nobody can receive
                self._queue.clear()

        # Results are dispatched on the awaiting loop rather than on Kivy's Clock, so requests
        # work before Kivy's loop starts (and without a window); under App.async_run it is the
        # same thread anyway.
        self._trigger_result = trigger
        self._defer_start = False
        self.start()

    def start(self) -> None:
        if not self._defer_start:
            super().start()

    def _get_connection_for_scheme(self, scheme: str) -> Any:
        base = super()._get_connection_for_scheme(scheme)
        owner = self

        class Tracked(base):  # type: ignore[misc, valid-type]
            def connect(self) -> None:
                owner.connection = self
                super().connect()
                owner.sock = self.sock
                if owner._cancel_event.is_set():  # aborted while connecting
                    self.close()

        return Tracked

    def _fetch_url(self, url: str, body: Any, headers: Any, q: Any) -> Any:
        try:
            return super()._fetch_url(url, body, headers, q)
        finally:
            self._close_connection()

    def get_response(self, resp: Any) -> Any:
        body = resp.read()
        self.raw = (resp.status, list(resp.getheaders()), body)
        return body

    def abort(self) -> None:
        """Cancel, and unblock the worker thread now by shutting its socket down."""
        self.cancel()
        sock = self.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _close_connection(self) -> None:
        connection = self.connection
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.close()


class _InFlight:
    """One request's callbacks (held strongly: Kivy references them weakly) and its future."""

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Response], url: str) -> None:
        self.loop = loop
        self.future = future
        self.url = url
        self.request: _RawUrlRequest | None = None

    def _settle(self, outcome: Response | BaseException | None) -> None:
        """Resolve the future on its loop (``None``: cancel it); callable from any thread."""

        def settle() -> None:
            if self.future.done():
                return
            if outcome is None:
                self.future.cancel()
            elif isinstance(outcome, BaseException):
                self.future.set_exception(outcome)
            else:
                self.future.set_result(outcome)

        try:
            self.loop.call_soon_threadsafe(settle)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting any more

    def on_done(self, request: _RawUrlRequest, result: Any) -> None:
        raw = request.raw
        if raw is None:  # pragma: no cover - a response always passes through get_response
            self._settle(ConnectionError("no response was captured"))
            return
        status, headers, body = raw
        self._settle(Response(status, _merged_headers(headers), body, self.url))

    def on_error(self, request: _RawUrlRequest, error: Any) -> None:
        self._settle(error if isinstance(error, Exception) else ConnectionError(type(error).__name__))

    def on_cancel(self, request: _RawUrlRequest) -> None:
        self._settle(None)


# -- streaming ----------------------------------------------------------------------------------


class _StreamingUrlRequest(_RawUrlRequest):
    """Posts the head, then the body piece by piece as it arrives, to its :class:`_Feed`."""

    def __init__(self, url: str, *, feed: _Feed, **kwargs: Any) -> None:
        self.feed = feed  # before the thread starts (at the end of the base __init__)
        super().__init__(url, **kwargs)

    def get_response(self, resp: Any) -> Any:
        # The worker thread, headers just parsed: Kivy would now read the whole body.
        feed = self.feed
        try:
            feed.post(feed.set_head, resp.status, list(resp.getheaders()))
            sock = self.sock
            if sock is not None:
                # The head was bounded by the socket timeout; the body waits for events,
                # bounded (if at all) by idle_timeout on the asyncio side.
                sock.settimeout(None)
            while True:
                feed.room.acquire()  # back-pressure; abort() releases it to wake us
                if self._cancel_event.is_set():
                    return b""
                chunk = resp.read1(_CHUNK_BYTES)
                if self._cancel_event.is_set():
                    return b""  # a read ended by abort(): nothing to report
                if not chunk:
                    break
                feed.post(feed.put, chunk)
            if resp.length:  # read1 reports a body cut short of its Content-Length as its end
                raise http.client.IncompleteRead(b"", resp.length)
            feed.post(feed.put, b"")
            return b""
        finally:
            resp.close()  # with the connection closed by _fetch_url, the socket goes too


class _Feed:
    """The loop's side of one streamed exchange: its head, then its body's pieces.

    The worker thread posts through :meth:`post`; Kivy's dispatch (already on the loop)
    reports failures through ``on_error``. Holds the request's callbacks strongly.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, url: str) -> None:
        self.loop = loop
        self.url = url
        self.head: asyncio.Future[tuple[int, dict[str, str]]] = loop.create_future()
        self.room = threading.Semaphore(_BUFFERED_CHUNKS)
        self.request: _StreamingUrlRequest | None = None
        # A piece of the body, b"" for its end, or why it failed.
        self._queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
        self._final: bytes | BaseException | None = None

    @property
    def status(self) -> int:
        return self.head.result()[0]

    @property
    def headers(self) -> Mapping[str, str]:
        return self.head.result()[1]

    def post(self, callback: Callable[..., None], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop; from the worker thread."""
        try:
            self.loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            pass  # the loop is closed: nobody is reading any more

    def set_head(self, status: int, headers: list[tuple[str, str]]) -> None:
        if not self.head.done():
            self.head.set_result((status, _merged_headers(headers)))

    def put(self, item: bytes | BaseException) -> None:
        self._queue.put_nowait(item)

    def on_error(self, request: _StreamingUrlRequest, error: Any) -> None:
        failure = error if isinstance(error, Exception) else ConnectionError(type(error).__name__)
        if not self.head.done():
            self.head.set_exception(failure)
        else:
            self.put(failure)

    def on_cancel(self, request: _StreamingUrlRequest) -> None:
        # Only abort() cancels, and by then nobody waits for the head; a reader still
        # waiting for a piece (the transport closed under it) must not wait forever.
        if not self.head.done():
            self.head.cancel()
        else:
            self.put(ConnectionAbortedError())

    async def next_chunk(self) -> bytes:
        """The next piece of the body, ``b""`` at its end; raises what ended it otherwise."""
        if self._final is None:
            item = await self._queue.get()
            if isinstance(item, bytes) and item:
                self.room.release()
                return item
            self._final = item  # the end, or the failure, stays
        if isinstance(self._final, BaseException):
            raise self._final
        return b""

    def abort(self) -> None:
        """Stop the worker and drop the connection now; idempotent, from the loop."""
        if self.request is not None:
            self.request.abort()
        self.room.release()  # a worker blocked on back-pressure wakes and sees the cancel
        if not self.head.done():
            self.head.cancel()
        if self._final is None:
            self.put(ConnectionAbortedError())  # wakes a reader still waiting


class UrlRequestStreamResponse:
    """An open streamed response, from :meth:`UrlRequestTransport.open_stream`.

    As ``AiohttpStreamResponse``: ``status``, ``headers`` (lower-case names) and
    ``url`` are known; read the body with :meth:`iter_lines` (Server-Sent Events),
    :meth:`iter_chunks` or :meth:`read`, one of them per stream.
    """

    def __init__(
        self,
        transport: UrlRequestTransport,
        method: str,
        url: str,
        feed: _Feed,
        idle_timeout: float | None,
        timeout: float,
    ) -> None:
        self._transport = transport
        self._method = method
        self._requested = url
        self._feed = feed
        self._idle_timeout = idle_timeout
        self._timeout = timeout
        self._closed = False
        self.status: int = feed.status
        self.headers: Mapping[str, str] = feed.headers
        self.url: str = feed.url

    def __repr__(self) -> str:
        return f"<UrlRequestStreamResponse {self.status} {self._method} {_safe_url(self._requested)}>"

    async def read(self) -> bytes:
        """The rest of the body, within the request's timeout (for error responses)."""

        async def everything() -> bytes:
            pieces = []
            while chunk := await self._feed.next_chunk():
                pieces.append(chunk)
            return b"".join(pieces)

        return await self._guarded(everything, self._timeout)

    def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive, in pieces of any size."""
        return Chunks(self._next_chunk)

    def iter_lines(self) -> AsyncIterator[bytes]:
        """The body's lines as they arrive, without their LF or CRLF ending."""
        return Lines(self._next_chunk, self._method, _safe_url(self._requested))

    async def _next_chunk(self) -> bytes:
        return await self._guarded(self._feed.next_chunk, self._idle_timeout)

    async def _guarded(self, read: Callable[[], Awaitable[bytes]], timeout: float | None) -> bytes:
        self._check_open()

        async def bounded() -> bytes:
            async with asyncio.timeout(timeout):
                return await read()

        data = await self._transport._translated(self._method, self._requested, timeout, bounded())
        self._check_open()  # closed while we waited: the reader must learn it was cut off
        return data

    def _check_open(self) -> None:
        where = f"{self._method} {_safe_url(self._requested)}"
        if self._transport.closed:
            raise AppClosedError(f"{where} was interrupted: the transport was closed")
        if self._closed:
            raise TransportError(
                f"{where}: the stream is closed", method=self._method, url=_safe_url(self._requested)
            )

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            self._transport._release(self._feed)


# -- the transport ------------------------------------------------------------------------------


class _Head(Protocol):
    """What redirect handling reads of a hop: a ``Response``, or a stream's ``_Feed``."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


_H = TypeVar("_H", bound=_Head)


class UrlRequestTransport:
    """A :class:`~appusers.transport.StreamingTransport` on ``kivy.network.urlrequest.UrlRequest``.

    ::

        app = App("my-app", base_url=..., transport=UrlRequestTransport())

    ``send`` and ``open_stream`` are awaited on an asyncio loop (Kivy's, with
    ``App.async_run``); the ``UrlRequest`` callbacks run there. ``ca_file`` and
    ``verify`` are passed to ``UrlRequest`` for HTTPS.

    As ``AiohttpTransport``: redirects follow fetch's rules (credentials never reach
    another origin, https never falls back to http, at most :data:`MAX_REDIRECTS` hops),
    plain ``http://`` is refused except to loopback unless ``allow_insecure_http=True``,
    and ``request.timeout`` bounds the whole exchange, redirects included (for
    ``open_stream``: getting the headers; 60 s when the request has none).
    """

    def __init__(
        self, *, ca_file: str | None = None, verify: bool = True, allow_insecure_http: bool = False
    ) -> None:
        self._ca_file = ca_file
        self._verify = verify
        self._allow_insecure_http = allow_insecure_http
        self._closed = False
        self._in_flight: set[_InFlight] = set()
        self._feeds: set[_Feed] = set()
        self._id = next(_ids)

    @property
    def closed(self) -> bool:
        return self._closed

    async def send(self, request: Request) -> Response:
        """Send ``request``; every HTTP status is returned, only a missing response raises."""
        self._check(request)

        async def exchange() -> Response:
            async with asyncio.timeout(request.timeout):
                return await self._follow(request, self._exchange, lambda _response: None)

        return await self._translated(request.method, request.url, request.timeout, exchange())

    @contextlib.asynccontextmanager
    async def open_stream(
        self, request: Request, *, idle_timeout: float | None = None
    ) -> AsyncIterator[UrlRequestStreamResponse]:
        """Send ``request`` and hold its response open to read the body as it arrives.

        For Server-Sent Events. ``request.timeout`` (60 s if ``None``) bounds getting
        the response headers; after that the body may stay open indefinitely, unless
        ``idle_timeout`` bounds the wait for each next piece. Leaving the block,
        normally, by an error or by cancellation, closes the connection::

            async with transport.open_stream(request) as stream:
                if stream.status != 200:
                    error_body = await stream.read()
                async for line in stream.iter_lines():
                    ...
        """
        if idle_timeout is not None and not (idle_timeout > 0 and math.isfinite(idle_timeout)):
            raise InvalidArgumentError("idle_timeout must be a positive number of seconds or None")
        self._check(request)
        timeout = request.timeout if request.timeout is not None else _DEFAULT_SOCKET_TIMEOUT

        async def opening() -> _Feed:
            async with asyncio.timeout(timeout):
                return await self._follow(request, self._open_hop, self._release)

        feed = await self._translated(request.method, request.url, timeout, opening())
        stream = UrlRequestStreamResponse(self, request.method, request.url, feed, idle_timeout, timeout)
        try:
            yield stream
        finally:
            stream._close()

    # -- the error border ---------------------------------------------------------------

    def _check(self, request: Request) -> None:
        where = f"{request.method} {_safe_url(request.url)}"
        if self._closed:
            raise AppClosedError(f"{where}: the transport is closed")
        problem = self._url_problem(request.url)
        if problem is not None:
            raise InvalidArgumentError(f"{where}: {problem}")

    async def _translated(self, method: str, url: str, timeout: float | None, work: Awaitable[_T]) -> _T:
        """Await ``work``; whatever foreign it raises leaves as an appusers error.

        The new error is raised outside the ``except`` blocks, so nothing is chained to it:
        a library exception's text may quote the URL with its query.
        """
        where = f"{method} {_safe_url(url)}"
        failure: BaseException
        try:
            return await work
        except AppError:
            raise  # ours (a refused redirect, a closed stream), already safe to show
        except asyncio.CancelledError:
            if not self._closed or _current_task_cancelling():
                raise
            failure = AppClosedError(f"{where} was interrupted: the transport was closed")
        except Exception as exc:
            if self._closed:
                failure = AppClosedError(f"{where} was interrupted: the transport was closed")
            elif isinstance(exc, TimeoutError):  # ours, or a socket's
                after = "" if timeout is None else f" after {timeout:g} s"
                failure = RequestTimeoutError(f"{where} timed out{after}", method=method, url=_safe_url(url))
            else:
                # Only the exception's type: its text may quote the URL with its query.
                failure = TransportError(
                    f"{where} failed: {type(exc).__name__}", method=method, url=_safe_url(url)
                )
        raise failure

    # -- exchanges ------------------------------------------------------------------------

    async def _follow(
        self,
        request: Request,
        exchange: Callable[[str, str, dict[str, str], bytes | None, float], Awaitable[_H]],
        discard: Callable[[_H], None],
    ) -> _H:
        """The first hop that is not a redirect to follow (fetch's rules, as AiohttpTransport).

        ``UrlRequest`` (``http.client``) never follows redirects itself, so each hop is checked
        here: credentials never go to another origin, https never falls back to http.
        ``discard`` releases a hop that is not returned.
        """
        method = request.method.upper()
        url, headers, body = request.url, dict(request.headers), request.body
        socket_timeout = request.timeout if request.timeout is not None else _DEFAULT_SOCKET_TIMEOUT
        for _hop in range(MAX_REDIRECTS + 1):
            response = await exchange(method, url, headers, body, socket_timeout)
            location = response.headers.get("location") if response.status in _REDIRECT_STATUSES else None
            if location is None:
                return response  # a 3xx without Location is returned as is
            status = response.status
            discard(response)
            target = self._redirect_target(request.method, url, location)
            if _origin(target) != _origin(url):
                # For the rest of the chain: fetch removes them, it does not restore them.
                headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
            # fetch: 301/302 turn POST into GET, 303 turns anything but GET/HEAD into GET;
            # 307/308 keep method and body.
            to_get = status == 303 and method not in ("GET", "HEAD")
            if to_get or (status in (301, 302) and method == "POST"):
                method, body = "GET", None
                headers = {k: v for k, v in headers.items() if k.lower() not in _BODY_HEADERS}
            url = target
        first = _safe_url(request.url)
        raise TransportError(
            f"{request.method} {first} failed: more than {MAX_REDIRECTS} redirects",
            method=request.method, url=first,
        )

    async def _exchange(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, socket_timeout: float
    ) -> Response:
        """One request/response with ``UrlRequest``; its own exceptions pass through."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Response] = loop.create_future()
        flight = _InFlight(loop, future, url)
        self._in_flight.add(flight)
        answered = False
        try:
            flight.request = _RawUrlRequest(
                url,
                loop=loop,
                on_success=flight.on_done,
                on_redirect=flight.on_done,
                on_failure=flight.on_done,
                on_error=flight.on_error,
                on_cancel=flight.on_cancel,
                req_body=body,
                req_headers=dict(headers),
                timeout=socket_timeout,
                method=method,
                decode=False,
                ca_file=self._ca_file,
                verify=self._verify,
            )
            response = await future
            answered = True
            return response
        finally:
            self._in_flight.discard(flight)
            if not answered:
                if flight.request is not None:
                    flight.request.abort()
                future.cancel()

    async def _open_hop(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, socket_timeout: float
    ) -> _Feed:
        """One streamed request, up to its head; its own exceptions pass through."""
        loop = asyncio.get_running_loop()
        feed = _Feed(loop, url)
        self._feeds.add(feed)
        opened = False
        try:
            # Kivy calls on_error/on_cancel on our loop; success needs no callback: the
            # worker has posted the end of the body by then.
            feed.request = _StreamingUrlRequest(
                url,
                loop=loop,
                feed=feed,
                on_error=feed.on_error,
                on_cancel=feed.on_cancel,
                req_body=body,
                req_headers=dict(headers),
                timeout=socket_timeout,
                method=method,
                decode=False,
                ca_file=self._ca_file,
                verify=self._verify,
            )
            await feed.head
            opened = True
            return feed
        finally:
            if not opened:
                self._release(feed)

    def _release(self, feed: _Feed) -> None:
        """Close a streamed exchange's connection now and forget it."""
        self._feeds.discard(feed)
        feed.abort()

    def _url_problem(self, url: str) -> str | None:
        """Why ``url`` may not be requested (asked of the request and of every redirect)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return "only absolute http:// and https:// URLs can be requested"
        if parts.scheme == "http" and not self._allow_insecure_http and not is_loopback(parts.hostname):
            return (
                "plain http is only allowed to loopback hosts; use https "
                "or opt in with allow_insecure_http=True"
            )
        return None

    def _redirect_target(self, method: str, url: str, location: str) -> str:
        def refuse(why: str) -> TransportError:
            return TransportError(f"{method} {_safe_url(url)}: {why}", method=method, url=_safe_url(url))

        try:
            target = urljoin(url, location.strip())
            urlsplit(target).port  # noqa: B018 - raises ValueError for a malformed port
        except ValueError:
            raise refuse("redirected to an invalid Location") from None
        if urlsplit(url).scheme == "https" and urlsplit(target).scheme == "http":
            raise refuse("refused a redirect from https to plain http")
        problem = self._url_problem(target)
        if problem is not None:
            raise refuse(f"refused a redirect to {_safe_url(target)}: {problem}")
        return target

    async def aclose(self) -> None:
        """Cancel what is in flight and close open streams; later sends raise ``AppClosedError``.

        Idempotent.
        """
        self._closed = True
        for flight in list(self._in_flight):
            if flight.request is not None:
                flight.request.abort()
            if not flight.future.done():
                flight.future.cancel()
        for feed in list(self._feeds):
            self._release(feed)

    async def __aenter__(self) -> UrlRequestTransport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        if self._closed:
            state = "closed"
        else:
            state = f"{len(self._in_flight)} in flight, {len(self._feeds)} streams open"
        return f"<UrlRequestTransport #{self._id} {state}>"


def _current_task_cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
