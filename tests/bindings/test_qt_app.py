"""QtApp, QtUser and UsersModel against a real local server, the App on a core loop thread.

Every notify signal and model change is recorded with the thread it ran on; the App
emits on its core thread (a worker), and every Qt slot must still run on the GUI thread.
"""

from __future__ import annotations

import gc
import logging
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
import shiboken6
from PySide6.QtCore import QByteArray, QObject, Qt
from PySide6.QtQml import QQmlComponent, QQmlEngine

from appusers import App, Credentials
from appusers.bindings.qt import CoreLoop, QtApp, UsersModel
from appusers.server import LocalServer
from appusers.testing import ServerThread

from ._qt_helpers import GUI_THREAD, register_confirmed

pytestmark = pytest.mark.usefixtures("qapp")
PASSWORD = "s3cret-pass"


@pytest.fixture
def core() -> Iterator[CoreLoop]:
    loop = CoreLoop()
    yield loop
    loop.stop()


@pytest.fixture
def live_server(appusers_server_thread: ServerThread) -> LocalServer:
    """A LocalServer running on its own thread's asyncio loop (appusers.testing's)."""
    return appusers_server_thread.server


class Recorder:
    """Connects to signals and keeps (name, args, thread id) for each emission."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], int | None]] = []

    def watch(self, name: str, signal: Any) -> None:
        signal.connect(lambda *args: self.calls.append((name, args, threading.get_ident())))

    def names(self) -> list[str]:
        return [name for name, _, _ in self.calls]

    def threads(self) -> set[int | None]:
        return {thread for _, _, thread in self.calls}


@pytest.fixture
def app(core: CoreLoop, live_server: LocalServer) -> Iterator[App]:
    app = App(live_server.app_id, base_url=live_server.url)
    yield app
    core.submit(app.aclose()).result(10)


def make_user(core: CoreLoop, app: App, server: LocalServer, email: str) -> None:
    core.submit(register_confirmed(app, server, email, PASSWORD)).result(10)


def test_slots_run_on_the_gui_thread_while_the_app_emits_on_its_core_thread(
    qtbot: Any, core: CoreLoop, app: App, live_server: LocalServer
) -> None:
    make_user(core, app, live_server, "ana@example.com")
    qt_app = QtApp(app, core)
    rec = Recorder()
    for name in ("loggedInChanged", "stateChanged", "currentUserChanged", "busyChanged"):
        rec.watch(name, getattr(qt_app, name))
    model = qt_app.users
    assert isinstance(model, UsersModel)
    rec.watch("modelReset", model.modelReset)
    rec.watch("dataChanged", model.dataChanged)

    qt_app.logInEmailPassword("ana@example.com", PASSWORD)
    qtbot.waitUntil(lambda: qt_app.isLoggedIn, timeout=10000)
    qtbot.waitUntil(lambda: not qt_app.busy, timeout=5000)
    user = qt_app.currentUser
    assert user is not None
    assert qt_app.state == "LoggedIn"
    assert user.email == "ana@example.com"
    assert user.isLoggedIn and user.state == "LoggedIn"
    assert qt_app.currentUserId == user.userId
    assert model.rowCount() == 1
    index = model.index(0)
    assert model.data(index, UsersModel.EmailRole) == "ana@example.com"
    assert model.data(index, UsersModel.IsCurrentRole) is True
    assert model.data(index, Qt.ItemDataRole.DisplayRole) == "ana@example.com"
    rec.watch("user.stateChanged", user.stateChanged)
    rec.watch("user.loggedInChanged", user.loggedInChanged)

    qt_app.logOut()
    qtbot.waitUntil(lambda: not qt_app.isLoggedIn and not user.isLoggedIn, timeout=10000)
    assert qt_app.state == "LoggedOut"
    assert qt_app.currentUser is None
    qtbot.waitUntil(lambda: model.data(model.index(0), UsersModel.StateRole) == "LoggedOut", timeout=5000)

    assert {"loggedInChanged", "stateChanged", "currentUserChanged", "user.stateChanged"} <= set(rec.names())
    assert rec.threads() == {GUI_THREAD}, "a Qt slot ran off the GUI thread"
    assert core.thread.ident != GUI_THREAD


def test_changes_made_from_several_worker_threads_reach_slots_on_the_gui_thread(
    qtbot: Any, core: CoreLoop, app: App, live_server: LocalServer
) -> None:
    qt_app = QtApp(app, core)
    rec = Recorder()
    rec.watch("currentUserChanged", qt_app.currentUserChanged)
    rec.watch("rows", qt_app.users.modelReset)
    emitters: set[int | None] = set()
    app.add_listener(lambda event: emitters.add(threading.get_ident()))

    # Worker threads drive the App (each hands its log-in to the core loop and waits).
    def worker(i: int) -> None:
        core.submit(app.log_in(Credentials.anonymous(reuse=False))).result(10)

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(20)
    qtbot.waitUntil(lambda: qt_app.users.rowCount() == 4, timeout=10000)
    # The current user is the last one logged in, as the App says.
    expected = core.submit(_current_id(app)).result(5)
    qtbot.waitUntil(lambda: qt_app.currentUserId == expected, timeout=5000)
    assert emitters == {core.thread.ident}
    assert rec.threads() == {GUI_THREAD}


async def _current_id(app: App) -> str | None:
    user = app.current_user
    return None if user is None else user.id


def test_switch_user_and_the_model_roles(
    qtbot: Any, core: CoreLoop, app: App, live_server: LocalServer
) -> None:
    make_user(core, app, live_server, "ana@example.com")
    make_user(core, app, live_server, "bob@example.com")
    qt_app = QtApp(app, core)
    qt_app.logInEmailPassword("ana@example.com", PASSWORD)
    qtbot.waitUntil(lambda: qt_app.isLoggedIn, timeout=10000)
    qt_app.logInEmailPassword("bob@example.com", PASSWORD)
    model = qt_app.users
    qtbot.waitUntil(
        lambda: model.rowCount() == 2 and qt_app.currentUser.email == "bob@example.com", timeout=10000
    )
    names = {bytes(v.data()).decode() for v in model.roleNames().values()}
    assert {"userId", "state", "isLoggedIn", "isCurrent", "name", "email", "providerType"} <= names
    assert [model.data(model.index(i), UsersModel.IsCurrentRole) for i in range(2)] == [False, True]
    assert model.data(model.index(0), UsersModel.ProviderTypeRole) == "local-userpass"

    ana_id = model.userId(0)
    qt_app.switchUser(ana_id)
    qtbot.waitUntil(lambda: qt_app.currentUserId == ana_id, timeout=5000)
    assert [model.data(model.index(i), UsersModel.IsCurrentRole) for i in range(2)] == [True, False]
    assert model.rowOf(ana_id) == 0 and model.rowOf("nobody") == -1

    # Any row's user is available as a QtUser, with its full data once its stream replays.
    bob = qt_app.user(model.userId(1))
    assert bob is not None and bob.email == "bob@example.com"
    qtbot.waitUntil(lambda: bob.identities != [], timeout=5000)
    assert bob.identities[0]["providerType"] == "local-userpass"
    assert qt_app.user("nobody") is None

    # Removing a user drops its row.
    qt_app.removeUser(ana_id)
    qtbot.waitUntil(lambda: model.rowCount() == 1, timeout=5000)
    assert qt_app.currentUser.email == "bob@example.com"


def test_a_failed_log_in_reports_an_error_without_the_password(
    qtbot: Any, core: CoreLoop, app: App, live_server: LocalServer
) -> None:
    make_user(core, app, live_server, "ana@example.com")
    qt_app = QtApp(app, core)
    errors: list[tuple[str, str, int | None]] = []
    qt_app.errorOccurred.connect(lambda op, msg: errors.append((op, msg, threading.get_ident())))
    qt_app.logInEmailPassword("ana@example.com", "wrong-password-canary")
    qtbot.waitUntil(lambda: len(errors) == 1, timeout=10000)
    op, message, thread = errors[0]
    assert op == "logIn" and thread == GUI_THREAD
    assert message and "wrong-password-canary" not in message
    assert qt_app.lastError == message
    assert not qt_app.isLoggedIn and not qt_app.busy


def test_user_object_follows_custom_data_and_profile(
    qtbot: Any, core: CoreLoop, app: App, live_server: LocalServer
) -> None:
    qt_app = QtApp(app, core)
    qt_app.logInAnonymous()
    qtbot.waitUntil(lambda: qt_app.isLoggedIn, timeout=10000)
    user = qt_app.currentUser
    assert user.customData == {}
    assert user.identities[0]["providerType"] == "anon-user"
    assert isinstance(user.profile, dict)
    changed: list[int | None] = []
    user.customDataChanged.connect(lambda: changed.append(threading.get_ident()))
    refreshed: list[str] = []
    qt_app.operationFinished.connect(refreshed.append)
    # A worker thread changes the custom data on the server, then the user refreshes it.
    current = core.submit(_current(app)).result(5)
    done: list[Any] = []
    worker = threading.Thread(
        target=lambda: done.append(
            core.submit(current.call_function("set_custom_data", {"theme": "dark"})).result(10)
        )
    )
    worker.start()
    worker.join(15)
    assert done
    user.refreshCustomData()
    qtbot.waitUntil(lambda: "refreshCustomData" in refreshed, timeout=10000)
    qtbot.waitUntil(lambda: user.customData.get("theme") == "dark", timeout=5000)
    assert set(changed) == {GUI_THREAD}


async def _current(app: App) -> Any:
    return app.current_user


def test_bindings_keep_neither_the_app_nor_its_users_alive(
    qtbot: Any, core: CoreLoop, live_server: LocalServer
) -> None:
    app = App(live_server.app_id, base_url=live_server.url)
    qt_app = QtApp(app, core)
    qt_app.logInAnonymous()
    qtbot.waitUntil(lambda: qt_app.isLoggedIn, timeout=10000)
    qt_user = qt_app.currentUser
    user_ref = weakref.ref(qt_user.user())
    assert user_ref() is not None

    # Anonymous users are removed on log-out: the App drops it, the QtUser must not hold it.
    qt_app.logOut()
    qtbot.waitUntil(lambda: qt_user.state == "Removed", timeout=10000)
    qtbot.waitUntil(lambda: not qt_app.busy, timeout=5000)
    gc.collect()
    assert user_ref() is None
    assert qt_user.user() is None
    assert shiboken6.isValid(qt_user)

    app_ref = weakref.ref(app)
    core.submit(app.aclose()).result(10)
    del app
    gc.collect()
    assert app_ref() is None, "a binding kept the App alive"
    qt_app.logInAnonymous()  # the App is gone: reported, not raised
    assert qt_app.lastError == "the App is gone"


def test_a_deleted_qt_app_is_never_touched(
    qtbot: Any, core: CoreLoop, app: App, live_server: LocalServer, caplog: Any
) -> None:
    caplog.set_level(logging.ERROR)
    qt_app = QtApp(app, core)
    qtbot.waitUntil(lambda: _observers(core, app) == 2, timeout=5000)
    qt_app.logInAnonymous()  # in flight while the object goes away
    shiboken6.delete(qt_app)
    assert _observers(core, app) == 0  # its subscriptions went with it
    # The App keeps working and publishing; nothing is delivered to the dead object.
    core.submit(app.log_in(Credentials.anonymous(reuse=False))).result(10)
    qtbot.wait(50)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def _observers(core: CoreLoop, app: App) -> int:
    async def count() -> int:
        subjects = [app._current_subject, app._users_subject]
        return sum(len(s.observers) for s in subjects if s is not None)

    return core.submit(count()).result(5)


def test_usable_from_qml(qtbot: Any, core: CoreLoop, app: App, live_server: LocalServer) -> None:
    qt_app = QtApp(app, core)
    engine = QQmlEngine()
    engine.rootContext().setContextProperty("qtApp", qt_app)
    component = QQmlComponent(engine)
    component.setData(
        QByteArray(
            b"import QtQml\n"
            b"QtObject {\n"
            b"  property bool loggedIn: qtApp.isLoggedIn\n"
            b"  property string uid: qtApp.currentUserId\n"
            b"  property string userState: qtApp.currentUser ? qtApp.currentUser.state : 'none'\n"
            b"  property int rows: qtApp.users.rowCount()\n"
            b"}\n"
        ),
        "inline.qml",
    )
    obj: QObject = component.create()
    assert obj is not None, component.errorString()
    assert obj.property("loggedIn") is False and obj.property("userState") == "none"
    qt_app.logInAnonymous()
    qtbot.waitUntil(lambda: obj.property("loggedIn") is True, timeout=10000)
    assert obj.property("uid") == qt_app.currentUserId != ""
    assert obj.property("userState") == "LoggedIn"
    # The engine owns what it made; it goes before the QtApp it reads from.
    obj.setParent(engine)
    component.setParent(engine)
    engine.deleteLater()
    qtbot.waitUntil(lambda: not shiboken6.isValid(engine), timeout=3000)
