"""Kivy ``EventDispatcher`` models mirroring an App and its users as Kivy properties.

Every update is delivered on Kivy's thread (through :class:`KivyClockScheduler`),
whatever thread the App publishes on, so kv rules and ``bind`` callbacks may touch
widgets. The models hold the App and its users weakly and their subscriptions
call back through weak references: a model never keeps an App, a user or a
screen alive, and a screen that goes away calls :meth:`dispose` (or is simply
collected) to end its subscriptions.

Only streams that carry no objects are subscribed (``app.events``, ``user.events``,
``user.state_changes``, the connectivity streams): ``app.users_changes`` and ``app.current_user_changes``
replay the latest users, which their subscription would keep reachable.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

from kivy.event import EventDispatcher
from kivy.properties import (
    BooleanProperty,
    DictProperty,
    ListProperty,
    NumericProperty,
    ObjectProperty,
    StringProperty,
)
from reactivex import Observable, abc
from reactivex import operators as ops

from appusers import App, Connectivity, Credentials, User
from appusers.bindings.kivy._scheduler import KivyClockScheduler
from appusers.errors import AppError, UserNotFoundError

__all__ = ["AppModel", "UserModel"]


def _subscribe_weakly(
    source: Observable[Any], scheduler: KivyClockScheduler, owner: Any, method: Callable[[Any, Any], None]
) -> abc.DisposableBase:
    """Subscribe ``method(owner, value)`` on Kivy's thread without the stream holding ``owner``."""
    ref = weakref.ref(owner)

    def deliver(value: Any) -> None:
        target = ref()
        if target is not None:
            method(target, value)

    return source.pipe(ops.observe_on(scheduler)).subscribe(on_next=deliver)


def _dispose_all(subscriptions: list[abc.DisposableBase]) -> None:
    while subscriptions:
        subscriptions.pop().dispose()


