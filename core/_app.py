"""``App``: the users of one App Services app, their sessions, and where they are kept.

Data flows one way: a caller asks the App; the App decides (the lifecycle
machine, the refresh policy); a transport or storage adapter does the I/O; the
result is committed as a transition; then, outside any lock, the change is
published on the Rx streams.

Refresh policy (behavior.md §8, extended):

* an access token is refreshed shortly before it expires (``refresh_leeway``),
  the expiry measured on the monotonic clock from the token's own lifetime;
* a 401 on an access-token request causes one refresh and one retry, and never
  more than one refresh per request whatever the clocks say;
* concurrent requests share one in-flight refresh (single flight);
* a refresh the server rejects with 401 logs the user out (cause
  ``REFRESH_TOKEN_REJECTED``) and wipes its tokens from memory and storage; a
  refresh failing on the network or a 5xx leaves the user logged in;
* a log-out racing a refresh wins: the late refresh result is dropped.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import platform
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from reactivex import Observable, abc

from . import _ejson, _jwt
from ._credentials import ANONYMOUS, FUNCTION, Credentials
from ._email_password import EmailPasswordAuth
from ._events import (
    AccessTokenRefreshed,
    AppEvent,
    CurrentUserChanged,
    CustomDataRefreshed,
    IdentitiesLinked,
    LoggedIn,
    LoggedOut,
    LogoutCause,
    ProfileRefreshed,
    StorageRecovered,
    UsersChanged,
)
from ._machine import fire
from ._models import Identity, Profile, UserState
from ._records import Index, Keys, UserRecord, dump_index, dump_user, load_index, load_user
from ._streams import SafeBehaviorSubject, SafeSubject, hide
from ._user import User
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
    StorageError,
    UserAlreadyNamedError,
    UserNotFoundError,
    UserNotLoggedInError,
    service_error_from_body,
)
from .storage import Storage, StorageIssue
from .transport import Request, Response, Transport

__all__ = ["DEFAULT_BASE_URL", "App"]

DEFAULT_BASE_URL = "https://services.cloud.mongodb.com"
_API = "/api/client/v2.0"
_NO_DEVICE = "000000000000000000000000"
_log = logging.getLogger("appusers")

TokenKind = Literal["none", "access", "refresh"]


def _check_base_url(base_url: str) -> str:
    if not isinstance(base_url, str) or not base_url.strip():
        raise InvalidArgumentError("base_url must be a non-empty URL")
    trimmed = base_url.strip().rstrip("/")
    parts = urlsplit(trimmed)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidArgumentError("base_url must be an http:// or https:// URL")
    if parts.query or parts.fragment:
        raise InvalidArgumentError("base_url must not have a query or fragment")
    return trimmed


def _device_info(app_id: str) -> dict[str, str]:
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


class App:
    """The users of the App Services app ``app_id``.

    ::

        async with App("my-app", base_url="http://127.0.0.1:9090") as app:
            user = await app.log_in(Credentials.anonymous())
            print(await user.functions.sum(1, 2))

    ``storage`` keeps users between runs (default: in memory only; use
    ``FileStorage`` to restore them at the next start). ``transport`` does HTTP
    (default: aiohttp; closed with the App). ``timeout`` is the default per-request timeout in seconds;
    most calls also take their own ``timeout=``.
    """

    def __init__(
        self,
        app_id: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        storage: Storage | None = None,
        transport: Transport | None = None,
        timeout: float = 60.0,
        refresh_leeway: float = 30.0,
    ) -> None:
        if not isinstance(app_id, str) or not app_id.strip():
            raise InvalidArgumentError("app_id must be a non-empty string")
        if not isinstance(timeout, int | float) or timeout <= 0:
            raise InvalidArgumentError("timeout must be a positive number of seconds")
        if not isinstance(refresh_leeway, int | float) or refresh_leeway < 0:
            raise InvalidArgumentError("refresh_leeway must be >= 0 seconds")
        self.id = app_id
        self.base_url = _check_base_url(base_url)
        self.timeout = float(timeout)
        self.refresh_leeway = float(refresh_leeway)
        if storage is None:
            from appusers.adapters._memory import MemoryStorage

            storage = MemoryStorage()
        self.storage: Storage = storage
        self._transport = transport
        self._keys = Keys.for_app(app_id)
        self._app_prefix = f"{_API}/app/{quote(app_id, safe='')}"
        self._device = _device_info(app_id)
        self._users: dict[str, User] = {}  # storage order
        self._current: User | None = None
        self._hostname: str | None = None
        self._location_task: asyncio.Task[str] | None = None
        self._opened = False
        self._open_lock: asyncio.Lock | None = None
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._saves: set[asyncio.Task[Any]] = set()  # background saves aclose lets finish
        self._events: SafeSubject[AppEvent] | None = None
        self._current_subject: SafeBehaviorSubject[User | None] | None = None
        self._users_subject: SafeBehaviorSubject[tuple[User, ...]] | None = None
        self._published_current: str | None = None
        self._published_users: tuple[str, ...] = ()
        self._listeners: dict[Callable[[AppEvent], Any], abc.DisposableBase] = {}
        self.storage_issues: list[StorageIssue] = []

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> App:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Restore the users kept in storage (no network). Idempotent; called by ``async with``
        and by the first operation."""
        if self._closed:
            raise AppClosedError("this App is closed")
        if self._opened:
            return
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if self._opened:
                return
            await self._restore()
            self._opened = True

    async def aclose(self) -> None:
        """Cancel what is in flight and close the transport. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._saves:
            # switch_user persists in the background: let that land (local I/O, bounded by the
            # storage's lock timeout), or the next start would restore a stale current user.
            await asyncio.gather(*self._saves, return_exceptions=True)
        tasks = list(self._tasks)
        if self._location_task is not None:
            tasks.append(self._location_task)
        for user in self._users.values():
            if user._refresh_future is not None:
                tasks.append(user._refresh_future)  # type: ignore[arg-type]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._transport is not None:
            # Like httpx's Client, the App owns the transport it is given.
            await self._transport.aclose()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def email_password_auth(self) -> EmailPasswordAuth:
        """Register, confirm and reset email/password identities."""
        return EmailPasswordAuth(self)

    def __del__(self) -> None:
        if getattr(self, "_opened", False) and not getattr(self, "_closed", True):
            warnings.warn(
                f"App {self.id!r} was not closed: use 'async with App(...)' or 'await app.aclose()'",
                ResourceWarning,
                stacklevel=1,
            )

    def __repr__(self) -> str:
        return f"<App id={self.id!r} base_url={self.base_url!r} users={len(self._users)}>"

    # -- users -----------------------------------------------------------------------------

    @property
    def current_user(self) -> User | None:
        """The current logged-in user: the last one logged in or switched to while it stays
        logged in, else the first logged-in user in storage order, else None."""
        current = self._current
        if current is not None and current.is_logged_in:
            return current
        for user in self._users.values():
            if user.is_logged_in:
                self._current = user
                return user
        self._current = None
        return None

    @property
    def all_users(self) -> Mapping[str, User]:
        """Every user that is not removed (logged in or out), by id, in storage order."""
        return dict(self._users)

    def switch_user(self, user: User) -> None:
        """Make ``user`` (logged in, of this App) the current user."""
        self._check_known(user, missing="User does not exist")
        if not user.is_logged_in:
            raise UserNotLoggedInError("User is no longer valid or is logged out")
        self._current = user
        user.last_used = time.time()
        task = self._spawn(self._save_quietly(user))
        if task is not None:
            self._saves.add(task)
            task.add_done_callback(self._saves.discard)
        self._publish_app()

    async def log_in(self, credentials: Credentials, *, timeout: float | None = None) -> User:
        """Log in; return the (same, for a known identity) ``User``, now current."""
        if not isinstance(credentials, Credentials):
            raise InvalidArgumentError("credentials must be a Credentials object")
        await self.open()
        if credentials.provider == ANONYMOUS and credentials.reuse:
            for known in self._users.values():
                if known.is_logged_in and known.is_anonymous():
                    self.switch_user(known)
                    return known
        body = self._credentials_body(credentials)
        path = f"/auth/providers/{quote(credentials.provider, safe='')}/login"
        data = await self._request("POST", path, body=body, timeout=timeout)
        user_id, access, access_claims, refresh, device_id = self._parse_login(data)
        try:
            identities, profile = await self._fetch_profile(access, timeout=timeout)
        except BaseException:
            # Nothing was committed; don't leave a live session behind on the server either.
            self._spawn(self._revoke_quietly(refresh))
            raise
        user = self._users.get(user_id)
        state_before = user.state if user is not None else UserState.LOGGED_OUT
        if user is None:
            user = User(
                self,
                user_id,
                state=UserState.LOGGED_IN,
                access_token=None,
                refresh_token=None,
                provider_type=credentials.provider,
            )
            self._users[user_id] = user
        else:
            fire(user, "log_in")
            user._session += 1
        user._refresh_token = refresh
        user._set_access_token(access, access_claims)
        if device_id != _NO_DEVICE:
            user.device_id = device_id
        user._identities = identities
        user._profile = profile
        user.last_used = time.time()
        self._current = user
        try:
            await self._save(user)
        finally:
            user._publish(LoggedIn(user.id, credentials.provider), state_before)
            self._publish_app()
        return user

    async def log_out(self, user: User | None = None) -> None:
        """Log ``user`` (default: the current user) out; anonymous users are removed.

        The local tokens are wiped first; if the server cannot be told, the error
        is raised afterwards and the local log-out stands.
        """
        if user is None:
            user = self.current_user
            if user is None:
                return
        if isinstance(user, User) and user._app is self and user.state is UserState.REMOVED:
            return  # core: logging out a removed user succeeds and does nothing
        self._check_known(user, missing="No user has been found")
        if not user.is_logged_in:
            return
        refresh = user._refresh_token
        await self._end_session(user, "log_out", LogoutCause.USER_REQUEST)
        if refresh is not None:
            await self._revoke(refresh)

    async def remove_user(self, user: User) -> None:
        """Forget ``user`` on this device (logging it out first if needed)."""
        if isinstance(user, User) and user.state is UserState.REMOVED:
            raise UserNotFoundError("User has already been removed")
        self._check_known(user, missing="No user has been found")
        refresh = user._refresh_token if user.is_logged_in else None
        await self._end_session(user, "remove", LogoutCause.REMOVED)
        if refresh is not None:
            await self._revoke(refresh)

    async def delete_user(self, user: User, *, timeout: float | None = None) -> None:
        """Delete ``user`` on the server, then forget it here."""
        self._check_known(user, missing="The specified user could not be found.")
        if not user.is_logged_in:
            raise UserNotLoggedInError("User must be logged in to be deleted.")
        await self._request("DELETE", "/auth/delete", app_scoped=False, user=user, token="access",
                            timeout=timeout)
        if user.is_logged_in:
            await self._end_session(user, "delete", LogoutCause.DELETED)

    # -- streams and listeners -----------------------------------------------------------

    @property
    def events(self) -> Observable[AppEvent]:
        """App-level events: current user and user list changes, storage recoveries."""
        if self._events is None:
            self._events = SafeSubject()
        return hide(self._events)

    @property
    def current_user_changes(self) -> Observable[User | None]:
        """The current user on subscribe, then each change (log-in, switch, log-out, removal)."""
        if self._current_subject is None:
            self._current_subject = SafeBehaviorSubject(self.current_user)
        return hide(self._current_subject)

    @property
    def users_changes(self) -> Observable[tuple[User, ...]]:
        """The users of ``all_users`` on subscribe, then whenever the list or a state changes."""
        if self._users_subject is None:
            self._users_subject = SafeBehaviorSubject(tuple(self._users.values()))
        return hide(self._users_subject)

    def add_listener(self, callback: Callable[[AppEvent], Any]) -> None:
        """Call ``callback(event)`` for every app event."""
        if callback not in self._listeners:
            self._listeners[callback] = self.events.subscribe(on_next=callback)

    def remove_listener(self, callback: Callable[[AppEvent], Any]) -> None:
        if callback in self._listeners:
            self._listeners.pop(callback).dispose()

    def remove_all_listeners(self) -> None:
        for disposable in self._listeners.values():
            disposable.dispose()
        self._listeners.clear()

    def _publish_app(self, *, users_changed: bool = False) -> None:
        current = self.current_user
        current_id = None if current is None else current.id
        user_ids = tuple(self._users)
        if current_id != self._published_current:
            self._published_current = current_id
            if self._current_subject is not None:
                self._current_subject.on_next(current)
            if self._events is not None:
                self._events.on_next(CurrentUserChanged(current_id))
        if users_changed or user_ids != self._published_users:
            self._published_users = user_ids
            if self._users_subject is not None:
                self._users_subject.on_next(tuple(self._users.values()))
            if self._events is not None:
                self._events.on_next(UsersChanged(user_ids))

    # -- sessions --------------------------------------------------------------------------

    async def _end_session(self, user: User, trigger: str, cause: LogoutCause) -> None:
        """Run ``trigger`` (log_out, reject_refresh, remove, delete), persist, publish."""
        state_before = user.state
        fire(user, trigger)
        removed = user.state is UserState.REMOVED
        if removed:
            del self._users[user.id]
        if self._current is user:
            self._current = None
        try:
            if removed:
                await self._purge(user.id)
            else:
                await self._save(user)
        finally:
            user._publish(LoggedOut(user.id, cause, user.state), state_before)
            self._publish_app(users_changed=True)

    async def _revoke(self, refresh_token: str) -> None:
        """``DELETE /auth/session``; an already-unknown session counts as revoked."""
        try:
            await self._request("DELETE", "/auth/session", app_scoped=False, bearer=refresh_token)
        except InvalidSessionError as exc:
            if "failed to find refresh token" not in exc.message:
                raise

    async def _revoke_quietly(self, refresh_token: str) -> None:
        try:
            await self._revoke(refresh_token)
        except Exception as exc:  # best effort: the caller already has the real error
            _log.debug("could not revoke an unused session: %s", type(exc).__name__)

    async def _refresh_access_token(self, user: User, *, custom_data: bool = False) -> str:
        """A fresh access token for ``user``; concurrent callers share one request.

        ``custom_data``: the caller asked for custom data, so ``CustomDataRefreshed`` is
        published even when the data did not change.
        """
        self._check_known(user, missing="No user has been found")
        if custom_data:
            user._announce_custom_data = True
        pending = user._refresh_future
        if pending is None:
            if not user.is_logged_in or user._refresh_token is None:
                raise UserNotLoggedInError("The user is not logged in")
            pending = asyncio.ensure_future(self._do_refresh(user))
            pending.add_done_callback(lambda f: f.cancelled() or f.exception())
            user._refresh_future = pending
        return await asyncio.shield(pending)

    async def _do_refresh(self, user: User) -> str:
        session = user._session
        refresh = user._refresh_token
        assert refresh is not None
        try:
            url = await self._url("/auth/session", app_scoped=False)
            response = await self._send("POST", url, bearer=refresh)
            if user._session != session or not user.is_logged_in:
                # Logged out (or in again) meanwhile: whatever came back must not touch the user.
                raise UserNotLoggedInError("the user logged out while its token was being refreshed")
            if response.status == 401:
                await self._end_session(user, "reject_refresh", LogoutCause.REFRESH_TOKEN_REJECTED)
                raise RefreshTokenRejectedError(
                    "the server rejected the refresh token; the user was logged out",
                    status=401,
                    error_code="InvalidSession",
                    method="POST",
                    url=_path_of(url),
                )
            data = self._parse(response, "POST", url)
            token = data.get("access_token") if isinstance(data, dict) else None
            if not isinstance(token, str):
                raise MissingJsonKeyError("access_token")
            claims = _jwt.decode_payload(token, what="access token")
            custom_before = user.custom_data
            user._set_access_token(token, claims)
            try:
                await self._save(user)
            except StorageError as exc:
                _log.warning("could not persist a refreshed token: %s", type(exc).__name__)
            user._publish(AccessTokenRefreshed(user.id), user.state)
            custom_after = user.custom_data
            if custom_after != custom_before or user._announce_custom_data:
                user._announce_custom_data = False
                user._publish(CustomDataRefreshed(user.id, custom_after), user.state)
            return token
        finally:
            user._refresh_future = None

    async def _fetch_profile(
        self, access_token: str, *, timeout: float | None = None
    ) -> tuple[tuple[Identity, ...], Profile]:
        data = await self._request("GET", "/auth/profile", app_scoped=False, bearer=access_token,
                                   timeout=timeout)
        return _parse_profile(data)

    async def _refresh_profile(self, user: User) -> None:
        self._require_logged_in(user)
        data = await self._request("GET", "/auth/profile", app_scoped=False, user=user, token="access")
        identities, profile = _parse_profile(data)
        user._identities = identities
        user._profile = profile
        await self._save(user)
        user._publish(ProfileRefreshed(user.id, profile, identities), user.state)

    async def _link(self, user: User, credentials: Credentials, *, timeout: float | None = None) -> None:
        if not isinstance(credentials, Credentials):
            raise InvalidArgumentError("credentials must be a Credentials object")
        self._check_known(user, missing="The specified user could not be found.")
        if not user.is_logged_in:
            raise UserNotLoggedInError("The specified user is not logged in.")
        if credentials.provider == ANONYMOUS:
            raise UserAlreadyNamedError("Cannot add anonymous credentials to an existing user.")
        body = self._credentials_body(credentials)
        path = f"/auth/providers/{quote(credentials.provider, safe='')}/login?link=true"
        if user._expired_soon(self.refresh_leeway):
            await self._refresh_access_token(user)
        # No 401 refresh-and-retry here (as core): a 401 on link is about the credentials
        # (InvalidPassword), and a failed link must change nothing, tokens included.
        bearer = self._require_logged_in(user)._access_token
        data = await self._request("POST", path, body=body, bearer=bearer, timeout=timeout)
        if not isinstance(data, dict):
            raise ResponseError("the link response is not an object")
        token = data.get("access_token")
        if not isinstance(token, str):
            raise MissingJsonKeyError("access_token")
        claims = _jwt.decode_payload(token, what="access token")
        linked_id = data.get("user_id")
        if isinstance(linked_id, str) and linked_id != user.id:
            raise ResponseError("the link response is for another user")
        identities, profile = await self._fetch_profile(token, timeout=timeout)
        if not user.is_logged_in:
            raise UserNotLoggedInError("the user logged out while linking")
        user._set_access_token(token, claims)
        user._identities = identities
        user._profile = profile
        self._current = user
        user.last_used = time.time()
        try:
            await self._save(user)
        finally:
            user._publish(IdentitiesLinked(user.id, identities), user.state)
            self._publish_app()

    async def _call_function(
        self, user: User, name: str, args: tuple[Any, ...], *, timeout: float | None = None,
        service: str | None = None,
    ) -> Any:
        if not isinstance(name, str) or not name:
            raise InvalidArgumentError("the function name must be a non-empty string")
        self._require_logged_in(user)
        payload: dict[str, Any] = {"name": name, "arguments": list(args)}
        if service is not None:
            payload["service"] = service
        try:
            body = _ejson.dumps(payload).encode()
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"arguments cannot be encoded as Extended JSON: {exc}") from None
        return await self._request("POST", "/functions/call", body=body, user=user, token="access",
                                   timeout=timeout, ejson=True)

    # -- the request pipeline ------------------------------------------------------------------

    def _get_transport(self) -> Transport:
        if self._closed:
            raise AppClosedError("this App is closed")
        if self._transport is None:
            from appusers.adapters._aiohttp import AiohttpTransport

            self._transport = AiohttpTransport(timeout=self.timeout)
        return self._transport

    async def _send(
        self, method: str, url: str, *, bearer: str | None = None, body: bytes | None = None,
        timeout: float | None = None,
    ) -> Response:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        request = Request(method, url, headers, body, timeout if timeout is not None else self.timeout)
        debug = _log.isEnabledFor(logging.DEBUG)
        if debug:
            _log.debug("%s %s", method, _path_of(url))
        response = await self._get_transport().send(request)
        if debug:
            _log.debug("%s %s -> %d", method, _path_of(url), response.status)
        return response

    async def _location(self) -> str:
        if self._hostname is not None:
            return self._hostname
        task = self._location_task
        if task is None:
            task = asyncio.ensure_future(self._fetch_location())
            task.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._location_task = task
        try:
            hostname = await asyncio.shield(task)
        finally:
            if task.done():
                self._location_task = None  # a failure is retried by the next request
        self._hostname = hostname
        return hostname

    async def _fetch_location(self) -> str:
        url = f"{self.base_url}{_API}/app/{quote(self.id, safe='')}/location"
        data = self._parse(await self._send("GET", url), "GET", url)
        hostname = data.get("hostname") if isinstance(data, dict) else None
        if not isinstance(hostname, str) or not hostname:
            raise MissingJsonKeyError("hostname")
        return hostname.rstrip("/")

    async def _url(self, path: str, *, app_scoped: bool) -> str:
        hostname = self._hostname if self._hostname is not None else await self._location()
        return f"{hostname}{self._app_prefix if app_scoped else _API}{path}"

    async def _request(
        self,
        method: str,
        path: str,
        *,
        app_scoped: bool = True,
        body: bytes | None = None,
        user: User | None = None,
        token: TokenKind = "none",
        bearer: str | None = None,
        timeout: float | None = None,
        ejson: bool = False,
    ) -> Any:
        """Send one API request and return its parsed body, raising typed errors.

        ``token="access"`` applies the refresh policy; ``token="refresh"`` treats a
        401 as a dead session (the user is logged out).
        """
        if self._closed:
            raise AppClosedError("this App is closed")
        await self.open()
        url = await self._url(path, app_scoped=app_scoped)
        if token == "access":
            assert user is not None
            response = await self._send_with_access(user, method, url, body, timeout)
        elif token == "refresh":
            assert user is not None
            sent = self._require_logged_in(user)._refresh_token
            assert sent is not None
            response = await self._send(method, url, bearer=sent, body=body, timeout=timeout)
            if response.status == 401 and user.is_logged_in and user._refresh_token == sent:
                await self._end_session(user, "reject_refresh", LogoutCause.REFRESH_TOKEN_REJECTED)
                raise RefreshTokenRejectedError(
                    "the server rejected the refresh token; the user was logged out",
                    status=401, error_code="InvalidSession", method=method, url=_path_of(url),
                )
        else:
            response = await self._send(method, url, bearer=bearer, body=body, timeout=timeout)
        return self._parse(response, method, url, ejson=ejson)

    async def _send_with_access(
        self, user: User, method: str, url: str, body: bytes | None, timeout: float | None
    ) -> Response:
        refreshed = False
        if user._expired_soon(self.refresh_leeway):
            await self._refresh_access_token(user)
            refreshed = True
        sent = self._require_logged_in(user)._access_token
        assert sent is not None
        response = await self._send(method, url, bearer=sent, body=body, timeout=timeout)
        if response.status != 401:
            return response
        if user._access_token == sent:
            if refreshed or not user.is_logged_in:
                return response  # one refresh per request at most: the 401 stands
            await self._refresh_access_token(user)
        current = user._access_token
        if current is None or current == sent:
            return response
        # One retry, with whichever fresh token this or a concurrent request obtained.
        return await self._send(method, url, bearer=current, body=body, timeout=timeout)

    def _parse(self, response: Response, method: str, url: str, *, ejson: bool = False) -> Any:
        data: Any = None
        media_type = response.content_type.split(";", 1)[0].strip().lower()
        if response.body and media_type == "application/json":
            try:
                data = _ejson.loads(response.body) if ejson else _ejson.loads_plain(response.body)
            except ValueError:
                if response.ok:
                    raise MalformedJsonError(
                        f"{method} {_path_of(url)}: the response is not valid JSON"
                    ) from None
                data = None
            error = service_error_from_body(data, status=response.status, method=method)
            if error is not None:
                error.url = _path_of(url)  # without the query: a streaming URL may carry a token
                raise error
        if not response.ok:
            kind = "server error" if response.status >= 500 else "client error"
            path = _path_of(url)
            raise HTTPStatusError(
                f"{method} {path} failed: HTTP {response.status} ({kind})",
                status=response.status, method=method, url=path,
            )
        return data

    # -- helpers -----------------------------------------------------------------------------

    def _credentials_body(self, credentials: Credentials) -> bytes:
        body: dict[str, Any] = {}
        if credentials.provider != FUNCTION:
            body["provider"] = credentials.provider
        body.update(credentials.payload)
        body["options"] = {"device": self._device}
        try:
            return _ejson.dumps(body).encode()
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"credentials cannot be encoded as Extended JSON: {exc}") from None

    @staticmethod
    def _parse_login(data: Any) -> tuple[str, str, dict[str, Any], str, str]:
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
            access_claims = _jwt.decode_payload(data["access_token"], what="access token")
            _jwt.decode_payload(data["refresh_token"], what="refresh token")
        except BadTokenError as exc:
            raise BadTokenError(f"Could not log in user: received {exc.message}") from None
        return data["user_id"], data["access_token"], access_claims, data["refresh_token"], data["device_id"]

    def _check_known(self, user: User, *, missing: str) -> None:
        if not isinstance(user, User):
            raise InvalidArgumentError("expected a User")
        if user._app is not self or self._users.get(user.id) is not user:
            raise UserNotFoundError(missing)

    def _require_logged_in(self, user: User) -> User:
        if not user.is_logged_in:
            raise UserNotLoggedInError(f"user {user.id} is not logged in")
        return user

    def _spawn(self, coro: Any) -> asyncio.Task[Any] | None:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:
            coro.close()
            return None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- persistence ---------------------------------------------------------------------------

    def _index(self) -> str:
        # The stored id follows the current-user rule (core): after the current user logs
        # out or goes, it is the first logged-in user in storage order, not None.
        current = self.current_user
        return dump_index(Index(tuple(self._users), None if current is None else current.id))

    async def _save(self, user: User) -> None:
        record = UserRecord(
            id=user.id,
            state=user.state,
            access_token=user._access_token,
            refresh_token=user._refresh_token,
            device_id=user.device_id,
            identities=user._identities,
            profile=user._profile,
            provider_type=user._provider_type,
            last_used=user.last_used,
        )
        await self.storage.update(
            {self._keys.user(user.id): dump_user(record), self._keys.index: self._index()}
        )

    async def _save_quietly(self, user: User) -> None:
        try:
            await self._save(user)
        except StorageError as exc:
            _log.warning("could not persist the current user: %s", type(exc).__name__)

    async def _purge(self, user_id: str) -> None:
        await self.storage.update({self._keys.user(user_id): None, self._keys.index: self._index()})

    async def _restore(self) -> None:
        items = await self.storage.items(self._keys.prefix)
        # Restoring builds a few objects per user, all long-lived: the cyclic GC would
        # rescan them over and over (half the restore time at 100,000 users).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            purge, issues = self._load(items)
        finally:
            if gc_was_enabled:
                gc.enable()
        await self._after_restore(purge, issues)

    def _load(self, items: Mapping[str, str]) -> tuple[dict[str, str | None], list[StorageIssue]]:
        """Build the users; return the records to purge and what was repaired."""
        issues = list(self.storage.drain_issues())
        index = Index()
        raw_index = items.get(self._keys.index)
        if raw_index is not None:
            try:
                index = load_index(raw_index)
            except ValueError as exc:
                issues.append(StorageIssue("record-dropped", f"unreadable user index: {exc}"))
        user_key = self._keys.user
        order = list(index.order)
        if len(items) - (raw_index is not None) > len(order):
            # Records the index does not list (written by an older or crashed writer): keep them, last.
            indexed = set(order)
            for key in items:
                user_id = self._keys.user_id_of(key)
                if user_id is not None and user_id not in indexed:
                    order.append(user_id)
        purge: dict[str, str | None] = {}
        users = self._users
        logged_in, logged_out, removed = UserState.LOGGED_IN, UserState.LOGGED_OUT, UserState.REMOVED
        for user_id in order:
            raw = items.get(user_key(user_id))
            if raw is None:
                continue
            try:
                record = load_user(raw)
            except (ValueError, KeyError, TypeError) as exc:
                issues.append(StorageIssue("record-dropped", f"unreadable record of user {user_id}: {exc}"))
                purge[user_key(user_id)] = None
                continue
            state = record.state
            if state is removed or record.id != user_id:
                purge[user_key(user_id)] = None
                continue
            access, refresh = record.access_token, record.refresh_token
            if state is logged_in:
                # Tokens were decoded before they were stored; a damaged one is one without
                # a JWT's shape, and its user comes back logged out (core's rule).
                if not (access and refresh and access.count(".") == 2 and refresh.count(".") == 2):
                    state, access, refresh = logged_out, None, None
            else:
                access = refresh = None
            users[user_id] = User(
                self, user_id, state, access, refresh, record.device_id, record.identities,
                record.profile, record.provider_type, record.last_used,
            )
        if index.current is not None:
            self._current = self._users.get(index.current)
        return purge, issues

    async def _after_restore(self, purge: dict[str, str | None], issues: list[StorageIssue]) -> None:
        if purge:
            purge[self._keys.index] = self._index()
            try:
                await self.storage.update(purge)
            except StorageError as exc:
                _log.warning("could not purge removed users: %s", type(exc).__name__)
        self.storage_issues.extend(issues)
        for issue in issues:
            _log.warning("storage recovered: %s (%s)", issue.kind, issue.detail)
            if self._events is not None:
                self._events.on_next(StorageRecovered(issue))
        self._publish_app()


def _path_of(url: str) -> str:
    """The URL without its query: streaming URLs can carry a token there."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _parse_profile(data: Any) -> tuple[tuple[Identity, ...], Profile]:
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
    kind = data.get("type")
    if not isinstance(kind, str) or not kind or not kind.isprintable():
        kind = "normal"
    return tuple(identities), Profile(profile_data, kind)

