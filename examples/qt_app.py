"""A Qt widgets app on appusers.bindings.qt: log-in form, current user, users list with switch, log-out.

Run it against a local server::

    appusers serve &                                   # or any App Services-compatible URL
    python examples/qt_app.py --base-url http://127.0.0.1:9090 --app-id appusers-local

Without ``--base-url`` it starts a LocalServer of its own, in-process, on a thread.
``--autopilot EMAIL PASSWORD`` drives the window itself (log in, log in anonymously,
switch, screenshot, log out twice) and exits; the tests run it that way under Xvfb.
With ``--outage DIR`` it also rides out a server outage in the middle: it prints
``autopilot: stop the server``, waits for the file ``DIR/stopped``, refreshes the
profile (which fails), shows "offline — retrying in N s", prints ``autopilot: start
the server`` and waits until the App is back online by itself.

The App runs on a CoreLoop thread; every widget update arrives on the GUI thread
through QtApp's notify signals, so nothing here ever waits on the network.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QIdentityProxyModel, QModelIndex, QPersistentModelIndex, Qt, QTimer
from PySide6.QtWidgets import (
    QApplication,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from appusers import App, RetryPolicy
from appusers.bindings.qt import CoreLoop, QSettingsStorage, QtApp, UsersModel


class UserLines(QIdentityProxyModel):
    """Shows each row of the UsersModel as "who · state · current" (the roles do the work)."""

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role != Qt.ItemDataRole.DisplayRole:
            return super().data(index, role)
        source = self.sourceModel()
        row = self.mapToSource(index)
        who = source.data(row, UsersModel.EmailRole) or source.data(row, UsersModel.NameRole)
        if not who:
            who = f"anonymous {source.data(row, UsersModel.UserIdRole)[-6:]}"
        state = source.data(row, UsersModel.StateRole)
        current = "  · current" if source.data(row, UsersModel.IsCurrentRole) else ""
        return f"{who}  · {state}{current}"


class UsersWindow(QWidget):
    """The whole UI: reads QtApp's properties, calls its slots."""

    def __init__(self, qt_app: QtApp) -> None:
        super().__init__()
        self.qt_app = qt_app
        self.setWindowTitle("appusers — Qt example")

        self.email = QLineEdit(placeholderText="email")
        self.password = QLineEdit(placeholderText="password", echoMode=QLineEdit.EchoMode.Password)
        self.log_in = QPushButton("Log in")
        self.anonymous = QPushButton("Log in anonymously")
        form = QFormLayout()
        form.addRow("Email", self.email)
        form.addRow("Password", self.password)
        buttons = QHBoxLayout()
        buttons.addWidget(self.log_in)
        buttons.addWidget(self.anonymous)
        form.addRow(buttons)
        login_box = QGroupBox("Log in")
        login_box.setLayout(form)

        self.current = QLabel()
        self.connection = QLabel()
        self.refresh = QPushButton("Refresh profile")
        self.log_out = QPushButton("Log out")
        current_box = QGroupBox("Current user")
        current_layout = QVBoxLayout(current_box)
        current_layout.addWidget(self.current)
        current_layout.addWidget(self.connection)
        current_actions = QHBoxLayout()
        current_actions.addWidget(self.refresh)
        current_actions.addWidget(self.log_out)
        current_layout.addLayout(current_actions)

        self.users = QListView()
        self.lines = UserLines(self)
        self.lines.setSourceModel(qt_app.users)
        self.users.setModel(self.lines)
        self.switch = QPushButton("Switch to selected")
        users_box = QGroupBox("Users on this device")
        users_layout = QVBoxLayout(users_box)
        users_layout.addWidget(self.users)
        users_layout.addWidget(self.switch)

        self.status = QLabel()
        layout = QVBoxLayout(self)
        layout.addWidget(login_box)
        layout.addWidget(current_box)
        layout.addWidget(users_box)
        layout.addWidget(self.status)

        self.log_in.clicked.connect(
            lambda: qt_app.logInEmailPassword(self.email.text(), self.password.text())
        )
        self.anonymous.clicked.connect(qt_app.logInAnonymous)
        self.log_out.clicked.connect(qt_app.logOut)
        self.refresh.clicked.connect(self._refresh_profile)
        self.switch.clicked.connect(self._switch)
        qt_app.currentUserChanged.connect(self._show_current)
        qt_app.loggedInChanged.connect(self._show_current)
        qt_app.busyChanged.connect(self._show_status)
        qt_app.errorOccurred.connect(lambda op, message: self.status.setText(f"{op} failed: {message}"))
        qt_app.connectivityChanged.connect(self._show_connection)
        # "retrying in N s" counts down between changes.
        self.ticker = QTimer(self, interval=500)
        self.ticker.timeout.connect(self._show_connection)
        self.ticker.start()
        self._show_current()

    def _refresh_profile(self) -> None:
        user = self.qt_app.currentUser
        if user is not None:
            user.refreshProfile()

    def _show_connection(self, *_: object) -> None:
        # The App's aggregate: one server serves every user. connectivityText is as of the last
        # change; the countdown is worked out here from nextAttempt.
        state = self.qt_app.connectivity
        if state == "offline":
            wait = self.qt_app.nextAttempt - time.time()
            text = f"offline — retrying in {max(1, round(wait))} s" if self.qt_app.nextAttempt else "offline"
        else:
            text = state or "online"
        self.connection.setText(f"server: {text}")

    def _switch(self) -> None:
        index = self.users.currentIndex()
        if index.isValid():
            self.qt_app.switchUser(self.qt_app.users.userId(index.row()))

    def _show_current(self, *_: object) -> None:
        user = self.qt_app.currentUser
        if user is None:
            self.current.setText("Nobody is logged in")
        else:
            who = user.email or user.name or "anonymous"
            self.current.setText(f"{who}\nid {user.userId}\nstate {user.state}")
        self.log_out.setEnabled(user is not None)
        self.refresh.setEnabled(user is not None)

    def _show_status(self, busy: bool) -> None:
        self.status.setText("working…" if busy else "")


