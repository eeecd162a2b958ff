"""The Qt (PySide6) binding: an App for widgets and QML, delivered on the GUI thread.

::

    from PySide6.QtWidgets import QApplication
    from appusers import App
    from appusers.bindings.qt import CoreLoop, QtApp

    qapp = QApplication([])
    core = CoreLoop()                                  # the App's asyncio runs here
    app = App("my-app", base_url="http://127.0.0.1:9090")
    qt_app = QtApp(app, core)
    qt_app.loggedInChanged.connect(print)              # always called on the GUI thread
    qt_app.logInAnonymous()                            # returns at once
    qapp.exec()
    core.stop(app.aclose())

Pieces usable on their own: :class:`GuiScheduler` (a reactivex scheduler that is safe
from any thread), :func:`bind` / :func:`dispose_with` (subscriptions that die with a
widget), and two adapters proving the seams: :class:`QSettingsStorage` and
:class:`QtNetworkTransport`. Importing this package imports PySide6 (the ``qt`` extra);
``import appusers`` never does. See docs/bindings-qt.md.
"""

from ._app import QtApp
from ._lifetime import bind, dispose_with
from ._loop import CoreLoop
from ._model import UsersModel
from ._network import QtNetworkTransport, QtStreamResponse
from ._scheduler import GuiScheduler
from ._settings import QSettingsStorage
from ._snapshot import Row, UserSnapshot
from ._user import QtUser

__all__ = [
    "CoreLoop",
    "GuiScheduler",
    "QSettingsStorage",
    "QtApp",
    "QtNetworkTransport",
    "QtStreamResponse",
    "QtUser",
    "Row",
    "UserSnapshot",
    "UsersModel",
    "bind",
    "dispose_with",
]