class UserModel(EventDispatcher):  # type: ignore[misc]
    """One user's state as Kivy properties; :meth:`follow` points it at another user (or none).

    All properties are empty/false while it follows no user.
    """

    user_id = StringProperty("")
    state = StringProperty("")
    """The ``UserState`` value: ``"LoggedIn"``, ``"LoggedOut"``, ``"Removed"``, or ``""``."""
    logged_in = BooleanProperty(False)
    name = StringProperty("")
    email = StringProperty("")
    custom_data = DictProperty({})
    connectivity = StringProperty("")
    """The LoggedIn sub-state: ``"online"``, ``"refreshing"``, ``"offline"``, or ``""``."""
    next_attempt = NumericProperty(0)
    """While offline: the epoch time of the next try (0 when none is scheduled)."""
    connectivity_text = StringProperty("")
    """``"offline — retrying in 8 s"`` as of the last change (a screen may tick it down)."""

    def __init__(self, user: User | None = None, *, scheduler: KivyClockScheduler | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._scheduler = scheduler if scheduler is not None else KivyClockScheduler()
        self._user: weakref.ref[User] | None = None
        # Mutated in place, never replaced: the finalizer below disposes what is in it when a
        # model is collected without dispose() (it holds the list, not the model).
        self._subscriptions: list[abc.DisposableBase] = []
        weakref.finalize(self, _dispose_all, self._subscriptions)
        self.follow(user)

    @property
    def user(self) -> User | None:
        """The user followed, if it still exists."""
        return None if self._user is None else self._user()

    def follow(self, user: User | None) -> None:
        """Mirror ``user`` from now on (call on Kivy's thread)."""
        if user is not None and user is self.user:
            self.refresh()
            return
        self._unsubscribe()
        self._user = None if user is None else weakref.ref(user)
        if user is not None:
            self._subscriptions.extend([
                _subscribe_weakly(user.state_changes, self._scheduler, self, UserModel._on_change),
                _subscribe_weakly(user.events, self._scheduler, self, UserModel._on_change),
                _subscribe_weakly(user.connectivity_changes, self._scheduler, self, UserModel._on_change),
            ])
        self.refresh()

    def refresh(self) -> None:
        """Read the user again (Kivy's thread)."""
        user = self.user
        if user is None:
            self.user_id, self.state, self.logged_in = "", "", False
            self.name, self.email, self.custom_data = "", "", {}
            _show_connectivity(self, None)
            return
        profile = user.profile
        self.user_id = user.id
        self.state = user.state.value
        self.logged_in = user.is_logged_in
        self.name = profile.name or ""
        self.email = profile.email or ""
        self.custom_data = dict(user.custom_data)
        _show_connectivity(self, user.connectivity)

    def dispose(self) -> None:
        """End the subscriptions and follow nobody."""
        self._unsubscribe()
        self._user = None
        self.refresh()

    def _on_change(self, _value: Any) -> None:
        if self._subscriptions:  # an action queued before dispose() must not revive the fields
            self.refresh()

    def _unsubscribe(self) -> None:
        _dispose_all(self._subscriptions)


class AppModel(EventDispatcher):  # type: ignore[misc]
    """An App's users as Kivy properties, plus the actions a screen needs.

    ``current_user`` is a :class:`UserModel` that always follows the current user
    (it is the same object throughout, so kv can bind to ``model.current_user.name``).
    ``users`` is a list of dicts (``user_id``, ``state``, ``name``, ``email``,
    ``current``), ready to be a ``RecycleView``'s ``data``.

    ``connectivity`` (with ``next_attempt`` and ``connectivity_text``) is the App's
    aggregate: ``"online"``, ``"refreshing"`` or ``"offline"``.

    The actions (:meth:`log_in`, :meth:`log_out`, :meth:`refresh_profile`, :meth:`remove_user`) start a
    task on the running asyncio loop (Kivy's, with ``App.async_run``) and return it;
    while one runs ``busy`` is true, and a failure is shown in ``error``.
    """

    current_user_id = StringProperty("")
    logged_in = BooleanProperty(False)
    users = ListProperty([])
    current_user = ObjectProperty(None, rebind=True)
    busy = BooleanProperty(False)
    error = StringProperty("")
    connectivity = StringProperty("")
    """The App's aggregate connectivity: ``"online"``, ``"refreshing"`` or ``"offline"``."""
    next_attempt = NumericProperty(0)
    connectivity_text = StringProperty("")

    def __init__(self, app: App, *, scheduler: KivyClockScheduler | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._scheduler = scheduler if scheduler is not None else KivyClockScheduler()
        self._app: weakref.ref[App] = weakref.ref(app)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.current_user = UserModel(scheduler=self._scheduler)
        self._subscription: abc.DisposableBase | None = _subscribe_weakly(
            app.events, self._scheduler, self, AppModel._on_app_event
        )
        self._connectivity_subscription: abc.DisposableBase | None = _subscribe_weakly(
            app.connectivity_changes, self._scheduler, self, AppModel._on_connectivity
        )
        weakref.finalize(self, self._subscription.dispose)  # collected without dispose()
        weakref.finalize(self, self._connectivity_subscription.dispose)
        self.refresh()

    @property
    def app(self) -> App | None:
        """The App mirrored, if it still exists."""
        return self._app()

    def refresh(self) -> None:
        """Read the App again (Kivy's thread)."""
        app = self.app
        current = None if app is None or self._subscription is None else app.current_user
        users = [] if app is None or self._subscription is None else list(app.all_users.values())
        self.current_user.follow(current)
        self.current_user_id = "" if current is None else current.id
        self.logged_in = current is not None
        self.users = [
            {
                "user_id": user.id,
                "state": user.state.value,
                "name": user.profile.name or "",
                "email": user.profile.email or "",
                "current": user is current,
            }
            for user in users
        ]

    # -- actions -------------------------------------------------------------------------

    def log_in(self, credentials: Credentials) -> asyncio.Task[Any]:
        """Log in (the user becomes current)."""
        return self._run(lambda app: app.log_in(credentials))

    def log_out(self, user_id: str | None = None) -> asyncio.Task[Any]:
        """Log out ``user_id`` (default: the current user)."""
        return self._run(lambda app: app.log_out(self._find(app, user_id)))

    def refresh_profile(self, user_id: str | None = None) -> asyncio.Task[Any]:
        """Fetch the profile of ``user_id`` (default: the current user) again."""

        async def refresh(app: App) -> Any:
            user = self._find(app, user_id) if user_id is not None else app.current_user
            if user is None:
                raise UserNotFoundError("nobody is logged in")
            return await user.refresh_profile()

        return self._run(refresh)

    def remove_user(self, user_id: str) -> asyncio.Task[Any]:
        """Forget ``user_id`` on this device."""
        return self._run(lambda app: app.remove_user(self._require(app, user_id)))

    def switch_user(self, user_id: str) -> None:
        """Make ``user_id`` (logged in) current; a failure goes to ``error``."""
        app = self.app
        if app is None:
            self.error = "the App is gone"
            return
        try:
            app.switch_user(self._require(app, user_id))
        except Exception as exc:
            self.error = _describe(exc)
        else:
            self.error = ""

    def dispose(self) -> None:
        """End every subscription (a screen going away calls this) and cancel running actions."""
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.dispose()
        connectivity, self._connectivity_subscription = self._connectivity_subscription, None
        if connectivity is not None:
            connectivity.dispose()
        self.current_user.dispose()
        for task in list(self._tasks):
            task.cancel()
        self.refresh()

    # -- internals -------------------------------------------------------------------------

    def _on_connectivity(self, value: Connectivity) -> None:
        if self._connectivity_subscription is not None:
            _show_connectivity(self, value)

    def _on_app_event(self, _event: Any) -> None:
        if self._subscription is not None:
            self.refresh()

    @staticmethod
    def _find(app: App, user_id: str | None) -> User | None:
        return None if user_id is None else AppModel._require(app, user_id)

    @staticmethod
    def _require(app: App, user_id: str) -> User:
        user = app.all_users.get(user_id)
        if user is None:
            raise UserNotFoundError(f"no user {user_id} on this device")
        return user

    def _run(self, action: Callable[[App], Coroutine[Any, Any, Any]]) -> asyncio.Task[Any]:
        app = self.app

        async def run() -> Any:
            if app is None:
                raise RuntimeError("the App is gone")
            self.busy, self.error = True, ""
            try:
                return await action(app)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.error = _describe(exc)
                return None
            finally:
                self.busy = bool(self._tasks - {asyncio.current_task()})

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _show_connectivity(model: Any, value: Connectivity | None) -> None:
    model.connectivity = "" if value is None else value.state.value
    model.next_attempt = 0 if value is None or value.next_attempt is None else value.next_attempt
    model.connectivity_text = "" if value is None else value.describe()


def _describe(exc: BaseException) -> str:
    # SDK messages never carry tokens or passwords; the type alone for anything else.
    return str(exc) if isinstance(exc, AppError) else type(exc).__name__