class Autopilot:
    """Drives the window step by step; each step waits (on a timer) for its condition."""

    def __init__(
        self, window: UsersWindow, email: str, password: str, screenshot: Path | None,
        outage: Path | None = None,
    ) -> None:
        self.window = window
        self.qt_app = window.qt_app
        qa = self.qt_app

        def current_email() -> str | None:
            return qa.currentUser.email if qa.currentUser is not None else None

        def nobody_left() -> bool:
            return not qa.isLoggedIn and qa.users.rowCount() == 1

        self.steps: list[tuple[str, Callable[[], object], Callable[[], bool]]] = [
            ("log in with the form", self._fill_and_log_in(email, password),
             lambda: current_email() == email),
            ("log in anonymously", window.anonymous.click,
             lambda: qa.users.rowCount() == 2 and current_email() == ""),
            ("switch back", self._select_and_switch(email), lambda: current_email() == email),
            ("screenshot", lambda: self._screenshot(screenshot), lambda: True),
        ]
        if outage is not None:
            def shown(text: str) -> Callable[[], bool]:
                return lambda: window.connection.text().startswith(f"server: {text}")

            offline_shot = None if screenshot is None else screenshot.with_name(
                f"{screenshot.stem}_offline.png")
            self.steps += [
                ("server down", lambda: print("autopilot: stop the server", flush=True),
                 lambda: (outage / "stopped").exists()),
                ("refresh while offline", window.refresh.click, shown("offline — retrying in")),
                ("screenshot offline", lambda: self._screenshot(offline_shot), lambda: True),
                ("server back", lambda: print("autopilot: start the server", flush=True), shown("online")),
            ]
        self.steps += [
            ("log out", window.log_out.click, lambda: current_email() == ""),
            ("log out anonymous", window.log_out.click, nobody_left),
        ]
        self.timer = QTimer(interval=50)
        self.timer.timeout.connect(self._tick)
        self.waiting: Callable[[], bool] | None = None
        self.deadline = 0
        self.failed = False

    def start(self) -> None:
        self.timer.start()

    def _fill_and_log_in(self, email: str, password: str) -> Callable[[], None]:
        def act() -> None:
            self.window.email.setText(email)
            self.window.password.setText(password)
            self.window.log_in.click()
        return act

    def _select_and_switch(self, email: str) -> Callable[[], None]:
        def act() -> None:
            model = self.qt_app.users
            for row in range(model.rowCount()):
                if model.data(model.index(row), model.EmailRole) == email:
                    self.window.users.setCurrentIndex(model.index(row))
            self.window.switch.click()
        return act

    def _screenshot(self, path: Path | None) -> None:
        if path is None:
            return
        # Grab from the display server, not a widget render: proof the window is really there.
        pixmap = self.window.screen().grabWindow(self.window.winId())
        path.parent.mkdir(parents=True, exist_ok=True)
        if not pixmap.save(str(path)):
            raise OSError(f"could not save {path}")
        print(f"screenshot: {path} ({pixmap.width()}x{pixmap.height()})", flush=True)

    def _tick(self) -> None:
        if self.waiting is not None:
            if self.waiting():
                self.waiting = None
                self.steps.pop(0)
            else:
                self.deadline -= 1
                if self.deadline <= 0:
                    print(f"step failed: {self.steps[0][0]} ({self.qt_app.lastError})", flush=True)
                    self.failed = True
                    QApplication.exit(1)
                return
        if not self.steps:
            print("autopilot: done", flush=True)
            QApplication.exit(0)
            return
        name, act, done = self.steps[0]
        print(f"step: {name}  [platform {QApplication.platformName()}]", flush=True)
        if name.startswith("server") or name.endswith("offline"):
            print(f"connection: {self.window.connection.text()}", flush=True)
        act()
        self.waiting = done
        self.deadline = 400  # 20 s at 50 ms


