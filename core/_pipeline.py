"""The request pipeline: location → credentials → refresh policy → transport → typed result.

Every HTTP request of an App goes through one :class:`Pipeline`. ``User`` and the
service objects (functions, API keys, email/password, MongoDB) talk to it; it
knows users only through the :class:`Principal` protocol and tells the App what
it learned through the :class:`SessionKeeper` protocol, so this module imports
neither the App nor the User.

Refresh policy (core's, extended):

* an access token is refreshed shortly before it expires (``refresh_leeway``),
  the expiry measured on the monotonic clock from the token's own lifetime;
* a 401 on an access-token request causes one refresh and one retry, and never
  more than one refresh per request whatever the clocks say;
* concurrent requests share one in-flight refresh (single flight);
* a refresh the server rejects with 401 logs the user out (cause
  ``REFRESH_TOKEN_REJECTED``, or ``USER_DISABLED`` when the server says ``UserDisabled``)
  and wipes its tokens from memory and storage; a
  refresh failing on the network or a 5xx leaves the user logged in;
* a log-out racing a refresh wins: the late refresh result is dropped.

Retries (``_retry``): requests declared ``idempotent`` (the location, the profile,
API-key reads, the refresh, the log-out, the email/password calls that only send an
email again, MongoDB reads a client declared safe) are retried by the App's
``RetryPolicy`` on connection failures and 429/502/503/504; everything else is sent
once. Every attempt is reported to the ``observer`` (the App's connectivity tracker).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import quote, urlsplit

from . import _ejson, _jwt
from ._credentials import FUNCTION, Credentials
from ._lazy import lazy_logger, lazy_module
from ._models import Identity, Profile
from ._retry import RetryObserver, RetryPolicy, send_with_retries
from ._version import __version__
from .errors import (
    AppClosedError,
    BadTokenError,
    HTTPStatusError,
    InvalidArgumentError,
    InvalidSessionError,
    MalformedJsonError,
    MissingJsonKeyError,
    RefreshTokenRejectedError,
    ResponseError,
    ServiceError,
    TransportError,
    UserDisabledError,
    UserNotLoggedInError,
    service_error_from_body,
)
from .transport import Request, Response, Transport, built_request

if TYPE_CHECKING:
    import asyncio
    import logging
else:  # imported on first use: see ``_lazy``
    asyncio = lazy_module("asyncio", globals())
    logging = lazy_module("logging", globals())

__all__ = [
    "API", "Login", "Pipeline", "Principal", "RefreshObserver", "SessionKeeper", "TokenKind", "path_of",
]

API = "/api/client/v2.0"
#: Decoded bodies that cannot describe an error (a function's usual result): no check needed.
_NOT_MAPPINGS: frozenset[type] = frozenset({int, float, str, bool, list, type(None)})
_log = lazy_logger("appusers", globals())

TokenKind = Literal["none", "access", "refresh"]


class Principal(Protocol):
    """What the pipeline reads of a user (``User`` is the implementation)."""

    @property
    def id(self) -> str: ...

    @property
    def is_logged_in(self) -> bool: ...

    @property
    def access_token(self) -> str | None: ...

    @property
    def refresh_token(self) -> str | None: ...

    @property
    def _session(self) -> int:
        """Bumped by every log-in and log-out: a refresh started before it is stale."""
        ...

    @property
    def _pipeline(self) -> Pipeline: ...

    def _expired_soon(self, leeway: float) -> bool: ...


class SessionKeeper(Protocol):
    """What the pipeline needs of the App that owns the users: it commits what the pipeline learns
    (a new access token, a dead session) as transitions, persists and publishes them."""

    async def open(self) -> None: ...

    def _check_known(self, user: Any, *, missing: str) -> None: ...

    async def _session_rejected(self, user: Any, *, disabled: bool = False) -> None:
        """The server rejected the user's refresh token (401): the session is over;
        ``disabled``: because an administrator disabled the user."""
        ...

    async def _access_token_refreshed(self, user: Any, token: str, claims: Mapping[str, Any]) -> None: ...


class RefreshObserver(RetryObserver, Protocol):
    """Told how each attempt went, and when a user's token refresh starts and ends."""

    def refresh_started(self, user: Any) -> None: ...

    def refresh_ended(self, user: Any) -> None: ...


