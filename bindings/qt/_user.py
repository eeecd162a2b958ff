"""``QtUser``: one user as a ``QObject`` with Qt properties and notify signals (widgets and QML)."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

import shiboken6
from PySide6.QtCore import Property, QObject, Signal, Slot
from reactivex.disposable import CompositeDisposable

from appusers import User, UserState

from ._snapshot import UserSnapshot

if TYPE_CHECKING:
    from ._app import QtApp

__all__ = ["QtUser"]


class QtUser(QObject):
    """A :class:`~appusers.User` seen from the GUI thread.

    Properties (each with a ``...Changed`` notify signal): ``userId`` (constant),
    ``state`` (``"LoggedIn"``, ``"LoggedOut"``, ``"Removed"``), ``isLoggedIn``,
    ``name``, ``email``, ``pictureUrl``, ``profile`` and ``customData`` (maps) and
    ``identities`` (a list of ``{"id", "providerType"}`` maps), ``connectivity`` (the
    LoggedIn sub-state: ``"online"``, ``"refreshing"``, ``"offline"``; ``""`` when not logged
    in) with ``nextAttempt`` (epoch seconds of the next try while offline, else 0) and
    ``connectivityText`` (``"offline — retrying in 8 s"``, as of the last change). Slots: :meth:`logOut`,
    :meth:`remove`, :meth:`refreshCustomData`, :meth:`refreshProfile`.

    It holds its ``User`` weakly: :meth:`user` returns None once the App dropped it.
    Made by :class:`QtApp` (one per user id); its values follow the user's streams,
    delivered on the GUI thread.
    """

    stateChanged = Signal(str)
    loggedInChanged = Signal(bool)
    profileChanged = Signal()
    customDataChanged = Signal()
    identitiesChanged = Signal()
    connectivityChanged = Signal(str)

    def __init__(self, owner: QtApp, snapshot: UserSnapshot) -> None:
        super().__init__(owner)  # the QtApp owns it: it dies with the QtApp
        self._owner = weakref.ref(owner)
        self._snapshot = snapshot
        self._subscriptions = CompositeDisposable()
        subscriptions = self._subscriptions
        self.destroyed.connect(lambda *_: subscriptions.dispose())
        try:
            owner.core.call_soon(self._subscribe_on_core, weakref.ref(self), snapshot.ref, owner.scheduler)
        except RuntimeError:
            pass  # the core loop is stopped (shutting down): the object shows its last snapshot

    def __repr__(self) -> str:
        return f"<QtUser id={self._snapshot.user_id!r} state={self._snapshot.state.value}>"

    # -- wiring (core thread) ---------------------------------------------------------

    @staticmethod
    def _subscribe_on_core(this: weakref.ref[QtUser], user_ref: weakref.ref[User], scheduler: Any) -> None:
        """Runs on the core thread, where the user's subjects are created and fed."""
        user = user_ref()
        me = this()
        if user is None or me is None or not shiboken6.isValid(me):
            return

        def push(_: object) -> None:
            # On the emitting thread: take the snapshot there, hand only it to the GUI.
            current = user_ref()
            if current is None:
                return
            snapshot = UserSnapshot.of(current)

            def apply() -> None:
                target = this()
                if target is not None and shiboken6.isValid(target):
                    target._apply(snapshot)

            scheduler.post(apply)

        subscriptions = me._subscriptions
        # A BehaviorSubject replays at once, which also catches up on changes made
        # between the QtUser's creation and this subscription.
        subscriptions.add(user.state_changes.subscribe(on_next=push))
        subscriptions.add(user.events.subscribe(on_next=push))
        subscriptions.add(user.connectivity_changes.subscribe(on_next=push))

    # -- updates (GUI thread) --------------------------------------------------------

    def _apply(self, snapshot: UserSnapshot) -> None:
        old, self._snapshot = self._snapshot, snapshot
        if old.state is not snapshot.state:
            self.stateChanged.emit(snapshot.state.value)
            if (old.state is UserState.LOGGED_IN) is not (snapshot.state is UserState.LOGGED_IN):
                self.loggedInChanged.emit(snapshot.state is UserState.LOGGED_IN)
        if old.profile != snapshot.profile:
            self.profileChanged.emit()
        if old.custom_data != snapshot.custom_data:
            self.customDataChanged.emit()
        if old.identities != snapshot.identities:
            self.identitiesChanged.emit()
        if old.connectivity != snapshot.connectivity:
            self.connectivityChanged.emit(self._connectivity())

    # -- Python API --------------------------------------------------------------------

    def user(self) -> User | None:
        """The ``User``, if the App still has it."""
        return self._snapshot.ref()

    @property
    def snapshot(self) -> UserSnapshot:
        """The values currently shown."""
        return self._snapshot

    def _run(self, name: str, method: str) -> None:
        owner = self._owner()
        if owner is None or not shiboken6.isValid(owner):
            return
        user_ref = self._snapshot.ref

        async def call(_app: Any) -> None:
            user = user_ref()
            if user is None:
                return
            await getattr(user, method)()

        owner.run(name, call)

    # -- slots -------------------------------------------------------------------------

    @Slot()
    def logOut(self) -> None:
        """Log this user out (in the background; errors go to ``QtApp.errorOccurred``)."""
        self._run("logOut", "log_out")

    @Slot()
    def refreshCustomData(self) -> None:
        """Fetch a new access token and with it new custom data."""
        self._run("refreshCustomData", "refresh_custom_data")

    @Slot()
    def refreshProfile(self) -> None:
        """Fetch the profile again."""
        self._run("refreshProfile", "refresh_profile")

    @Slot()
    def remove(self) -> None:
        """Forget this user on this device."""
        owner = self._owner()
        if owner is not None and shiboken6.isValid(owner):
            owner.removeUser(self._snapshot.user_id)

    # -- Qt properties -------------------------------------------------------------------

    def _user_id(self) -> str:
        return self._snapshot.user_id

    def _state(self) -> str:
        return str(self._snapshot.state.value)

    def _is_logged_in(self) -> bool:
        return self._snapshot.state is UserState.LOGGED_IN

    def _name(self) -> str:
        return self._snapshot.profile.name or ""

    def _email(self) -> str:
        return self._snapshot.profile.email or ""

    def _picture_url(self) -> str:
        return self._snapshot.profile.picture_url or ""

    def _profile(self) -> dict[str, Any]:
        from ._snapshot import plain

        return dict(plain(self._snapshot.profile.data))

    def _custom_data(self) -> dict[str, Any]:
        return dict(self._snapshot.custom_data)

    def _identities(self) -> list[dict[str, str]]:
        return [{"id": i, "providerType": p} for i, p in self._snapshot.identities]

    def _connectivity(self) -> str:
        value = self._snapshot.connectivity
        return "" if value is None else value.state.value

    def _next_attempt(self) -> float:
        value = self._snapshot.connectivity
        return 0.0 if value is None or value.next_attempt is None else value.next_attempt

    def _connectivity_text(self) -> str:
        value = self._snapshot.connectivity
        return "" if value is None else value.describe()

    userId = Property(str, _user_id, constant=True)
    state = Property(str, _state, notify=stateChanged)
    isLoggedIn = Property(bool, _is_logged_in, notify=loggedInChanged)
    name = Property(str, _name, notify=profileChanged)
    email = Property(str, _email, notify=profileChanged)
    pictureUrl = Property(str, _picture_url, notify=profileChanged)
    # Qt type names as strings are how PySide declares QVariantMap/List; its stubs only know types.
    profile = Property("QVariantMap", _profile, notify=profileChanged)  # type: ignore[arg-type]
    customData = Property("QVariantMap", _custom_data, notify=customDataChanged)  # type: ignore[arg-type]
    identities = Property("QVariantList", _identities, notify=identitiesChanged)  # type: ignore[arg-type]
    connectivity = Property(str, _connectivity, notify=connectivityChanged)
    nextAttempt = Property(float, _next_attempt, notify=connectivityChanged)
    connectivityText = Property(str, _connectivity_text, notify=connectivityChanged)