async def _register(server: Any, email: str, password: str) -> None:
    """Give the in-process server the autopilot's account (confirmed from its outbox)."""
    async with App(server.app_id, base_url=server.url) as app:
        await app.email_password_auth.register_user(email, password)
        mail = [m for m in server.read_outbox() if m["email"] == email and m["kind"] == "confirm"][-1]
        await app.email_password_auth.confirm_user(mail["token"], mail["tokenId"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="the server (default: start a LocalServer in-process)")
    parser.add_argument("--app-id", default="appusers-local")
    parser.add_argument("--storage", type=Path, help="keep users in this QSettings INI file")
    parser.add_argument("--autopilot", nargs=2, metavar=("EMAIL", "PASSWORD"))
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument("--outage", type=Path, metavar="DIR",
                        help="autopilot: ride out a server outage (see the module docstring)")
    parser.add_argument("--retry-max-delay", type=float, default=8.0,
                        help="longest wait between two attempts while offline (seconds)")
    args = parser.parse_args(argv)

    qapp = QApplication(sys.argv[:1])
    core = CoreLoop()
    closing = []
    base_url = args.base_url
    if base_url is None:
        from appusers.server import LocalServer, load_config

        server = LocalServer(config=load_config(None), data_dir=Path(tempfile.mkdtemp(prefix="appusers-")))
        core.submit(server.__aenter__()).result(30)  # before the window exists
        closing.append(server)
        base_url, args.app_id = server.url, server.app_id
        if args.autopilot:
            core.submit(_register(server, *args.autopilot)).result(30)
    storage = QSettingsStorage(args.storage) if args.storage else None
    retry = RetryPolicy(initial_delay=min(0.5, args.retry_max_delay), max_delay=args.retry_max_delay)
    app = App(args.app_id, base_url=base_url, storage=storage, retry=retry)
    qt_app = QtApp(app, core)
    window = UsersWindow(qt_app)
    window.resize(480, 560)
    window.show()
    pilot = None
    if args.autopilot:
        pilot = Autopilot(window, args.autopilot[0], args.autopilot[1], args.screenshot, args.outage)
        pilot.start()
    code = qapp.exec()
    window.close()
    core.stop(app.aclose(), *(s.__aexit__(None, None, None) for s in closing))
    return code


if __name__ == "__main__":
    sys.exit(main())