class Login:
    """A login response, checked: the ids are usable and both tokens are JWTs."""

    __slots__ = ("access_claims", "access_token", "device_id", "refresh_token", "user_id")

    def __init__(self, data: Any) -> None:
        if not isinstance(data, dict):
            raise ResponseError("the login response is not an object")
        for key in ("user_id", "access_token", "refresh_token", "device_id"):
            if not isinstance(data.get(key), str):
                raise MissingJsonKeyError(key)
        for key in ("user_id", "device_id"):
            value = data[key]
            if not value.isprintable() or " " in value or (key == "user_id" and not value):
                raise ResponseError(f"the login response's {key} is not a usable identifier")
        try:
            self.access_claims = _jwt.decode_payload(data["access_token"], what="access token")
            _jwt.decode_payload(data["refresh_token"], what="refresh token")
        except BadTokenError as exc:
            raise BadTokenError(f"Could not log in user: received {exc.message}") from None
        self.user_id: str = data["user_id"]
        self.access_token: str = data["access_token"]
        self.refresh_token: str = data["refresh_token"]
        self.device_id: str = data["device_id"]


def _device_info(app_id: str) -> dict[str, str]:
    import platform  # once per App, at its first log-in: not worth its import time up front

    uname = platform.uname()
    return {
        "appId": app_id,
        "platform": uname.system or "unknown",
        "platformVersion": uname.release or "unknown",
        "sdk": "appusers",
        "sdkVersion": __version__,
        "cpuArch": uname.machine or "unknown",
        "deviceName": "unknown",
        "deviceVersion": "unknown",
        "frameworkName": platform.python_implementation(),
        "frameworkVersion": platform.python_version(),
    }


