"""``App``: the users of one App Services app and the public API over them.

Data flows one way: a caller asks the App; the App decides (the lifecycle
machine, the current-user rule); the request pipeline (``_pipeline``) does the
HTTP, the persistence (``_persistence``) the storage; the result is committed as
a transition; then, outside any lock, the change is published on the Rx streams.
The refresh policy is described in ``_pipeline``.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._connectivity import ConnectivityTracker
from ._credentials import ANONYMOUS, Credentials
from ._lazy import lazy_logger, lazy_module
from ._machine import build_machines, fire
from ._models import Connectivity, UserState
from ._persistence import Persistence
from ._pipeline import Pipeline
from ._records import Index, UserRecord
from ._registry import UserRegistry
from ._retry import RetryPolicy
from ._user import User
from .errors import (
    AppClosedError,
    InvalidArgumentError,
    StorageError,
    UserAlreadyNamedError,
    UserNotFoundError,
    UserNotLoggedInError,
)
from .storage import Storage, StorageIssue
from .transport import Transport

# Imported on first use (see ``_user``): the streams are built on first subscription. The
# event classes (``_events``, a dozen attrs classes, a tenth of ``import appusers``) are
# imported where an event is first made; asyncio on first use too (see ``_lazy``).
if TYPE_CHECKING:
    import asyncio

    from reactivex import Observable, abc

    from ._email_password import EmailPasswordAuth
    from ._events import AppEvent, LogoutCause
    from ._streams import SafeBehaviorSubject, SafeSubject
else:
    asyncio = lazy_module("asyncio", globals())

__all__ = ["DEFAULT_BASE_URL", "App"]

DEFAULT_BASE_URL = "https://services.cloud.mongodb.com"
_NO_DEVICE = "000000000000000000000000"
_log = lazy_logger("appusers", globals())


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


class App:
    """The users of the App Services app ``app_id``.

    ::

        async with App("my-app", base_url="http://127.0.0.1:9090") as app:
            user = await app.log_in(Credentials.anonymous())
            print(await user.functions.sum(1, 2))

    ``storage`` keeps users between runs (default: a private file under the platform's user
    data directory, one per app id and base URL, see ``appusers.adapters.default_storage_path``;
    pass ``MemoryStorage()`` to keep nothing). ``transport`` does HTTP
    (default: aiohttp; closed with the App). ``timeout`` is the default per-request timeout in seconds;
    most calls also take their own ``timeout=``. ``retry`` says which failures of requests that
    are safe to repeat are retried, and how long to wait (default: ``RetryPolicy()``;
    ``RetryPolicy.none()`` never retries).

    ``connectivity`` (and ``connectivity_changes``) aggregates the ``LoggedIn`` sub-states of
    its users: ``online``, ``refreshing``, or ``offline`` with the last error and the time of
    the next attempt; ``await app.wait_online()`` returns once the server answers.
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
        retry: RetryPolicy | None = None,
    ) -> None:
        if not isinstance(app_id, str) or not app_id.strip():
            raise InvalidArgumentError("app_id must be a non-empty string")
        if not isinstance(timeout, int | float) or timeout <= 0:
            raise InvalidArgumentError("timeout must be a positive number of seconds")
        if not isinstance(refresh_leeway, int | float) or refresh_leeway < 0:
            raise InvalidArgumentError("refresh_leeway must be >= 0 seconds")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise InvalidArgumentError("retry must be a RetryPolicy")
        #: Which failed requests are sent again, and when (read at each request).
        self.retry: RetryPolicy = retry if retry is not None else RetryPolicy()
        build_machines()  # once per process; not at import (see ``_machine``)
        self.id = app_id
        self.base_url = _check_base_url(base_url)
        if storage is None:
            from appusers.adapters._default import default_storage

            storage = default_storage(app_id, self.base_url)
        self._persistence = Persistence(storage, app_id)
        self._pipeline = Pipeline(
            self, app_id, self.base_url, transport=transport, timeout=float(timeout),
            refresh_leeway=float(refresh_leeway), retry=lambda: self.retry,
        )
        self._connectivity = ConnectivityTracker(
            users=lambda: self._users.values(),
            probe=self._pipeline.probe,
            policy=lambda: self.retry,
            spawn=self._pipeline.spawn,
        )
        self._pipeline.observer = self._connectivity
        self._users = UserRegistry(functools.partial(User, self))
        self._current: User | None = None
        self._opened = False
        self._open_lock: asyncio.Lock | None = None
        self._closed = False
        self._saves: set[asyncio.Task[Any]] = set()  # background saves aclose lets finish
        self._events: SafeSubject[AppEvent] | None = None
        self._current_subject: SafeBehaviorSubject[User | None] | None = None
        self._users_subject: SafeBehaviorSubject[tuple[User, ...]] | None = None
        self._published_current: str | None = None
        self._published_users: tuple[str, ...] = ()
        self._listeners: dict[Callable[..., Any], abc.DisposableBase] = {}
        self.storage_issues: list[StorageIssue] = []

    @property
    def storage(self) -> Storage:
        """Where the users are kept between runs."""
        return self._persistence.storage

    @property
    def timeout(self) -> float:
        """The default per-request timeout, in seconds."""
        return self._pipeline.timeout

    @timeout.setter
    def timeout(self, value: float) -> None:
        self._pipeline.timeout = value

    @property
    def refresh_leeway(self) -> float:
        """How long before its expiry an access token is refreshed, in seconds."""
        return self._pipeline.refresh_leeway

    @refresh_leeway.setter
    def refresh_leeway(self, value: float) -> None:
        self._pipeline.refresh_leeway = value

    @property
    def _transport(self) -> Transport | None:
        return self._pipeline.given_transport

    @property
    def _tasks(self) -> set[asyncio.Task[Any]]:
        """Background work (saves, revocations, watch pumps) cancelled by :meth:`aclose`."""
        return self._pipeline.tasks

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
            self._pipeline.opened = True

    async def aclose(self) -> None:
        """Cancel what is in flight and close the transport. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._pipeline.closed = True
        if self._saves:
            # switch_user persists in the background: let that land (local I/O, bounded by the
            # storage's lock timeout), or the next start would restore a stale current user.
            await asyncio.gather(*self._saves, return_exceptions=True)
        await self._pipeline.aclose()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def email_password_auth(self) -> EmailPasswordAuth:
        """Register, confirm and reset email/password identities."""
        from ._email_password import EmailPasswordAuth

        return EmailPasswordAuth(self._pipeline, self)

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
        return self._users.built()

    def switch_user(self, user: User) -> None:
        """Make ``user`` (logged in, of this App) the current user."""
        self._check_known(user, missing="User does not exist")
        if not user.is_logged_in:
            raise UserNotLoggedInError("User is no longer valid or is logged out")
        self._current = user
        user._last_used = time.time()
        task = self._pipeline.spawn(self._save_quietly(user))
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
        pipeline = self._pipeline
        login = await pipeline.log_in(credentials, timeout=timeout)
        try:
            identities, profile = await pipeline.fetch_profile(login.access_token, timeout=timeout)
        except BaseException:
            # Nothing was committed; don't leave a live session behind on the server either.
            pipeline.spawn(pipeline.revoke_quietly(login.refresh_token))
            raise
        user_id = login.user_id
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
        user._refresh_token = login.refresh_token
        user._set_access_token(login.access_token, login.access_claims)
        if login.device_id != _NO_DEVICE:
            user._device_id = login.device_id
        user._identities = identities
        user._profile = profile
        user._last_used = time.time()
        self._current = user
        try:
            await self._save(user)
        finally:
            from ._events import LoggedIn

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
        from ._events import LogoutCause

        await self._end_session(user, "log_out", LogoutCause.USER_REQUEST)
        if refresh is not None:
            await self._pipeline.revoke(refresh)

    async def remove_user(self, user: User) -> None:
        """Forget ``user`` on this device (logging it out first if needed)."""
        if isinstance(user, User) and user.state is UserState.REMOVED:
            raise UserNotFoundError("User has already been removed")
        self._check_known(user, missing="No user has been found")
        refresh = user._refresh_token if user.is_logged_in else None
        from ._events import LogoutCause

        await self._end_session(user, "remove", LogoutCause.REMOVED)
        if refresh is not None:
            await self._pipeline.revoke(refresh)

    async def delete_user(self, user: User, *, timeout: float | None = None) -> None:
        """Delete ``user`` on the server, then forget it here."""
        self._check_known(user, missing="The specified user could not be found.")
        if not user.is_logged_in:
            raise UserNotLoggedInError("User must be logged in to be deleted.")
        await self._pipeline.request("DELETE", "/auth/delete", app_scoped=False, user=user,
                                     token="access", timeout=timeout)
        if user.is_logged_in:
            from ._events import LogoutCause

            await self._end_session(user, "delete", LogoutCause.DELETED)

    # -- streams and listeners -----------------------------------------------------------

    @property
    def events(self) -> Observable[AppEvent]:
        """App-level events: current user and user list changes, storage recoveries."""
        from ._streams import SafeSubject, hide

        if self._events is None:
            self._events = SafeSubject()
        return hide(self._events)

    @property
    def connectivity(self) -> Connectivity:
        """The App's aggregate connectivity: ``offline`` (with the last error and the time of
        the next attempt) when its server cannot be reached, ``refreshing`` while a user's
        token refresh is in flight, else ``online``. Each user's own is ``user.connectivity``."""
        return self._connectivity.state

    @property
    def connectivity_changes(self) -> Observable[Connectivity]:
        """The aggregate connectivity on subscribe, then every change."""
        return self._connectivity.changes

    async def wait_online(self, *, timeout: float | None = None) -> None:
        """Return once the server has answered and is not known to be unreachable.

        If no answer was seen yet, or the App is offline, probe the server (``GET location``)
        now and then on the retry policy's back-off until it answers. Raises ``TimeoutError``
        after ``timeout`` seconds (None: wait as long as it takes; cancel to stop).
        """
        if self._closed:
            raise AppClosedError("this App is closed")
        await self.open()
        await self._connectivity.wait_online(timeout)

    @property
    def current_user_changes(self) -> Observable[User | None]:
        """The current user on subscribe, then each change (log-in, switch, log-out, removal)."""
        from ._streams import SafeBehaviorSubject, hide

        if self._current_subject is None:
            self._current_subject = SafeBehaviorSubject(self.current_user)
        return hide(self._current_subject)

    @property
    def users_changes(self) -> Observable[tuple[User, ...]]:
        """The users of ``all_users`` on subscribe, then whenever the list or a state changes."""
        from ._streams import SafeBehaviorSubject, hide

        if self._users_subject is None:
            self._users_subject = SafeBehaviorSubject(tuple(self._users.built().values()))
        return hide(self._users_subject)

    def add_listener(self, callback: Callable[[AppEvent], Any] | Callable[[], Any]) -> None:
        """Call ``callback(event)`` — or ``callback()``, if it takes no argument — for every
        app event. A callback of any other shape raises ``TypeError`` here."""
        from ._streams import listener

        observer = listener(callback)
        if callback not in self._listeners:
            self._listeners[callback] = self.events.subscribe(on_next=observer)

    def remove_listener(self, callback: Callable[[AppEvent], Any] | Callable[[], Any]) -> None:
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
                from ._events import CurrentUserChanged

                self._events.on_next(CurrentUserChanged(current_id))
        if users_changed or user_ids != self._published_users:
            self._published_users = user_ids
            if self._users_subject is not None:
                self._users_subject.on_next(tuple(self._users.built().values()))
            if self._events is not None:
                from ._events import UsersChanged

                self._events.on_next(UsersChanged(user_ids))

    # -- sessions (what the request pipeline and the users ask of the App) ----------------

    async def _end_session(self, user: User, trigger: str, cause: LogoutCause) -> None:
        from ._events import LoggedOut

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
                await self._persistence.purge(user.id, self._index())
            else:
                await self._save(user)
        finally:
            user._publish(LoggedOut(user.id, cause, user.state), state_before)
            self._publish_app(users_changed=True)

    async def _session_rejected(self, user: User, *, disabled: bool = False) -> None:
        from ._events import LogoutCause

        cause = LogoutCause.USER_DISABLED if disabled else LogoutCause.REFRESH_TOKEN_REJECTED
        await self._end_session(user, "reject_refresh", cause)

    async def _access_token_refreshed(self, user: User, token: str, claims: Mapping[str, Any]) -> None:
        from ._events import AccessTokenRefreshed, CustomDataRefreshed

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

    async def _refresh_profile(self, user: User) -> None:
        from ._events import ProfileRefreshed

        identities, profile = await self._pipeline.refresh_profile(user)
        user._identities = identities
        user._profile = profile
        await self._save(user)
        user._publish(ProfileRefreshed(user.id, profile, identities), user.state)

    async def _link(self, user: User, credentials: Credentials, *, timeout: float | None = None) -> None:
        from ._events import CurrentUserLinked, IdentitiesLinked

        if not isinstance(credentials, Credentials):
            raise InvalidArgumentError("credentials must be a Credentials object")
        self._check_known(user, missing="The specified user could not be found.")
        if not user.is_logged_in:
            raise UserNotLoggedInError("The specified user is not logged in.")
        if credentials.provider == ANONYMOUS:
            raise UserAlreadyNamedError("Cannot add anonymous credentials to an existing user.")
        token, claims, identities, profile = await self._pipeline.link(user, credentials, timeout=timeout)
        if not user.is_logged_in:
            raise UserNotLoggedInError("the user logged out while linking")
        user._set_access_token(token, claims)
        user._identities = identities
        user._profile = profile
        self._current = user
        user._last_used = time.time()
        try:
            await self._save(user)
        finally:
            user._publish(IdentitiesLinked(user.id, identities), user.state)
            self._publish_app()
            if self._events is not None:
                self._events.on_next(CurrentUserLinked(user.id, identities))

    def _check_known(self, user: User, *, missing: str) -> None:
        if not isinstance(user, User):
            raise InvalidArgumentError("expected a User")
        if user._app is not self or self._users.get(user.id) is not user:
            raise UserNotFoundError(missing)

    # -- persistence -----------------------------------------------------------------------------

    def _index(self) -> Index:
        # The stored id follows the current-user rule (core): after the current user logs
        # out or goes, it is the first logged-in user in storage order, not None.
        current = self.current_user
        return Index(tuple(self._users), None if current is None else current.id)

    @staticmethod
    def _record(user: User) -> UserRecord:
        return UserRecord(
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

    async def _save(self, user: User) -> None:
        await self._persistence.save(self._record(user), self._index())

    async def _save_quietly(self, user: User) -> None:
        # The record and the index are taken when the save runs, not when it was asked for:
        # a log-out between the two must not be overwritten by a stale current user.
        try:
            await self._save(user)
        except StorageError as exc:
            _log.warning("could not persist the current user: %s", type(exc).__name__)

    async def _restore(self) -> None:
        # Users are built on first use (``_registry``): open() only reads and checks the records.
        restored = await self._persistence.restore()
        self._users.restore(restored.records, take=True)  # restore() made it for this App
        if restored.current is not None:
            self._current = self._users.get(restored.current)
        if restored.purge:
            await self._persistence.finish_restore(restored.purge, self._index())
        self.storage_issues.extend(restored.issues)
        for issue in restored.issues:
            _log.warning("storage recovered: %s (%s)", issue.kind, issue.detail)
            if self._events is not None:
                from ._events import StorageRecovered

                self._events.on_next(StorageRecovered(issue))
        self._publish_app()
