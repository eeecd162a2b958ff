"""``User``: one user of an App, a model of the lifecycle machine in ``_machine``.

A ``User`` holds its state and tokens. Its requests go through the App's request
pipeline (``_pipeline``); what spans users (the current user, anonymous reuse,
storage) is the App's, reached through the narrow :class:`UserOwner` interface.
The class is slotted and its streams are built on first use, so an App can hold
100,000 restored users cheaply.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from . import _ejson, _jwt
from ._connectivity import ONLINE
from ._credentials import ANONYMOUS, Credentials
from ._functions import Functions
from ._lazy import lazy_module
from ._machine import fire_connectivity
from ._models import Connectivity, ConnectivityState, FrozenDict, Identity, Profile, Tokens, UserState, freeze
from ._records import identities_from_raw
from .errors import BadTokenError

# Streams (reactivex), API keys and MongoDB are imported on first use, not with appusers:
# a user's streams are built on first subscription anyway, and reactivex alone was about a
# fifth of ``import appusers``.
if TYPE_CHECKING:
    import asyncio

    from reactivex import Observable, abc

    from ._api_keys import ApiKeys
    from ._events import UserEvent
    from ._mongo import MongoClient
    from ._pipeline import Pipeline
    from ._streams import SafeBehaviorSubject, SafeSubject
else:
    asyncio = lazy_module("asyncio", globals())  # on first use: see ``_lazy``

__all__ = ["User", "UserOwner"]

_NO_DATA: Mapping[str, Any] = FrozenDict()
# Module constants: an enum member read through its class costs ten times a global, and
# restoring builds 100,000 users.
_LOGGED_IN = UserState.LOGGED_IN
_REACH_ONLINE = ConnectivityState.ONLINE


class UserOwner(Protocol):
    """What a ``User`` needs of the App that holds it (``App`` is the implementation).

    Requests go through the App's request pipeline; operations that change which
    users exist or which one is current (log-out, link) are the App's.
    """

    @property
    def _pipeline(self) -> Pipeline: ...

    async def log_out(self, user: Any = None) -> None: ...

    async def _link(self, user: Any, credentials: Credentials, *, timeout: float | None = None) -> None: ...

    async def _refresh_profile(self, user: Any) -> None: ...


def _profile_data(raw: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


class User:
    """A user known to an :class:`App`.

    Read its ``state``; watch ``state_changes`` (replays the current state) and
    ``events`` (typed events: logged in, logged out with a cause, token and
    custom-data refreshes...). There is one ``User`` object per user id per App.
    """

    __slots__ = (
        "__weakref__",
        "_access_deadline",
        "_access_token",
        "_announce_custom_data",
        "_app",
        "_connectivity",
        "_connectivity_subject",
        "_custom_data",
        "_device_id",
        "_events",
        "_id",
        "_identities",
        "_last_used",
        "_listeners",
        "_profile",
        "_provider_type",
        "_reach",
        "_refresh_token",
        "_session",
        "_state",
        "_state_subject",
    )

    def __init__(
        self,
        app: UserOwner,
        user_id: str,
        state: UserState,
        access_token: str | None,
        refresh_token: str | None,
        device_id: str | None = None,
        identities: tuple[Identity, ...] | str = (),
        profile: Profile | tuple[str, str] | None = None,
        provider_type: str | None = None,
        last_used: float = 0.0,
    ) -> None:
        self._app = app
        self._id = user_id
        #: Written only by the lifecycle machine (``_machine.fire``), whose model attribute it is.
        self._state = state
        #: The connectivity sub-machine's state (``_machine.CONNECTIVITY_CONFIG``); None unless logged in.
        logged_in = state is _LOGGED_IN
        self._reach: ConnectivityState | None = _REACH_ONLINE if logged_in else None
        self._connectivity: Connectivity | None = ONLINE if logged_in else None
        self._connectivity_subject: SafeBehaviorSubject[Connectivity | None] | None = None
        self._access_token = access_token
        self._refresh_token = refresh_token
        #: Monotonic time after which the access token is treated as expired; None = unknown yet.
        self._access_deadline: float | None = None
        self._device_id = device_id
        # Restored users keep identities and profile as raw JSON until first read.
        self._identities: tuple[Identity, ...] | str = identities
        self._profile: Profile | tuple[str, str] | None = profile
        self._provider_type = provider_type
        self._last_used = last_used
        #: Bumped by every log-in and log-out, so a late refresh result can tell it is stale.
        self._session = 0
        self._custom_data: tuple[str, Mapping[str, Any]] | None = None
        self._announce_custom_data = False
        self._state_subject: SafeBehaviorSubject[UserState] | None = None
        self._events: SafeSubject[UserEvent] | None = None
        self._listeners: dict[Callable[..., Any], abc.DisposableBase] | None = None

    # -- machine model hooks (named in _machine.MACHINE_CONFIG) --------------------------

    def is_anonymous(self) -> bool:
        """Core's rule: exactly one identity, and it is anonymous."""
        identities = self.identities
        if identities:
            return len(identities) == 1 and identities[0].provider_type == ANONYMOUS
        return self._provider_type == ANONYMOUS

    def enter_session(self) -> None:
        """Entering LoggedIn starts its connectivity sub-machine (a fresh login reached the server)."""
        self._reach = ConnectivityState.ONLINE
        self._connectivity = ONLINE

    def leave_session(self) -> None:
        self._reach = None
        self._connectivity = None

    def _drop_tokens(self) -> None:
        self._access_token = None
        self._refresh_token = None
        self._access_deadline = None
        self._custom_data = None
        self._session += 1

    # -- read-only view -----------------------------------------------------------------
    # Nothing here can be assigned: a state changes only through the machine, tokens only
    # through log-in, refresh and log-out.

    @property
    def id(self) -> str:
        """The user id the server gave at log-in."""
        return self._id

    @property
    def state(self) -> UserState:
        """Where the user is in its lifecycle; watch ``state_changes`` for changes."""
        return self._state

    @property
    def device_id(self) -> str | None:
        """The device id of the last log-in (None if the server gave none)."""
        return self._device_id

    @property
    def last_used(self) -> float:
        """When this user last logged in, linked or was switched to (epoch seconds)."""
        return self._last_used

    @property
    def app(self) -> UserOwner:
        """The App this user belongs to."""
        return self._app

    @property
    def _pipeline(self) -> Pipeline:
        return self._app._pipeline

    @property
    def is_logged_in(self) -> bool:
        return self._state is UserState.LOGGED_IN

    @property
    def access_token(self) -> str | None:
        return self._access_token

    @property
    def refresh_token(self) -> str | None:
        return self._refresh_token

    @property
    def tokens(self) -> Tokens | None:
        """Both tokens as one immutable value, or None when not logged in."""
        if self._access_token is None or self._refresh_token is None:
            return None
        return Tokens(self._access_token, self._refresh_token)

    @property
    def identities(self) -> tuple[Identity, ...]:
        identities = self._identities
        if not isinstance(identities, tuple):
            identities = self._identities = identities_from_raw(identities)
        return identities

    @property
    def profile(self) -> Profile:
        profile = self._profile
        if profile is None:
            return Profile()
        if not isinstance(profile, Profile):
            profile = self._profile = Profile(_profile_data(profile[0]), profile[1])
        return profile

    @property
    def provider_type(self) -> str | None:
        """Deprecated: the type of the first identity (use ``identities``)."""
        warnings.warn(
            "User.provider_type is deprecated; read User.identities instead",
            DeprecationWarning,
            stacklevel=2,
        )
        identities = self.identities
        if identities:
            return identities[0].provider_type
        return self._provider_type

    @property
    def custom_data(self) -> Mapping[str, Any]:
        """The access token's ``user_data`` claim, EJSON-decoded (``{}`` without one).

        Read-only, nested values included (changing it raises ``TypeError``): it is what the
        token says; change it on the server and call :meth:`refresh_custom_data`.
        """
        token = self._access_token
        if token is None:
            return _NO_DATA
        cached = self._custom_data
        if cached is not None and cached[0] == token:
            return cached[1]
        try:
            claim = _jwt.decode_payload(token, what="access token").get("user_data")
        except BadTokenError:
            claim = None
        data: Mapping[str, Any] = _NO_DATA
        if isinstance(claim, dict):
            try:
                data = freeze(_ejson.decode(claim))
            except ValueError:
                data = freeze(claim)  # a bad EJSON wrapper: the claim as plain JSON, not an exception
        self._custom_data = (token, data)
        return data

    # -- streams and listeners ---------------------------------------------------------

    @property
    def state_changes(self) -> Observable[UserState]:
        """The current state on subscribe, then every change."""
        from ._streams import SafeBehaviorSubject, hide

        if self._state_subject is None:
            self._state_subject = SafeBehaviorSubject(self.state)
        return hide(self._state_subject)

    @property
    def connectivity(self) -> Connectivity | None:
        """The sub-state of ``LoggedIn``: online, refreshing, or offline (with the last error and
        the time of the next attempt). None when the user is not logged in."""
        return self._connectivity

    @property
    def connectivity_changes(self) -> Observable[Connectivity | None]:
        """The connectivity on subscribe, then every change (None once the user is not logged in)."""
        from ._streams import SafeBehaviorSubject, hide

        if self._connectivity_subject is None:
            self._connectivity_subject = SafeBehaviorSubject(self._connectivity)
        return hide(self._connectivity_subject)

    @property
    def events(self) -> Observable[UserEvent]:
        """Every :class:`UserEvent` of this user, as it happens."""
        from ._streams import SafeSubject, hide

        if self._events is None:
            self._events = SafeSubject()
        return hide(self._events)

    def add_listener(self, callback: Callable[[UserEvent], Any] | Callable[[], Any]) -> None:
        """Call ``callback(event)`` — or ``callback()``, if it takes no argument — for every
        event of this user. A callback of any other shape raises ``TypeError`` here."""
        from ._streams import listener

        observer = listener(callback)
        if self._listeners is None:
            self._listeners = {}
        if callback not in self._listeners:
            self._listeners[callback] = self.events.subscribe(on_next=observer)

    def remove_listener(self, callback: Callable[[UserEvent], Any] | Callable[[], Any]) -> None:
        if self._listeners and callback in self._listeners:
            self._listeners.pop(callback).dispose()

    def remove_all_listeners(self) -> None:
        for disposable in (self._listeners or {}).values():
            disposable.dispose()
        self._listeners = None

    def _publish(self, event: UserEvent | None, state_before: UserState) -> None:
        if self._state_subject is not None and self.state is not state_before:
            self._state_subject.on_next(self.state)
        self._publish_connectivity()
        if event is not None and self._events is not None:
            self._events.on_next(event)

    def _set_connectivity(self, trigger: str, value: Connectivity) -> None:
        """Run a connectivity trigger (the tracker decided it) and publish the new value."""
        fire_connectivity(self, trigger)
        self._connectivity = value
        self._publish_connectivity()

    def _publish_connectivity(self) -> None:
        subject = self._connectivity_subject
        if subject is not None and subject.value != self._connectivity:
            subject.on_next(self._connectivity)

    # -- operations (all I/O goes through the App's request pipeline) -----------------

    async def log_out(self) -> None:
        """Log out. Local tokens are gone even if the server cannot be told (then it raises)."""
        await self._app.log_out(self)

    async def call_function(self, name: str, *args: Any, timeout: float | None = None) -> Any:
        """Call the backend function ``name`` with ``args``; return its EJSON-decoded result."""
        return await self._app._pipeline.call_function(self, name, args, timeout=timeout)

    @property
    def functions(self) -> Functions:
        """``await user.functions.sum(1, 2)`` calls the backend function ``sum``."""
        return Functions(self)

    @property
    def api_keys(self) -> ApiKeys:
        """The user's API keys: ``await user.api_keys.create("ci")``."""
        from ._api_keys import ApiKeys

        return ApiKeys(self)

    def mongo_client(self, service_name: str, *, retry_reads: bool = False) -> MongoClient:
        """The remote MongoDB service ``service_name`` (e.g. ``"mongodb-atlas"``) as this user.

        ``retry_reads=True`` declares its reads safe to repeat (the App's ``RetryPolicy``
        applies to them); writes are never retried."""
        from ._mongo import MongoClient

        return MongoClient(self, service_name, retry_reads=retry_reads)

    async def wait_for(self, state: UserState, *, timeout: float | None = None) -> None:
        """Return once the user is in ``state`` (at once if it already is)."""
        if self.state is state:
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def settle() -> None:
            if not done.done():
                done.set_result(None)

        def check(current: UserState) -> None:
            # The change may be published on another thread (an App driven from a worker loop).
            if current is state:
                loop.call_soon_threadsafe(settle)

        subscription = self.state_changes.subscribe(check)
        try:
            await asyncio.wait_for(done, timeout)
        finally:
            subscription.dispose()

    async def refresh_custom_data(self) -> Mapping[str, Any]:
        """Get a new access token and return the custom data it carries."""
        # CustomDataRefreshed is published even when the data did not change: it was asked for.
        self._announce_custom_data = True
        await self._app._pipeline.refresh_access_token(self)
        return self.custom_data

    async def refresh_access_token(self) -> None:
        """Get a new access token now."""
        await self._app._pipeline.refresh_access_token(self)

    async def link_credentials(self, credentials: Credentials, *, timeout: float | None = None) -> None:
        """Add the identity of ``credentials`` to this user (an anonymous user stops being
        anonymous and survives log-out). Fails, changing nothing, if it belongs to another user."""
        await self._app._link(self, credentials, timeout=timeout)

    async def refresh_profile(self) -> Profile:
        """Fetch the profile and identities again."""
        await self._app._refresh_profile(self)
        return self.profile

    def __repr__(self) -> str:
        return f"<User id={self.id!r} state={self.state.value}>"

    def _expired_soon(self, leeway: float) -> bool:
        """Whether the access token should be refreshed before use.

        The deadline is the token's own lifetime (``exp - iat``) counted on the
        monotonic clock from when it arrived, so a skewed wall clock cannot cause a
        refresh storm; only tokens restored from storage fall back to the wall clock.
        """
        token = self._access_token
        if token is None:
            return False
        if self._access_deadline is None:
            try:
                claims = _jwt.decode_payload(token, what="access token")
            except BadTokenError:
                return False  # the server decides with a 401
            self._access_deadline = time.monotonic() + (claims["exp"] - time.time())
        return time.monotonic() >= self._access_deadline - leeway

    def _set_access_token(self, token: str, claims: Mapping[str, Any]) -> None:
        self._access_token = token
        self._access_deadline = time.monotonic() + max(0, claims["exp"] - claims["iat"])
