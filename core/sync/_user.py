"""The blocking ``User``: one user of a :class:`appusers.sync.App`, its calls and streams."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from reactivex import Observable

import appusers

from .._credentials import Credentials
from .._events import UserEvent
from .._models import Identity, Profile, Tokens, UserState
from ._mongo import MongoClient
from ._runner import Runner, same
from ._services import ApiKeys, Functions

if TYPE_CHECKING:
    from ._app import App

__all__ = ["User"]


class User:
    """A user of a :class:`appusers.sync.App`: the :class:`appusers.User` API, blocking.

    There is one ``User`` object per user id per App (as with the async App). Reads
    are taken on the App's loop thread, so they are consistent whatever thread asks;
    ``state_changes`` and ``events`` deliver on that thread.
    """

    __slots__ = ("__weakref__", "_app", "_runner", "_user")

    def __init__(self, app: App, runner: Runner, user: appusers.User) -> None:
        self._app = app
        self._runner = runner
        self._user = user

    def __repr__(self) -> str:
        return repr(self._user)

    @property
    def core(self) -> appusers.User:
        """The async :class:`appusers.User` behind this one (use it on the App's loop thread only)."""
        return self._user

    @property
    def app(self) -> App:
        return self._app

    # -- read-only view ------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._user.id

    @property
    def state(self) -> UserState:
        return self._user.state

    @property
    def is_logged_in(self) -> bool:
        return self._user.state is UserState.LOGGED_IN

    def is_anonymous(self) -> bool:
        return self._runner.call(self._user.is_anonymous)

    @property
    def device_id(self) -> str | None:
        return self._user.device_id

    @property
    def last_used(self) -> float:
        return self._user.last_used

    @property
    def access_token(self) -> str | None:
        return self._user.access_token

    @property
    def refresh_token(self) -> str | None:
        return self._user.refresh_token

    @property
    def tokens(self) -> Tokens | None:
        return self._runner.call(lambda: self._user.tokens)

    @property
    def identities(self) -> tuple[Identity, ...]:
        return self._runner.call(lambda: self._user.identities)

    @property
    def profile(self) -> Profile:
        return self._runner.call(lambda: self._user.profile)

    @property
    def custom_data(self) -> Mapping[str, Any]:
        """The access token's ``user_data`` claim (read-only); see :meth:`refresh_custom_data`."""
        return self._runner.call(lambda: self._user.custom_data)

    # -- streams and listeners -------------------------------------------------------------

    @property
    def state_changes(self) -> Observable[UserState]:
        """The current state on subscribe, then every change (delivered on the loop thread)."""
        return self._runner.observe(lambda: self._user.state_changes, same)

    @property
    def events(self) -> Observable[UserEvent]:
        """Every :class:`appusers.UserEvent` of this user (delivered on the loop thread)."""
        return self._runner.observe(lambda: self._user.events, same)

    def add_listener(self, callback: Callable[[UserEvent], Any] | Callable[[], Any]) -> None:
        """Call ``callback(event)`` (or ``callback()``) on the loop thread for every event."""
        self._runner.call(self._user.add_listener, callback)

    def remove_listener(self, callback: Callable[[UserEvent], Any] | Callable[[], Any]) -> None:
        self._runner.call(self._user.remove_listener, callback)

    def remove_all_listeners(self) -> None:
        self._runner.call(self._user.remove_all_listeners)

    # -- operations ----------------------------------------------------------------------

    def log_out(self) -> None:
        """Log out. Local tokens are gone even if the server cannot be told (then it raises)."""
        self._runner.run(self._user.log_out())

    def call_function(self, name: str, *args: Any, timeout: float | None = None) -> Any:
        """Call the backend function ``name`` with ``args``; return its EJSON-decoded result."""
        return self._runner.run(self._user.call_function(name, *args, timeout=timeout))

    @property
    def functions(self) -> Functions:
        """``user.functions.sum(1, 2)`` calls the backend function ``sum``."""
        return Functions(self._runner, self._user.functions)

    @property
    def api_keys(self) -> ApiKeys:
        """The user's API keys: ``user.api_keys.create("ci")``."""
        return ApiKeys(self._runner, self._user.api_keys)

    def mongo_client(self, service_name: str) -> MongoClient:
        """The remote MongoDB service ``service_name`` (e.g. ``"mongodb-atlas"``) as this user."""
        return MongoClient(self._runner, self, self._user.mongo_client(service_name))

    def wait_for(self, state: UserState, *, timeout: float | None = None) -> None:
        """Return once the user is in ``state`` (at once if it already is); ``TimeoutError`` after
        ``timeout`` seconds."""
        self._runner.run(self._user.wait_for(state, timeout=timeout))

    def refresh_custom_data(self) -> Mapping[str, Any]:
        """Get a new access token and return the custom data it carries."""
        return self._runner.run(self._user.refresh_custom_data())

    def refresh_access_token(self) -> None:
        """Get a new access token now."""
        self._runner.run(self._user.refresh_access_token())

    def link_credentials(self, credentials: Credentials, *, timeout: float | None = None) -> None:
        """Add the identity of ``credentials`` to this user (see :meth:`appusers.User.link_credentials`)."""
        self._runner.run(self._user.link_credentials(credentials, timeout=timeout))

    def refresh_profile(self) -> Profile:
        """Fetch the profile and identities again."""
        return self._runner.run(self._user.refresh_profile())
