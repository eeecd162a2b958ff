"""``QtNetworkTransport``: the HTTP seam on ``QNetworkAccessManager``.

Every ``QNetworkAccessManager`` lives on one process-wide network thread (a daemon
thread running a Qt event loop), not on the caller's thread: the App awaits on an
asyncio loop (its :class:`CoreLoop` thread, or a test's loop), where no Qt event loop
runs, and a manager only makes progress on a thread that runs one. Requests are
posted there through an :class:`~._invoker.Invoker`; replies, and the pieces of a
streamed body, come back with ``loop.call_soon_threadsafe``. The GUI thread takes no part.

Translations made here, the only place that knows Qt networking:

* no response (refused, reset, DNS, TLS) -> :class:`~appusers.errors.TransportError`,
  named by Qt's error code, never Qt's error string (it quotes the full URL, query and all);
* the timeout covers the whole exchange (for a stream: getting its headers) and is kept
  on the asyncio side, so it is exact; the reply is aborted on the network thread when it
  expires, when the caller is cancelled, or when a stream's block is left;
* redirects are followed only within the same origin (``SameOriginRedirectPolicy``),
  so an ``Authorization`` header never travels to another host, nor from https to http;
* plain ``http://`` only to loopback hosts unless the caller opts in (reliability S4);
* cookies are neither sent nor stored: the SDK authenticates with bearer tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import attrs
import shiboken6
from PySide6.QtCore import QByteArray, QCoreApplication, QEventLoop, QUrl
from PySide6.QtNetwork import QNetworkAccessManager, QNetworkReply, QNetworkRequest

from appusers.adapters._loopback import is_loopback
from appusers.adapters._reading import Chunks, Lines
from appusers.errors import (
    AppClosedError,
    AppError,
    InvalidArgumentError,
    RequestTimeoutError,
    TransportError,
)
from appusers.transport import Request, Response

from ._invoker import Invoker

__all__ = ["QtNetworkTransport", "QtStreamResponse"]

MAX_REDIRECTS: Final = 10
# A followed redirect's own headers are not the response's: wait for the final ones.
_REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})

_Error = QNetworkReply.NetworkError
# Codes of a complete response: Qt's names for a 4xx or 5xx status, and a redirect to
# another origin, which is returned as is (as ``send`` does). Any other code is a failure.
_COMPLETE: Final = frozenset({
    _Error.NoError, _Error.InsecureRedirectError, _Error.ContentAccessDenied,
    _Error.ContentOperationNotPermittedError, _Error.ContentNotFoundError,
    _Error.AuthenticationRequiredError, _Error.ProxyAuthenticationRequiredError, _Error.ContentConflictError,
    _Error.ContentGoneError, _Error.UnknownContentError, _Error.ProtocolInvalidOperationError,
    _Error.InternalServerError, _Error.OperationNotImplementedError, _Error.ServiceUnavailableError,
    _Error.UnknownServerError,
})


def _safe_url(url: str) -> str:
    """``url`` fit for a message: no query, fragment or user info."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def _reason(reply: QNetworkReply) -> str:
    # Qt's errorString() quotes the full URL: name the code only.
    code = reply.error()
    return str(getattr(code, "name", code))


def _headers(reply: QNetworkReply) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in reply.rawHeaderPairs():
        name = bytes(raw_name.data()).decode("latin-1").lower()
        value = bytes(raw_value.data()).decode("latin-1")
        # Repeated fields combine as a comma-separated list (RFC 9110 §5.3).
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _final_url(request: Request, reply: QNetworkReply) -> str:
    # The request's own spelling unless a redirect moved it (Qt re-encodes what it parses).
    final = reply.url()
    if final == QUrl.fromEncoded(QByteArray(request.url.encode("utf-8"))):
        return request.url
    return bytes(final.toEncoded().data()).decode("utf-8")


