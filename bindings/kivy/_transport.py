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
of ``UrlRequestUrllib``), because ``UrlRequest`` itself decodes bodies to text or
JSON and folds ``Set-Cookie`` headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import socket
from typing import Any
from urllib.parse import urljoin, urlsplit

from kivy.network.urlrequest import UrlRequestUrllib

from appusers.errors import AppClosedError, InvalidArgumentError, RequestTimeoutError, TransportError
from appusers.transport import Request, Response

__all__ = ["MAX_REDIRECTS", "UrlRequestTransport"]

_DEFAULT_SOCKET_TIMEOUT = 60.0
MAX_REDIRECTS = 10
"""Redirect hops followed before giving up with a ``TransportError`` (as ``AiohttpTransport``)."""
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_BODY_HEADERS = frozenset(
    {"content-type", "content-length", "content-encoding", "content-language", "content-location"}
)
# Credentials belong to the origin they were sent to (fetch drops them on a cross-origin hop).
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_ids = itertools.count(1)


def _is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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


class _RawUrlRequest(UrlRequestUrllib):  # type: ignore[misc]
    """Keeps the undecoded status, headers and body next to Kivy's decoded result, and its
    connection, so that an abandoned or failed request closes its socket at once.

    (``UrlRequest`` closes the connection only after a success; after an error the socket
    would stay open, held by the queued exception, until the Clock next ticks.)
    """

    raw: tuple[int, list[tuple[str, str]], bytes] | None = None
    connection: Any = None
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
        connection = self.connection
        sock = None if connection is None else connection.sock
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
        merged: dict[str, str] = {}
        for name, value in headers:
            key = name.lower()
            merged[key] = f"{merged[key]}, {value}" if key in merged else value
        self._settle(Response(status, merged, body, self.url))

    def on_error(self, request: _RawUrlRequest, error: Any) -> None:
        self._settle(error if isinstance(error, Exception) else ConnectionError(type(error).__name__))

    def on_cancel(self, request: _RawUrlRequest) -> None:
        self._settle(None)


class UrlRequestTransport:
    """A :class:`~appusers.transport.Transport` on ``kivy.network.urlrequest.UrlRequest``.

    ::

        app = App("my-app", base_url=..., transport=UrlRequestTransport())

    ``send`` is awaited on an asyncio loop (Kivy's, with ``App.async_run``); the
    ``UrlRequest`` callbacks run there. ``ca_file`` and ``verify`` are
    passed to ``UrlRequest`` for HTTPS.

    As ``AiohttpTransport``: redirects follow fetch's rules (credentials never reach
    another origin, https never falls back to http, at most :data:`MAX_REDIRECTS` hops),
    plain ``http://`` is refused except to loopback unless ``allow_insecure_http=True``,
    and ``request.timeout`` bounds the whole exchange, redirects included. There is
    no ``open_stream``: watching a collection needs ``AiohttpTransport``.
    """

    def __init__(
        self, *, ca_file: str | None = None, verify: bool = True, allow_insecure_http: bool = False
    ) -> None:
        self._ca_file = ca_file
        self._verify = verify
        self._allow_insecure_http = allow_insecure_http
        self._closed = False
        self._in_flight: set[_InFlight] = set()
        self._id = next(_ids)

    @property
    def closed(self) -> bool:
        return self._closed

    async def send(self, request: Request) -> Response:
        """Send ``request``; every HTTP status is returned, only a missing response raises."""
        where = f"{request.method} {_safe_url(request.url)}"
        if self._closed:
            raise AppClosedError(f"{where}: the transport is closed")
        problem = self._url_problem(request.url)
        if problem is not None:
            raise InvalidArgumentError(f"{where}: {problem}")
        failure: BaseException
        try:
            async with asyncio.timeout(request.timeout):
                return await self._follow(request)
        except TransportError:
            raise  # ours (a refused redirect), already safe to show
        except TimeoutError:
            failure = RequestTimeoutError(
                f"{where} timed out after {request.timeout:g} s",
                method=request.method, url=_safe_url(request.url),
            )
        except asyncio.CancelledError:
            if not self._closed or _current_task_cancelling():
                raise
            failure = AppClosedError(f"{where} was interrupted: the transport was closed")
        except Exception as exc:
            # Only the exception's type: its text may quote the URL with its query.
            failure = TransportError(
                f"{where} failed: {type(exc).__name__}", method=request.method, url=_safe_url(request.url)
            )
        # Raised outside the except blocks, so no library exception is chained to it.
        raise failure

    async def _follow(self, request: Request) -> Response:
        """The first response that is not a redirect to follow (fetch's rules, as AiohttpTransport).

        ``UrlRequest`` (``http.client``) never follows redirects itself, so each hop is checked
        here: credentials never go to another origin, https never falls back to http.
        """
        method = request.method.upper()
        url, headers, body = request.url, dict(request.headers), request.body
        socket_timeout = request.timeout if request.timeout is not None else _DEFAULT_SOCKET_TIMEOUT
        for _hop in range(MAX_REDIRECTS + 1):
            response = await self._exchange(method, url, headers, body, socket_timeout)
            location = response.headers.get("location") if response.status in _REDIRECT_STATUSES else None
            if location is None:
                return response  # a 3xx without Location is returned as is
            target = self._redirect_target(request.method, url, location)
            if _origin(target) != _origin(url):
                # For the rest of the chain: fetch removes them, it does not restore them.
                headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
            # fetch: 301/302 turn POST into GET, 303 turns anything but GET/HEAD into GET;
            # 307/308 keep method and body.
            status = response.status
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

    def _url_problem(self, url: str) -> str | None:
        """Why ``url`` may not be requested (asked of the request and of every redirect)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return "only absolute http:// and https:// URLs can be requested"
        if parts.scheme == "http" and not self._allow_insecure_http and not _is_loopback(parts.hostname):
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
        """Cancel what is in flight; later sends raise ``AppClosedError``. Idempotent."""
        self._closed = True
        for flight in list(self._in_flight):
            if flight.request is not None:
                flight.request.abort()
            if not flight.future.done():
                flight.future.cancel()

    async def __aenter__(self) -> UrlRequestTransport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._in_flight)} in flight"
        return f"<UrlRequestTransport #{self._id} {state}>"


def _current_task_cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
