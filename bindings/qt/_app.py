"""``QtApp``: an :class:`~appusers.App` as a ``QObject`` for widgets and QML.

The App lives on a :class:`CoreLoop` thread. ``QtApp`` lives on the GUI thread and
never blocks it: slots post coroutines to the core loop and return at once; results,
errors and stream values come back as queued calls through :class:`GuiScheduler`,
each turned into a snapshot on the thread that produced it.
"""

from __future__ import annotations

import concurrent.futures
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import shiboken6
from PySide6.QtCore import Property, QObject, Signal, Slot
from reactivex.disposable import CompositeDisposable

from appusers import App, Connectivity, Credentials, Profile, User, UserState
from appusers.errors import AppError

from ._loop import CoreLoop
from ._model import UsersModel
from ._scheduler import GuiScheduler
from ._snapshot import Row, UserSnapshot
from ._user import QtUser

__all__ = ["QtApp"]

_T = TypeVar("_T")
_log = logging.getLogger("appusers.bindings.qt")


def _message(exc: BaseException) -> str:
    # appusers errors never carry secrets; anything else might quote its input, so only its type.
    return str(exc) if isinstance(exc, AppError) else type(exc).__name__


class QtApp(QObject):
    """The users of an App, for the GUI thread.

    ::

        core = CoreLoop()
        app = App("my-app", base_url="http://127.0.0.1:9090")
        qt_app = QtApp(app, core)           # opens the App on the core loop
        qt_app.logInEmailPassword("ana@example.com", "s3cret")
        ...                                 # QApplication.exec()
        core.stop(app.aclose())

    Properties (with notify signals): ``isLoggedIn``, ``state`` (the current user's,
    ``"LoggedOut"`` without one), ``currentUserId``, ``currentUser`` (a
    :class:`QtUser` or None), ``users`` (a :class:`UsersModel`), ``busy`` (an
    operation is running), ``lastError`` and the App's aggregate ``connectivity``
    (``"online"``, ``"refreshing"``, ``"offline"``) with ``nextAttempt`` and
    ``connectivityText``. Slots: ``logInEmailPassword``,
    ``logInAnonymous``, ``logInApiKey``, ``logOut``, ``switchUser``, ``removeUser``.
    Failures are reported by ``errorOccurred(operation, message)``.

    ``QtApp`` holds the App weakly: keep your own reference (and close it).
    """

    currentUserChanged = Signal()
    loggedInChanged = Signal(bool)
    stateChanged = Signal(str)
    busyChanged = Signal(bool)
    lastErrorChanged = Signal(str)
    errorOccurred = Signal(str, str)
    operationFinished = Signal(str)
    connectivityChanged = Signal(str)

    def __init__(
        self,
        app: App,
        core: CoreLoop,
        *,
        scheduler: GuiScheduler | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._app_ref = weakref.ref(app)
        self._core = core
        self._scheduler = scheduler or GuiScheduler.instance()
        self._model = UsersModel(self)
        self._users: dict[str, QtUser] = {}
        self._current: UserSnapshot | None = None
        self._busy = 0
        self._last_error = ""
        self._connectivity: Connectivity | None = None
        self._subscriptions = CompositeDisposable()
        subscriptions = self._subscriptions
        # Captures the disposables only: the QtApp may already be half gone when this runs.
        self.destroyed.connect(lambda *_: subscriptions.dispose())
        self.run("open", lambda a: self._attach(a, weakref.ref(self)))

    def __repr__(self) -> str:
        return f"<QtApp current={self.currentUserId!r} users={self._model.rowCount()}>"

    # -- accessors ---------------------------------------------------------------------

    @property
    def core(self) -> CoreLoop:
        return self._core

    @property
    def scheduler(self) -> GuiScheduler:
        return self._scheduler

    def app(self) -> App | None:
        """The App, unless it was garbage-collected."""
        return self._app_ref()

    @Slot(str, result=QObject)
    def user(self, user_id: str) -> QtUser | None:
        """The :class:`QtUser` of ``user_id`` (made on first request), or None if unknown."""
        existing = self._users.get(user_id)
        if existing is not None and shiboken6.isValid(existing):
            return existing
        if self._current is not None and self._current.user_id == user_id:
            return self._user_for(self._current)
        for row in self._model.rows:
            if row.user_id == user_id:
                # A first picture from the row; the user's stream replays the full one at once.
                shown = {key: value for key, value in (("name", row.name), ("email", row.email)) if value}
                snapshot = UserSnapshot(row.user_id, row.state, Profile(shown), {}, (), row.ref)
                return self._user_for(snapshot)
        return None

    # -- running operations -------------------------------------------------------------

    def run(
        self,
        name: str,
        operation: Callable[[App], Awaitable[_T]],
        on_done: Callable[[_T], Any] | None = None,
    ) -> concurrent.futures.Future[_T] | None:
        """Run ``await operation(app)`` on the core loop without blocking.

        ``on_done(result)`` is then called on the GUI thread; a failure sets
        ``lastError`` and emits ``errorOccurred(name, message)``. ``busy`` is true
        meanwhile. Returns the ``concurrent.futures.Future`` (None if the App is gone).
        """
        app = self._app_ref()
        if app is None:
            self._fail(name, "the App is gone")
            return None

        async def call(target: App) -> _T:
            return await operation(target)

        try:
            future = self._core.submit(call(app))  # holds the App only while it runs
        except RuntimeError:
            self._fail(name, "the core loop is stopped")
            return None
        del app
        self._set_busy(+1)
        this = weakref.ref(self)
        scheduler = self._scheduler

        def finished(done: concurrent.futures.Future[_T]) -> None:
            # Core thread: hop to the GUI thread before touching anything Qt.
            def report() -> None:
                me = this()
                if me is None or not shiboken6.isValid(me):
                    return
                me._set_busy(-1)
                if done.cancelled():
                    me._fail(name, "cancelled")
                    return
                error = done.exception()
                if error is not None:
                    if not isinstance(error, AppError):
                        _log.error("%s failed", name, exc_info=error)
                    me._fail(name, _message(error))
                    return
                if on_done is not None:
                    on_done(done.result())
                me.operationFinished.emit(name)

            scheduler.post(report)

        future.add_done_callback(finished)
        return future

    def _fail(self, name: str, message: str) -> None:
        self._last_error = message
        self.lastErrorChanged.emit(message)
        self.errorOccurred.emit(name, message)

    def _set_busy(self, delta: int) -> None:
        was = self._busy > 0
        self._busy += delta
        if (self._busy > 0) is not was:
            self.busyChanged.emit(self._busy > 0)

    # -- wiring (core thread) -------------------------------------------------------------

    @staticmethod
    async def _attach(app: App, this: weakref.ref[QtApp]) -> None:
        """Open the App and subscribe to its streams, on the core thread."""
        await app.open()
        me = this()
        if me is None or not shiboken6.isValid(me):
            return
        scheduler = me._scheduler
        subscriptions = me._subscriptions
        del me  # the subscriptions below must not keep the QtApp alive

        def post(method: str, value: Any) -> None:
            def apply() -> None:
                target = this()
                if target is not None and shiboken6.isValid(target):
                    getattr(target, method)(value)

            scheduler.post(apply)

        def on_current(user: User | None) -> None:
            post("_apply_current", None if user is None else UserSnapshot.of(user))

        def on_users(users: tuple[User, ...]) -> None:
            post("_apply_rows", tuple(Row.of(u) for u in users))

        # Row order: users first, so the current user's row exists when it is marked current.
        subscriptions.add(app.users_changes.subscribe(on_next=on_users))
        subscriptions.add(app.current_user_changes.subscribe(on_next=on_current))
        subscriptions.add(app.connectivity_changes.subscribe(
            on_next=lambda value: post("_apply_connectivity", value)))

    # -- updates (GUI thread) ---------------------------------------------------------------

    def _apply_rows(self, rows: tuple[Row, ...]) -> None:
        self._model._set_rows(rows)
        known = {row.user_id for row in rows}
        for user_id in list(self._users):
            if user_id not in known:
                # Removed from the App: keep the object (QML may still hold it), stop tracking it.
                del self._users[user_id]

    def _apply_current(self, snapshot: UserSnapshot | None) -> None:
        old = self._current
        self._current = snapshot
        if snapshot is not None:
            qt_user = self._user_for(snapshot)
            qt_user._apply(snapshot)
        self._model._set_current(None if snapshot is None else snapshot.user_id)
        old_id = None if old is None else old.user_id
        new_id = None if snapshot is None else snapshot.user_id
        if old_id != new_id:
            self.currentUserChanged.emit()
        was_in = old is not None and old.state is UserState.LOGGED_IN
        is_in = snapshot is not None and snapshot.state is UserState.LOGGED_IN
        if was_in is not is_in:
            self.loggedInChanged.emit(is_in)
        if self._state_of(old) != self._state_of(snapshot):
            self.stateChanged.emit(self._state_of(snapshot))

    def _apply_connectivity(self, value: Connectivity) -> None:
        if value != self._connectivity:
            self._connectivity = value
            self.connectivityChanged.emit(value.state.value)

    @staticmethod
    def _state_of(snapshot: UserSnapshot | None) -> str:
        return str(UserState.LOGGED_OUT.value if snapshot is None else snapshot.state.value)

    def _user_for(self, snapshot: UserSnapshot) -> QtUser:
        qt_user = self._users.get(snapshot.user_id)
        if qt_user is None or not shiboken6.isValid(qt_user):
            qt_user = self._users[snapshot.user_id] = QtUser(self, snapshot)
        return qt_user

    # -- slots ------------------------------------------------------------------------------

    @Slot(str, str)
    def logInEmailPassword(self, email: str, password: str) -> None:
        """Log in with email and password (in the background)."""
        try:
            credentials = Credentials.email_password(email, password)
        except AppError as exc:
            self._fail("logIn", _message(exc))
            return
        self.run("logIn", lambda app: app.log_in(credentials))

    @Slot()
    def logInAnonymous(self) -> None:
        """Log in anonymously (reusing a logged-in anonymous user)."""
        self.run("logIn", lambda app: app.log_in(Credentials.anonymous()))

    @Slot(str)
    def logInApiKey(self, key: str) -> None:
        """Log in with a user API key."""
        try:
            credentials = Credentials.api_key(key)
        except AppError as exc:
            self._fail("logIn", _message(exc))
            return
        self.run("logIn", lambda app: app.log_in(credentials))

    @Slot()
    def logOut(self) -> None:
        """Log the current user out."""
        self.run("logOut", lambda app: app.log_out())

    @Slot(str)
    def switchUser(self, user_id: str) -> None:
        """Make the logged-in user ``user_id`` current."""

        async def switch(app: App) -> None:
            user = app.all_users.get(user_id)
            if user is None:
                from appusers.errors import UserNotFoundError

                raise UserNotFoundError("User does not exist")
            app.switch_user(user)

        self.run("switchUser", switch)

    @Slot(str)
    def removeUser(self, user_id: str) -> None:
        """Forget ``user_id`` on this device (logging it out first)."""

        async def remove(app: App) -> None:
            user = app.all_users.get(user_id)
            if user is not None:
                await app.remove_user(user)

        self.run("removeUser", remove)

    # -- Qt properties ------------------------------------------------------------------------

    def _is_logged_in(self) -> bool:
        return self._current is not None and self._current.state is UserState.LOGGED_IN

    def _state(self) -> str:
        return self._state_of(self._current)

    def _current_user_id(self) -> str:
        return "" if self._current is None else self._current.user_id

    def _current_user(self) -> QObject | None:
        return None if self._current is None else self._user_for(self._current)

    def _users_model(self) -> QObject:
        return self._model

    def _is_busy(self) -> bool:
        return self._busy > 0

    def _get_last_error(self) -> str:
        return self._last_error

    def _connectivity_state(self) -> str:
        return "" if self._connectivity is None else self._connectivity.state.value

    def _next_attempt(self) -> float:
        value = self._connectivity
        return 0.0 if value is None or value.next_attempt is None else value.next_attempt

    def _connectivity_text(self) -> str:
        return "" if self._connectivity is None else self._connectivity.describe()

    isLoggedIn = Property(bool, _is_logged_in, notify=loggedInChanged)
    state = Property(str, _state, notify=stateChanged)
    currentUserId = Property(str, _current_user_id, notify=currentUserChanged)
    currentUser = Property(QObject, _current_user, notify=currentUserChanged)
    users = Property(QObject, _users_model, constant=True)
    busy = Property(bool, _is_busy, notify=busyChanged)
    lastError = Property(str, _get_last_error, notify=lastErrorChanged)
    connectivity = Property(str, _connectivity_state, notify=connectivityChanged)
    nextAttempt = Property(float, _next_attempt, notify=connectivityChanged)
    connectivityText = Property(str, _connectivity_text, notify=connectivityChanged)