class Pipeline:
    """Sends an App's requests: finds the location once, adds the right token, applies the
    refresh policy, and turns every response into a parsed body or a typed error.

    It owns the transport (closed by :meth:`aclose`) and the App's background tasks.
    """

    def __init__(
        self,
        keeper: SessionKeeper,
        app_id: str,
        base_url: str,
        *,
        transport: Transport | None,
        timeout: float,
        refresh_leeway: float,
        retry: Callable[[], RetryPolicy] = RetryPolicy,
    ) -> None:
        self._keeper = keeper
        #: The App's retry policy, read at each request (the App may swap it).
        self._retry = retry
        #: Told how every attempt went (the App's connectivity tracker).
        self.observer: RefreshObserver | None = None
        self.app_id = app_id
        self.base_url = base_url
        self.timeout = timeout
        self.refresh_leeway = refresh_leeway
        self.closed = False
        #: Set by the App once its users are restored: requests no longer ask it to open.
        self.opened = False
        self._transport = transport
        self._app_prefix = f"{API}/app/{quote(app_id, safe='')}"
        self._device: dict[str, str] | None = None
        self._hostname: str | None = None
        #: The function-call URL, once the location is known.
        self._call_url: str | None = None
        #: The last function call's access token and the headers sent with it (each request gets a copy).
        self._call_headers: tuple[str, dict[str, str]] | None = None
        self._location_task: asyncio.Task[str] | None = None
        self._refreshes: dict[Principal, asyncio.Future[str]] = {}
        self._waiters: dict[asyncio.Future[str], int] = {}
        #: Background work the App cancels (and awaits) when it closes.
        self.tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def transport(self) -> Transport:
        """The transport, built on first use (aiohttp) unless one was given."""
        if self.closed:
            raise AppClosedError("this App is closed")
        if self._transport is None:
            from appusers.adapters._aiohttp import AiohttpTransport

            self._transport = AiohttpTransport(timeout=self.timeout)
        return self._transport

    @property
    def given_transport(self) -> Transport | None:
        """The transport if one exists yet (none is built)."""
        return self._transport

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any] | None:
        """Run ``coro`` in the background; None (and ``coro`` closed) without a running loop."""
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:
            coro.close()
            return None
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def aclose(self) -> None:
        """Cancel what is in flight and close the transport."""
        self.closed = True
        tasks: list[asyncio.Future[Any]] = list(self.tasks)
        if self._location_task is not None:
            tasks.append(self._location_task)
        tasks.extend(self._refreshes.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._transport is not None:
            # Like httpx's Client, the App owns the transport it is given.
            await self._transport.aclose()

    # -- requests ------------------------------------------------------------------------------

    async def ensure_open(self) -> None:
        """Have the App restore its users first (a no-op once it has)."""
        if not self.opened:
            await self._keeper.open()

    def require_logged_in(self, user: Principal) -> None:
        if not user.is_logged_in:
            raise UserNotLoggedInError(f"user {user.id} is not logged in")

    async def request(
        self,
        method: str,
        path: str,
        *,
        app_scoped: bool = True,
        body: bytes | None = None,
        user: Principal | None = None,
        token: TokenKind = "none",
        bearer: str | None = None,
        timeout: float | None = None,
        ejson: bool = False,
        idempotent: bool = False,
    ) -> Any:
        """Send one API request and return its parsed body, raising typed errors.

        ``token="access"`` applies the refresh policy; ``token="refresh"`` treats a
        401 as a dead session (the user is logged out). ``idempotent``: safe to repeat,
        so the retry policy may send it again.
        """
        if self.closed:
            raise AppClosedError("this App is closed")
        if not self.opened:
            await self._keeper.open()
        hostname = self._hostname if self._hostname is not None else await self._location()
        url = f"{hostname}{self._app_prefix if app_scoped else API}{path}"
        if token == "access":
            assert user is not None
            # The refresh policy's usual case inline (a coroutine less per call): a token that is
            # not about to expire, and an answer that is not 401.
            refreshed = False
            if user._expired_soon(self.refresh_leeway):
                await self.refresh_access_token(user)
                refreshed = True
            self.require_logged_in(user)
            sent = user.access_token
            assert sent is not None
            response = await self.send(method, url, bearer=sent, body=body, timeout=timeout,
                                       idempotent=idempotent)
            if response.status == 401:
                response = await self._after_401(user, response, sent, refreshed, method, url, body, timeout,
                                                 idempotent)
        elif token == "refresh":
            assert user is not None
            self.require_logged_in(user)
            sent = user.refresh_token
            assert sent is not None
            response = await self.send(method, url, bearer=sent, body=body, timeout=timeout,
                                       idempotent=idempotent)
            if response.status == 401 and user.is_logged_in and user.refresh_token == sent:
                disabled = _says_user_disabled(response)
                await self._keeper._session_rejected(user, disabled=disabled)
                raise _session_rejected_error(disabled, method, path_of(url))
        else:
            response = await self.send(method, url, bearer=bearer, body=body, timeout=timeout,
                                       idempotent=idempotent)
        return self.parse(response, method, url, ejson=ejson)

    async def call_function(
        self, user: Principal, name: str, args: tuple[Any, ...], *, timeout: float | None = None,
        service: str | None = None, idempotent: bool = False,
    ) -> Any:
        """``POST /functions/call`` as ``user``; the EJSON-decoded result."""
        if not isinstance(name, str) or not name:
            raise InvalidArgumentError("the function name must be a non-empty string")
        self.require_logged_in(user)
        try:
            body = _ejson.dumps_call(name, list(args), service).encode()
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"arguments cannot be encoded as Extended JSON: {exc}") from None
        # Never retried unless the caller vouches for it (a MongoDB read on a client that
        # declared reads safe): a function may have run even when its answer was lost.
        url = self._call_url
        transport = self._transport
        if (idempotent or url is None or transport is None or self.closed or not self.opened
                or user._expired_soon(self.refresh_leeway)):
            return await self.request("POST", "/functions/call", body=body, user=user, token="access",
                                      timeout=timeout, ejson=True, idempotent=idempotent)
        # The usual call: what request(), send() and _send_once() do for it, in this one coroutine
        # (three coroutines and their argument passing less per call; benchmarks/run.py). The user
        # is still logged in (nothing was awaited since the check), its token is not about to
        # expire, and the location is known.
        sent = user.access_token
        assert sent is not None
        cached = self._call_headers
        if cached is None or cached[0] is not sent:
            cached = self._call_headers = (sent, self._headers(sent, body))
        # A copy: a request's headers are its own (a transport may change them).
        request = built_request("POST", url, dict(cached[1]), body,
                                timeout if timeout is not None else self.timeout)
        debug = _log.isEnabledFor(logging.DEBUG)
        if debug:
            _log.debug("POST %s", path_of(url))
        observer = self.observer
        try:
            response = await transport.send(request)
        except TransportError as exc:
            if observer is not None:
                observer.attempt_failed(exc, None)
            raise
        if observer is not None:
            self._report(observer, response)
        if debug:
            _log.debug("POST %s -> %d", path_of(url), response.status)
        status = response.status
        if status == 200 and response.headers.get("content-type") == "application/json" and response.body:
            # parse()'s usual case: a result that cannot describe an error. Anything else (or
            # a body that does not parse) goes to parse(), which decides again.
            try:
                data = _ejson.loads(response.body)
            except ValueError:
                pass
            else:
                if type(data) in _NOT_MAPPINGS:
                    return data
        elif status == 401:
            response = await self._after_401(user, response, sent, False, "POST", url, body, timeout, False)
        return self.parse(response, "POST", url, ejson=True)

    @staticmethod
    def _headers(bearer: str | None, body: bytes | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        return headers

    def _request(self, method: str, url: str, bearer: str | None, body: bytes | None,
                 timeout: float | None) -> Request:
        return Request(method, url, self._headers(bearer, body), body,
                       timeout if timeout is not None else self.timeout)

    async def _send_once(self, request: Request) -> Response:
        """``request`` sent once (never retried), reported to the observer, logged at DEBUG."""
        debug = _log.isEnabledFor(logging.DEBUG)
        if debug:
            _log.debug("%s %s", request.method, path_of(request.url))
        transport = self._transport if self._transport is not None and not self.closed else self.transport
        observer = self.observer
        try:
            response = await transport.send(request)
        except TransportError as exc:
            if observer is not None:
                observer.attempt_failed(exc, None)
            raise
        if observer is not None:
            self._report(observer, response)
        if debug:
            _log.debug("%s %s -> %d", request.method, path_of(request.url), response.status)
        return response

    def _report(self, observer: RefreshObserver, response: Response) -> None:
        """An answer to the observer: a failed attempt if its status is one retries are for."""
        if response.status in self._retry().statuses:
            observer.attempt_failed(response, None)
        else:
            observer.attempt_answered(response)

    async def send(
        self, method: str, url: str, *, bearer: str | None = None, body: bytes | None = None,
        timeout: float | None = None, idempotent: bool = False,
    ) -> Response:
        """One request through the transport, retried per the App's policy when ``idempotent``;
        the last response whatever its status, or the last attempt's ``TransportError``."""
        request = self._request(method, url, bearer, body, timeout)
        if not idempotent:
            return await self._send_once(request)
        debug = _log.isEnabledFor(logging.DEBUG)
        if debug:
            _log.debug("%s %s", method, path_of(url))
        transport = self.transport
        response = await send_with_retries(
            self._retry(), lambda: transport.send(request), idempotent=True, observer=self.observer
        )
        if debug:
            _log.debug("%s %s -> %d", method, path_of(url), response.status)
        return response

    async def probe(self) -> Response:
        """``GET location`` once, not cached and not retried: is the server there?"""
        url = f"{self.base_url}{self._app_prefix}/location"
        request = Request("GET", url, {"Accept": "application/json"}, None, self.timeout)
        return await self.transport.send(request)

    async def _after_401(
        self, user: Principal, response: Response, sent: str, refreshed: bool, method: str, url: str,
        body: bytes | None, timeout: float | None, idempotent: bool,
    ) -> Response:
        """A 401 to a request sent with the access token ``sent``: at most one refresh and one retry."""
        if user.access_token == sent:
            if refreshed or not user.is_logged_in:
                return response  # one refresh per request at most: the 401 stands
            await self.refresh_access_token(user)
        current = user.access_token
        if current is None or current == sent:
            return response
        # One retry, with whichever fresh token this or a concurrent request obtained.
        return await self.send(method, url, bearer=current, body=body, timeout=timeout, idempotent=idempotent)

    def parse(self, response: Response, method: str, url: str, *, ejson: bool = False) -> Any:
        """The response's JSON body, or the typed error it stands for."""
        data: Any = None
        media_type = response.content_type
        if media_type != "application/json":
            media_type = media_type.split(";", 1)[0].strip().lower()
        if response.body and media_type == "application/json":
            try:
                data = _ejson.loads(response.body) if ejson else _ejson.loads_plain(response.body)
            except ValueError:
                if response.ok:
                    raise MalformedJsonError(
                        f"{method} {path_of(url)}: the response is not valid JSON"
                    ) from None
                data = None
            error = (
                None if type(data) in _NOT_MAPPINGS
                else service_error_from_body(data, status=response.status, method=method)
            )
            if error is not None:
                error.url = path_of(url)  # without the query: a streaming URL may carry a token
                raise error
        if not response.ok:
            kind = "server error" if response.status >= 500 else "client error"
            path = path_of(url)
            raise HTTPStatusError(
                f"{method} {path} failed: HTTP {response.status} ({kind})",
                status=response.status, method=method, url=path,
            )
        return data

    # -- location ------------------------------------------------------------------------------

    async def url(self, path: str, *, app_scoped: bool) -> str:
        """The absolute URL of an API ``path`` (app-scoped or not), after the location."""
        hostname = self._hostname if self._hostname is not None else await self._location()
        return f"{hostname}{self._app_prefix if app_scoped else API}{path}"

    async def _location(self) -> str:
        if self._hostname is not None:
            return self._hostname
        task = self._location_task
        if task is None:
            task = asyncio.ensure_future(self._fetch_location())
            task.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._location_task = task
        try:
            hostname = await self._share(task)
        finally:
            if task.done():
                self._location_task = None  # a failure is retried by the next request
        self._hostname = hostname
        self._call_url = f"{hostname}{self._app_prefix}/functions/call"
        return hostname

    async def _fetch_location(self) -> str:
        url = f"{self.base_url}{self._app_prefix}/location"
        data = self.parse(await self.send("GET", url, idempotent=True), "GET", url)
        hostname = data.get("hostname") if isinstance(data, dict) else None
        if not isinstance(hostname, str) or not hostname:
            raise MissingJsonKeyError("hostname")
        parts = urlsplit(hostname) if hostname.isascii() and hostname.isprintable() else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or " " in hostname:
            raise ResponseError("the location response's hostname is not an http(s) URL")
        return hostname.rstrip("/")

    async def _share(self, task: asyncio.Future[str]) -> str:
        """Await a task several callers share (the location, a refresh). Cancelling one caller
        leaves it to the others; cancelling the last one cancels it, retries and all."""
        self._waiters[task] = self._waiters.get(task, 0) + 1
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if self._waiters.get(task) == 1 and not task.done():
                task.cancel()
            raise
        finally:
            left = self._waiters.pop(task, 1) - 1
            if left > 0:
                self._waiters[task] = left

    # -- sessions ------------------------------------------------------------------------------

    def credentials_body(self, credentials: Credentials) -> bytes:
        """A login (or link) body: the credentials' payload plus this device's description."""
        body: dict[str, Any] = {}
        if credentials.provider != FUNCTION:
            body["provider"] = credentials.provider
        body.update(credentials.payload)
        if self._device is None:
            self._device = _device_info(self.app_id)
        body["options"] = {"device": self._device}
        try:
            return _ejson.dumps(body).encode()
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"credentials cannot be encoded as Extended JSON: {exc}") from None

    async def log_in(self, credentials: Credentials, *, timeout: float | None = None) -> Login:
        path = f"/auth/providers/{quote(credentials.provider, safe='')}/login"
        data = await self.request("POST", path, body=self.credentials_body(credentials), timeout=timeout)
        return Login(data)

    async def fetch_profile(
        self, access_token: str, *, timeout: float | None = None
    ) -> tuple[tuple[Identity, ...], Profile]:
        """``GET /auth/profile`` with a token the user does not hold yet (login, link)."""
        data = await self.request("GET", "/auth/profile", app_scoped=False, bearer=access_token,
                                  timeout=timeout, idempotent=True)
        return parse_profile(data)

    async def refresh_profile(self, user: Principal) -> tuple[tuple[Identity, ...], Profile]:
        self.require_logged_in(user)
        data = await self.request("GET", "/auth/profile", app_scoped=False, user=user, token="access",
                                  idempotent=True)
        return parse_profile(data)

    async def revoke(self, refresh_token: str) -> None:
        """``DELETE /auth/session``; an already-unknown session counts as revoked."""
        try:
            # Safe to repeat: a session already gone counts as revoked.
            await self.request("DELETE", "/auth/session", app_scoped=False, bearer=refresh_token,
                               idempotent=True)
        except InvalidSessionError as exc:
            if "failed to find refresh token" not in exc.message:
                raise

    async def revoke_quietly(self, refresh_token: str) -> None:
        try:
            await self.revoke(refresh_token)
        except Exception as exc:  # best effort: the caller already has the real error
            _log.debug("could not revoke an unused session: %s", type(exc).__name__)

    async def link(
        self, user: Principal, credentials: Credentials, *, timeout: float | None = None
    ) -> tuple[str, Mapping[str, Any], tuple[Identity, ...], Profile]:
        """Link ``credentials`` to ``user`` on the server; the new access token (and its claims),
        identities and profile. Nothing about the user changes here."""
        body = self.credentials_body(credentials)
        path = f"/auth/providers/{quote(credentials.provider, safe='')}/login?link=true"
        if user._expired_soon(self.refresh_leeway):
            await self.refresh_access_token(user)
        # No 401 refresh-and-retry here (as core): a 401 on link is about the credentials
        # (InvalidPassword), and a failed link must change nothing, tokens included.
        self.require_logged_in(user)
        data = await self.request("POST", path, body=body, bearer=user.access_token, timeout=timeout)
        if not isinstance(data, dict):
            raise ResponseError("the link response is not an object")
        token = data.get("access_token")
        if not isinstance(token, str):
            raise MissingJsonKeyError("access_token")
        claims = _jwt.decode_payload(token, what="access token")
        linked_id = data.get("user_id")
        if isinstance(linked_id, str) and linked_id != user.id:
            raise ResponseError("the link response is for another user")
        identities, profile = await self.fetch_profile(token, timeout=timeout)
        return token, claims, identities, profile

    async def refresh_access_token(self, user: Principal) -> str:
        """A fresh access token for ``user``; concurrent callers share one request."""
        self._keeper._check_known(user, missing="No user has been found")
        pending = self._refreshes.get(user)
        if pending is None:
            if not user.is_logged_in or user.refresh_token is None:
                raise UserNotLoggedInError("The user is not logged in")
            pending = asyncio.ensure_future(self._do_refresh(user))
            pending.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._refreshes[user] = pending
        return await self._share(pending)

    async def _do_refresh(self, user: Principal) -> str:
        session = user._session
        refresh = user.refresh_token
        assert refresh is not None
        observer = self.observer
        if observer is not None:
            observer.refresh_started(user)
        try:
            url = await self.url("/auth/session", app_scoped=False)
            # POST, but safe to repeat: it only mints an access token.
            response = await self.send("POST", url, bearer=refresh, idempotent=True)
            if user._session != session or not user.is_logged_in:
                # Logged out (or in again) meanwhile: whatever came back must not touch the user.
                raise UserNotLoggedInError("the user logged out while its token was being refreshed")
            if response.status == 401:
                disabled = _says_user_disabled(response)
                await self._keeper._session_rejected(user, disabled=disabled)
                raise _session_rejected_error(disabled, "POST", path_of(url))
            data = self.parse(response, "POST", url)
            token = data.get("access_token") if isinstance(data, dict) else None
            if not isinstance(token, str):
                raise MissingJsonKeyError("access_token")
            claims = _jwt.decode_payload(token, what="access token")
            await self._keeper._access_token_refreshed(user, token, claims)
            return token
        finally:
            self._refreshes.pop(user, None)
            if observer is not None:
                observer.refresh_ended(user)


