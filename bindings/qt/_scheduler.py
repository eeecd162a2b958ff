"""``GuiScheduler``: a reactivex scheduler that runs actions on the Qt GUI thread.

reactivex subjects call their observers on whatever thread emits; the App emits on
its core loop thread (or a worker thread), and Qt objects may only be touched on the
GUI thread. reactivex's own ``QtScheduler`` uses ``QTimer.singleShot``, which never
fires when called from a thread without a Qt event loop, so it cannot make that hop.
This scheduler posts every action through an :class:`~._invoker.Invoker` living on
the GUI thread (a queued signal), which works from any thread; timers are created on
the GUI thread itself, where ``QTimer`` works.

::

    from reactivex import operators as ops

    user.state_changes.pipe(ops.observe_on(GuiScheduler.instance())).subscribe(label_update)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import shiboken6
from PySide6.QtCore import QCoreApplication, QThread, QTimer
from reactivex import abc, typing
from reactivex.disposable import Disposable
from reactivex.scheduler.periodicscheduler import PeriodicScheduler

from appusers.bindings._host_scheduler import HostScheduling

from ._invoker import Invoker

__all__ = ["GuiScheduler"]

_TState = TypeVar("_TState")


class GuiScheduler(HostScheduling, PeriodicScheduler):
    """Schedules reactivex actions on the thread of the ``QCoreApplication``.

    Safe to call from any thread. Actions run in the order they were scheduled from
    any one thread. A ``QCoreApplication`` (or ``QApplication``) must exist first.
    Use :meth:`instance` for the shared one.
    """

    _shared: ClassVar[GuiScheduler | None] = None
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        super().__init__()
        qapp = QCoreApplication.instance()
        if qapp is None:
            raise RuntimeError("create the QApplication before a GuiScheduler")
        self._qapp = qapp
        self._invoker = Invoker(qapp.thread())
        self._timers: set[QTimer] = set()

    @classmethod
    def instance(cls) -> GuiScheduler:
        """The process-wide scheduler (made again if the QApplication was replaced)."""
        with cls._shared_lock:
            shared = cls._shared
            if shared is None or not shared.alive or shared._qapp is not QCoreApplication.instance():
                shared = cls._shared = cls()
            return shared

    @property
    def alive(self) -> bool:
        """False once the QApplication (and with it the GUI thread's invoker) is gone."""
        return shiboken6.isValid(self._invoker) and shiboken6.isValid(self._qapp)

    def is_gui_thread(self) -> bool:
        """Whether the calling thread is the GUI thread."""
        return QThread.currentThread() == self._invoker.thread()

    def post(self, fn: Callable[[], Any]) -> bool:
        """Run ``fn()`` on the GUI thread soon (always queued, even from the GUI thread).

        Returns False when the GUI side is already gone and ``fn`` will never run.
        """
        return self._invoker.post(fn)

    # -- reactivex scheduler interface -----------------------------------------------

    def _call_later(self, seconds: float, fn: Callable[[], None]) -> Callable[[], None] | None:
        msecs = int(seconds * 1000.0)
        if msecs == 0:
            posted = self.post(fn)
        else:
            # QTimer only works on a thread with a Qt loop: start it on the GUI thread, with
            # the invoker as context object so it dies with it instead of firing into a
            # torn-down GUI.
            posted = self.post(lambda: QTimer.singleShot(msecs, self._invoker, fn))
        # A disposed action is skipped when it runs: nothing to cancel on the GUI side.
        return (lambda: None) if posted else None

    def schedule_periodic(
        self,
        period: typing.RelativeTime,
        action: typing.ScheduledPeriodicAction[_TState],
        state: _TState | None = None,
    ) -> abc.DisposableBase:
        """Run ``state = action(state)`` on the GUI thread every ``period``."""
        msecs = max(0, int(self.to_seconds(period) * 1000.0))
        timer: QTimer | None = None
        disposed = False

        def tick() -> None:
            nonlocal state
            state = action(state)

        def start() -> None:
            nonlocal timer
            if disposed:
                return
            timer = QTimer(self._invoker)
            timer.setInterval(msecs)
            timer.timeout.connect(tick)
            self._timers.add(timer)
            timer.start()

        def stop() -> None:
            if timer is not None and shiboken6.isValid(timer):
                timer.stop()
                self._timers.discard(timer)
                timer.deleteLater()

        def dispose() -> None:
            nonlocal disposed
            disposed = True
            self.post(stop)  # the timer belongs to the GUI thread: stop it there

        self.post(start)
        return Disposable(dispose)