class _NetworkThread:
    """The daemon thread every manager lives on, started on first use."""

    _shared: _NetworkThread | None = None
    _guard = threading.Lock()

    def __init__(self) -> None:
        ready = threading.Event()
        self._invoker: Invoker | None = None

        def run() -> None:
            # A Python thread: Qt adopts it, and a QEventLoop gives it an event dispatcher.
            # Being a daemon thread, it never delays interpreter exit (a QThread would
            # abort the process if destroyed while running).
            loop = QEventLoop()
            self._invoker = Invoker()
            ready.set()
            loop.exec()

        self._thread = threading.Thread(target=run, name="appusers-qt-network", daemon=True)
        self._thread.start()
        ready.wait()

    @classmethod
    def get(cls) -> _NetworkThread:
        if QCoreApplication.instance() is None:
            raise RuntimeError("create the QApplication (or QCoreApplication) before a QtNetworkTransport")
        with cls._guard:
            if cls._shared is None or not cls._shared._thread.is_alive():
                cls._shared = cls()
            return cls._shared

    def post(self, fn: Callable[[], Any]) -> bool:
        assert self._invoker is not None
        return self._invoker.post(fn)


def _call_in(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(*args)`` on ``loop`` (from the network thread)."""
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:
        pass  # the awaiting loop is closed: nobody is waiting any more


def _settle(future: asyncio.Future[Any], outcome: object) -> None:
    if future.done():
        return  # timed out or cancelled meanwhile
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


class _Exchange:
    """One request in flight; its fields are touched on the network thread only,
    except ``future`` and ``loop`` (set once, before posting)."""

    __slots__ = ("aborted", "future", "loop", "reply", "request")

    def __init__(self, request: Request, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Response]):
        self.request = request
        self.loop = loop
        self.future = future
        self.reply: QNetworkReply | None = None
        self.aborted = False

    def resolve(self, outcome: Response | BaseException) -> None:
        """Hand ``outcome`` to the awaiting loop (from the network thread)."""
        _call_in(self.loop, _settle, self.future, outcome)

    def fail(self, error: AppError) -> None:
        self.resolve(error)


@attrs.frozen
class _Head:
    status: int
    headers: Mapping[str, str]
    url: str


class _StreamExchange:
    """One streamed response: the head goes to ``head``, then the body's pieces to
    ``queue`` (bytes; ``b""`` at the end; an :class:`AppError` if it failed). Both are
    fed with ``call_soon_threadsafe`` from the one network thread, so in order."""

    __slots__ = ("aborted", "head", "loop", "opened", "queue", "reply", "request")

    def __init__(self, request: Request, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.loop = loop
        self.head: asyncio.Future[_Head] = loop.create_future()
        self.queue: asyncio.Queue[bytes | AppError] = asyncio.Queue()
        # Network thread only:
        self.reply: QNetworkReply | None = None
        self.aborted = False
        self.opened = False  # the head has been handed over

    def open(self, head: _Head) -> None:
        self.opened = True
        _call_in(self.loop, _settle, self.head, head)

    def put(self, item: bytes | AppError) -> None:
        _call_in(self.loop, self.queue.put_nowait, item)

    def fail(self, error: AppError) -> None:
        if self.opened:
            self.put(error)
        else:
            _call_in(self.loop, _settle, self.head, error)


class QtNetworkTransport:
    """A :class:`~appusers.transport.StreamingTransport` on ``QNetworkAccessManager``.

    ::

        app = App("my-app", base_url=url, transport=QtNetworkTransport())

    ``timeout`` (seconds) applies to requests that carry none. Plain ``http://`` is
    refused except to loopback hosts unless ``allow_insecure_http=True``. A
    ``QCoreApplication`` must exist. Use from any asyncio loop on any thread; close
    with ``aclose()``. :meth:`open_stream` holds a response open (``watch``).
    """

    def __init__(self, *, timeout: float = 60.0, allow_insecure_http: bool = False) -> None:
        if not isinstance(timeout, int | float) or not (timeout > 0 and math.isfinite(timeout)):
            raise InvalidArgumentError("timeout must be a positive number of seconds")
        self._timeout = float(timeout)
        self._allow_insecure_http = allow_insecure_http
        self._net = _NetworkThread.get()
        self._closed = False
        # Network thread only:
        self._manager: QNetworkAccessManager | None = None
        self._in_flight: set[_Exchange | _StreamExchange] = set()

    def __repr__(self) -> str:
        return f"QtNetworkTransport(timeout={self._timeout}, closed={self._closed})"

    async def __aenter__(self) -> QtNetworkTransport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has been called."""
        return self._closed

    async def send(self, request: Request) -> Response:
        """Send ``request``; return the response whatever its status."""
        timeout = self._checked(request)
        loop = asyncio.get_running_loop()
        exchange = _Exchange(request, loop, loop.create_future())
        if not self._net.post(lambda: self._start(exchange)):
            raise AppClosedError("the Qt network thread is gone")
        try:
            async with asyncio.timeout(timeout):
                return await exchange.future
        except TimeoutError:
            self._net.post(lambda: self._abort(exchange))
            raise self._timed_out(request, timeout) from None
        except asyncio.CancelledError:
            self._net.post(lambda: self._abort(exchange))
            raise

    @contextlib.asynccontextmanager
    async def open_stream(
        self, request: Request, *, idle_timeout: float | None = None
    ) -> AsyncIterator[QtStreamResponse]:
        """Send ``request`` and hold its response open to read the body as it arrives.

        For Server-Sent Events. The timeout (the request's, else the transport's)
        bounds getting the response headers; after that the body may stay open
        indefinitely, unless ``idle_timeout`` bounds the wait for each next chunk.
        Leaving the block, normally, by an error or by cancellation, aborts the reply::

            async with transport.open_stream(request) as stream:
                if stream.status != 200:
                    error_body = await stream.read()
                async for line in stream.iter_lines():
                    ...
        """
        if idle_timeout is not None and not (
            isinstance(idle_timeout, int | float) and idle_timeout > 0 and math.isfinite(idle_timeout)
        ):
            raise InvalidArgumentError("idle_timeout must be a positive number of seconds or None")
        timeout = self._checked(request)
        exchange = _StreamExchange(request, asyncio.get_running_loop())
        if not self._net.post(lambda: self._start_stream(exchange)):
            raise AppClosedError("the Qt network thread is gone")
        try:
            async with asyncio.timeout(timeout):
                head = await exchange.head
        except TimeoutError:
            self._net.post(lambda: self._abort(exchange))
            raise self._timed_out(request, timeout) from None
        except BaseException:
            self._net.post(lambda: self._abort(exchange))
            raise
        stream = QtStreamResponse(self, exchange, head, timeout, idle_timeout)
        try:
            yield stream
        finally:
            stream._close()

    async def aclose(self) -> None:
        """Abort what is in flight and release the manager. Idempotent.

        Requests and streams still in flight fail with :class:`~appusers.errors.AppClosedError`.
        """
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def close() -> None:
            for exchange in list(self._in_flight):
                exchange.fail(AppClosedError(
                    f"{exchange.request.method} {_safe_url(exchange.request.url)} was interrupted: "
                    "the transport was closed"
                ))
                self._abort(exchange)
            if self._manager is not None:
                self._manager.deleteLater()
                self._manager = None
            _call_in(loop, _settle, done, None)

        if self._net.post(close):
            await done

    # -- checks before any I/O, on the caller's loop ------------------------------------

    def _checked(self, request: Request) -> float:
        """The request's timeout; raises for a request that may not be sent."""
        if self._closed:
            raise AppClosedError("the transport is closed")
        parts = urlsplit(request.url)
        insecure = parts.scheme == "http" and not is_loopback(parts.hostname or "")
        if insecure and not self._allow_insecure_http:
            raise InvalidArgumentError(
                f"{request.method} {_safe_url(request.url)}: plain http is only allowed to loopback "
                "hosts; use https or opt in with allow_insecure_http=True"
            )
        return request.timeout if request.timeout is not None else self._timeout

    @staticmethod
    def _timed_out(request: Request, timeout: float) -> RequestTimeoutError:
        safe = _safe_url(request.url)
        return RequestTimeoutError(
            f"{request.method} {safe} timed out after {timeout:g} s", method=request.method, url=safe
        )

    # -- network thread ----------------------------------------------------------------

    def _manager_here(self) -> QNetworkAccessManager:
        if self._manager is None:
            manager = QNetworkAccessManager()
            manager.setRedirectPolicy(QNetworkRequest.RedirectPolicy.SameOriginRedirectPolicy)
            self._manager = manager
        return self._manager

    def _send_here(self, request: Request) -> QNetworkReply | AppError:
        """The reply to ``request``, sent with the rules every exchange shares."""
        if self._closed:
            return AppClosedError("the transport is closed")
        url = QUrl.fromEncoded(QByteArray(request.url.encode("utf-8")), QUrl.ParsingMode.StrictMode)
        if not url.isValid() or url.scheme() not in ("http", "https"):
            return TransportError(
                f"{request.method} {_safe_url(request.url)}: not a valid http(s) URL",
                method=request.method, url=_safe_url(request.url),
            )
        qreq = QNetworkRequest(url)
        qreq.setMaximumRedirectsAllowed(MAX_REDIRECTS)
        manual = QNetworkRequest.LoadControl.Manual
        qreq.setAttribute(QNetworkRequest.Attribute.CookieLoadControlAttribute, manual)
        qreq.setAttribute(QNetworkRequest.Attribute.CookieSaveControlAttribute, manual)
        names = set()
        for name, value in request.headers.items():
            qreq.setRawHeader(QByteArray(name.encode("latin-1")), QByteArray(value.encode("latin-1")))
            names.add(name.lower())
        if request.body is not None and "content-type" not in names:
            # Otherwise Qt guesses a form encoding and prints a warning.
            qreq.setRawHeader(QByteArray(b"Content-Type"), QByteArray(b"application/octet-stream"))
        verb = QByteArray(request.method.encode("ascii"))
        manager = self._manager_here()
        if request.body is None:
            return manager.sendCustomRequest(qreq, verb)
        return manager.sendCustomRequest(qreq, verb, QByteArray(request.body))

    def _start(self, exchange: _Exchange) -> None:
        if exchange.future.done():
            return  # already timed out or cancelled before it could start
        reply = self._send_here(exchange.request)
        if isinstance(reply, AppError):
            exchange.resolve(reply)
            return
        exchange.reply = reply
        self._in_flight.add(exchange)
        reply.finished.connect(lambda: self._finished(exchange))

    def _abort(self, exchange: _Exchange | _StreamExchange) -> None:
        reply = exchange.reply
        exchange.aborted = True
        if reply is not None and shiboken6.isValid(reply) and reply.isRunning():
            reply.abort()

    def _finished(self, exchange: _Exchange) -> None:
        self._in_flight.discard(exchange)
        reply = exchange.reply
        exchange.reply = None
        if reply is None or not shiboken6.isValid(reply):
            return
        try:
            if not exchange.aborted:
                exchange.resolve(self._outcome(exchange.request, reply))
        finally:
            reply.deleteLater()

    @staticmethod
    def _outcome(request: Request, reply: QNetworkReply) -> Response | BaseException:
        status = reply.attribute(QNetworkRequest.Attribute.HttpStatusCodeAttribute)
        safe = _safe_url(request.url)
        if status is None or reply.error() not in _COMPLETE:
            # No HTTP response at all, or not all of it (cut short, too many redirects).
            return TransportError(
                f"{request.method} {safe} failed: {_reason(reply)}", method=request.method, url=safe
            )
        body = bytes(reply.readAll().data())
        return Response(int(status), _headers(reply), body, _final_url(request, reply))

    # -- network thread: streams -------------------------------------------------------

    def _start_stream(self, exchange: _StreamExchange) -> None:
        if exchange.head.done():
            return  # already timed out or cancelled before it could start
        reply = self._send_here(exchange.request)
        if isinstance(reply, AppError):
            exchange.fail(reply)
            return
        exchange.reply = reply
        self._in_flight.add(exchange)
        reply.metaDataChanged.connect(lambda: self._stream_head(exchange))
        reply.readyRead.connect(lambda: self._stream_data(exchange))
        reply.finished.connect(lambda: self._stream_finished(exchange))

    @staticmethod
    def _stream_head(exchange: _StreamExchange) -> bool:
        """Hand over the head once the final response's is here; whether it has been."""
        if exchange.opened:
            return True
        reply = exchange.reply
        if reply is None or exchange.aborted:
            return False
        status = reply.attribute(QNetworkRequest.Attribute.HttpStatusCodeAttribute)
        if status is None:
            return False
        if reply.isRunning() and int(status) in _REDIRECT_STATUSES and reply.hasRawHeader("Location"):
            # Qt may be following it: if not, the reply finishes with this status.
            return False
        exchange.open(_Head(int(status), _headers(reply), _final_url(exchange.request, reply)))
        return True

    def _stream_data(self, exchange: _StreamExchange) -> None:
        reply = exchange.reply
        if reply is None or exchange.aborted or not self._stream_head(exchange):
            return
        data = bytes(reply.readAll().data())
        if data:
            exchange.put(data)

    def _stream_finished(self, exchange: _StreamExchange) -> None:
        self._in_flight.discard(exchange)
        reply = exchange.reply
        if reply is None or not shiboken6.isValid(reply):
            return
        try:
            if exchange.aborted:
                return
            request = exchange.request
            safe = _safe_url(request.url)
            failure = None
            if reply.error() not in _COMPLETE:
                failure = TransportError(
                    f"{request.method} {safe} failed: {_reason(reply)}", method=request.method, url=safe
                )
            if not exchange.opened and (failure is not None or not self._stream_head(exchange)):
                # No usable head: no response (refused, TLS), or too many redirects.
                exchange.fail(failure or TransportError(
                    f"{request.method} {safe} failed: no response", method=request.method, url=safe
                ))
                return
            data = bytes(reply.readAll().data())
            if data:
                exchange.put(data)
            # The end, or how the body was cut short (reset, closed early, bad chunking).
            exchange.put(failure or b"")
        finally:
            exchange.reply = None
            reply.deleteLater()


class QtStreamResponse:
    """An open streamed response, from :meth:`QtNetworkTransport.open_stream`.

    ``status``, ``headers`` (lower-case names) and ``url`` are known; the body is
    read with :meth:`iter_lines` (Server-Sent Events), :meth:`iter_chunks` or
    :meth:`read`. Use one of them per stream: they share one queue of chunks.
    """

    def __init__(
        self,
        transport: QtNetworkTransport,
        exchange: _StreamExchange,
        head: _Head,
        timeout: float,
        idle_timeout: float | None,
    ) -> None:
        self._transport = transport
        self._exchange = exchange
        self._method = exchange.request.method
        self._where = _safe_url(exchange.request.url)
        self._timeout = timeout
        self._idle_timeout = idle_timeout
        self._closed = False
        # How the body ended, once it has: every later read says the same.
        self._end: AppError | None = None
        self._ended = False
        self.status: int = head.status
        self.headers: Mapping[str, str] = head.headers
        self.url: str = head.url

    def __repr__(self) -> str:
        return f"<QtStreamResponse {self.status} {self._method} {self._where}>"

    async def read(self) -> bytes:
        """The rest of the body, within the request's timeout (for error responses)."""
        parts: list[bytes] = []
        scope = asyncio.timeout(self._timeout)
        try:
            async with scope:
                while chunk := await self._next(None):
                    parts.append(chunk)
        except TimeoutError:
            if scope.expired():
                raise self._timed_out(self._timeout) from None
            raise
        return b"".join(parts)

    def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive, in chunks of any size."""
        return Chunks(self._next_chunk)

    def iter_lines(self) -> AsyncIterator[bytes]:
        """The body's lines as they arrive, without their LF or CRLF ending."""
        return Lines(self._next_chunk, self._method, self._where)

    async def _next_chunk(self) -> bytes:
        return await self._next(self._idle_timeout)

    async def _next(self, timeout: float | None) -> bytes:
        """The next piece of the body, ``b""`` at its end."""
        self._check_open()
        if self._end is not None:
            raise self._end
        if self._ended:
            return b""
        scope = asyncio.timeout(timeout)
        try:
            async with scope:
                item = await self._exchange.queue.get()
        except TimeoutError:
            if scope.expired():
                raise self._timed_out(timeout) from None
            raise
        if isinstance(item, AppError):
            self._end = item
            raise item
        if not item:
            self._ended = True
        # aclose() or the block's end may have come while we waited.
        self._check_open()
        return item

    def _timed_out(self, timeout: float | None) -> RequestTimeoutError:
        assert timeout is not None  # only a bounded wait expires
        return RequestTimeoutError(
            f"{self._method} {self._where} timed out after {timeout:g} s",
            method=self._method, url=self._where,
        )

    def _check_open(self) -> None:
        if self._transport.closed:
            raise AppClosedError(f"{self._method} {self._where} was interrupted: the transport was closed")
        if self._closed:
            raise TransportError(f"{self._method} {self._where}: the stream is closed",
                                 method=self._method, url=self._where)

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        exchange = self._exchange
        self._transport._net.post(lambda: self._transport._abort(exchange))