def path_of(url: str) -> str:
    """The URL without its query: streaming URLs can carry a token there."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


_MAX_PROFILE_DEPTH = 64


def _shallow(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists and objects at most ``limit`` deep (without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return True


def parse_profile(data: Any) -> tuple[tuple[Identity, ...], Profile]:
    if not isinstance(data, dict):
        raise ResponseError("the profile response is not an object")
    raw_identities = data.get("identities")
    if not isinstance(raw_identities, list):
        raise MissingJsonKeyError("identities")
    identities = []
    for item in raw_identities:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not isinstance(
            item.get("provider_type"), str
        ):
            raise ResponseError("a profile identity lacks a string id or provider_type")
        identities.append(Identity(item["id"], item["provider_type"]))
    profile_data = data.get("data")
    if not isinstance(profile_data, dict):
        raise MissingJsonKeyError("data")
    if not _shallow(profile_data, _MAX_PROFILE_DEPTH):
        # It is stored and read back at every start: a depth the JSON parser only just took
        # here could fail it there.
        raise ResponseError("the profile data is nested too deeply")
    kind = data.get("type")
    if not isinstance(kind, str) or not kind or not kind.isprintable():
        kind = "normal"
    return tuple(identities), Profile(profile_data, kind)


def _says_user_disabled(response: Response) -> bool:
    """Whether a 401 carries App Services' ``UserDisabled`` error code."""
    try:
        body = _ejson.loads_plain(response.body) if response.body else None
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("error_code") == "UserDisabled"


def _session_rejected_error(disabled: bool, method: str, path: str) -> ServiceError:
    """What a refresh the server refused raises (the user has been logged out already)."""
    if disabled:
        return UserDisabledError(
            "the user is disabled; it was logged out", status=401, error_code="UserDisabled",
            method=method, url=path,
        )
    return RefreshTokenRejectedError(
        "the server rejected the refresh token; the user was logged out",
        status=401, error_code="InvalidSession", method=method, url=path,
    )
