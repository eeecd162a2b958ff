"""``QtNetworkTransport``: the HTTP seam on ``QNetworkAccessManager``.

Every ``QNetworkAccessManager`` lives on one process-wide network thread (a daemon
thread running a Qt event loop), not on the caller's thread: the App awaits on an
asyncio loop (its :class:`CoreLoop` thread, or a test's loop), where no Qt event loop
runs, and a manager only makes progress on a thread that runs one. Requests are
posted there through an :class:`~._invoker.Invoker`; replies come back with
``loop.call_soon_threadsafe``. The GUI thread takes no part.

Translations made here, the only place that knows Qt networking:

* no response (refused, reset, DNS, TLS) -> :class:`~appusers.errors.TransportError`,
  named by Qt's error code, never Qt's error string (it quotes the full URL, query and all);
* the timeout covers the whole exchange and is kept on the asyncio side, so it is exact;
  the reply is aborted on the network thread when it expires or the caller is cancelled;
* redirects are followed only within the same origin (``SameOriginRedirectPolicy``),
  so an ``Authorization`` header never travels to another host;
* cookies are neither sent nor stored: the SDK authenticates with bearer tokens.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import shiboken6
from PySide6.QtCore import QByteArray, QCoreApplication, QEventLoop, QUrl
from PySide6.QtNetwork import QNetworkAccessManager, QNetworkReply, QNetworkRequest

from appusers.errors import AppClosedError, InvalidArgumentError, RequestTimeoutError, TransportError
from appusers.transport import Request, Response

from ._invoker import Invoker

__all__ = ["QtNetworkTransport"]

MAX_REDIRECTS = 10


def _safe_url(url: str) -> str:
    """``url`` fit for a message: no query, fragment or user info."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


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

        def settle() -> None:
            if self.future.done():
                return  # timed out or cancelled meanwhile
            if isinstance(outcome, BaseException):
                self.future.set_exception(outcome)
            else:
                self.future.set_result(outcome)

        try:
            self.loop.call_soon_threadsafe(settle)
        except RuntimeError:
            pass  # the awaiting loop is closed: nobody is waiting any more


class QtNetworkTransport:
    """A :class:`~appusers.transport.Transport` on ``QNetworkAccessManager``.

    ::

        app = App("my-app", base_url=url, transport=QtNetworkTransport())

    ``timeout`` (seconds) applies to requests that carry none. A ``QCoreApplication``
    must exist. Use from any asyncio loop on any thread; close with ``aclose()``.
    Has no ``open_stream``: streaming function calls need the aiohttp transport.
    """

    def __init__(self, *, timeout: float = 60.0) -> None:
        if not isinstance(timeout, int | float) or timeout <= 0:
            raise InvalidArgumentError("timeout must be a positive number of seconds")
        self._timeout = float(timeout)
        self._net = _NetworkThread.get()
        self._closed = False
        # Network thread only:
        self._manager: QNetworkAccessManager | None = None
        self._in_flight: set[_Exchange] = set()

    def __repr__(self) -> str:
        return f"QtNetworkTransport(timeout={self._timeout}, closed={self._closed})"

    async def __aenter__(self) -> QtNetworkTransport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def send(self, request: Request) -> Response:
        """Send ``request``; return the response whatever its status."""
        if self._closed:
            raise AppClosedError("the transport is closed")
        loop = asyncio.get_running_loop()
        exchange = _Exchange(request, loop, loop.create_future())
        if not self._net.post(lambda: self._start(exchange)):
            raise AppClosedError("the Qt network thread is gone")
        timeout = request.timeout if request.timeout is not None else self._timeout
        try:
            async with asyncio.timeout(timeout):
                return await exchange.future
        except TimeoutError:
            self._net.post(lambda: self._abort(exchange))
            raise RequestTimeoutError(
                f"{request.method} {_safe_url(request.url)} timed out after {timeout:g} s",
                method=request.method, url=_safe_url(request.url),
            ) from None
        except asyncio.CancelledError:
            self._net.post(lambda: self._abort(exchange))
            raise

    async def aclose(self) -> None:
        """Abort what is in flight and release the manager. Idempotent."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def settle() -> None:
            if not done.done():
                done.set_result(None)

        def close() -> None:
            for exchange in list(self._in_flight):
                exchange.resolve(AppClosedError(
                    f"{exchange.request.method} {_safe_url(exchange.request.url)} was interrupted: "
                    "the transport was closed"
                ))
                self._abort(exchange)
            if self._manager is not None:
                self._manager.deleteLater()
                self._manager = None
            loop.call_soon_threadsafe(settle)

        if self._net.post(close):
            await done

    # -- network thread ----------------------------------------------------------------

    def _manager_here(self) -> QNetworkAccessManager:
        if self._manager is None:
            manager = QNetworkAccessManager()
            manager.setRedirectPolicy(QNetworkRequest.RedirectPolicy.SameOriginRedirectPolicy)
            self._manager = manager
        return self._manager

    def _start(self, exchange: _Exchange) -> None:
        request = exchange.request
        if exchange.future.done():
            return  # already timed out or cancelled before it could start
        if self._closed:
            exchange.resolve(AppClosedError("the transport is closed"))
            return
        url = QUrl.fromEncoded(QByteArray(request.url.encode("utf-8")), QUrl.ParsingMode.StrictMode)
        if not url.isValid() or url.scheme() not in ("http", "https"):
            exchange.resolve(TransportError(
                f"{request.method} {_safe_url(request.url)}: not a valid http(s) URL",
                method=request.method, url=_safe_url(request.url),
            ))
            return
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
            reply = manager.sendCustomRequest(qreq, verb)
        else:
            reply = manager.sendCustomRequest(qreq, verb, QByteArray(request.body))
        exchange.reply = reply
        self._in_flight.add(exchange)
        reply.finished.connect(lambda: self._finished(exchange))

    def _abort(self, exchange: _Exchange) -> None:
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
        if status is None:
            # No HTTP response at all. Qt's errorString() quotes the full URL: name the code only.
            code = reply.error()
            reason = getattr(code, "name", str(code))
            return TransportError(
                f"{request.method} {safe} failed: {reason}", method=request.method, url=safe
            )
        headers: dict[str, str] = {}
        for raw_name, raw_value in reply.rawHeaderPairs():
            name = bytes(raw_name.data()).decode("latin-1").lower()
            value = bytes(raw_value.data()).decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        body = bytes(reply.readAll().data())
        final = reply.url()
        url = request.url if final == QUrl.fromEncoded(QByteArray(request.url.encode("utf-8"))) else (
            bytes(final.toEncoded().data()).decode("utf-8")
        )
        return Response(int(status), headers, body, url)
