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
from datetime import timedelta
from typing import Any, ClassVar, TypeVar

import shiboken6
from PySide6.QtCore import QCoreApplication, QThread, QTimer
from reactivex import abc, typing
from reactivex.disposable import CompositeDisposable, Disposable, SingleAssignmentDisposable
from reactivex.scheduler.periodicscheduler import PeriodicScheduler

from ._invoker import Invoker

__all__ = ["GuiScheduler"]

_TState = TypeVar("_TState")


class GuiScheduler(PeriodicScheduler):
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

    def schedule(
        self, action: typing.ScheduledAction[_TState], state: _TState | None = None
    ) -> abc.DisposableBase:
        """Run ``action(scheduler, state)`` on the GUI thread as soon as it is free."""
        sad = SingleAssignmentDisposable()
        disposed = False

        def invoke() -> None:
            if not disposed:
                sad.disposable = self.invoke_action(action, state=state)

        def dispose() -> None:
            nonlocal disposed
            disposed = True

        self.post(invoke)
        return CompositeDisposable(sad, Disposable(dispose))

    def schedule_relative(
        self,
        duetime: typing.RelativeTime,
        action: typing.ScheduledAction[_TState],
        state: _TState | None = None,
    ) -> abc.DisposableBase:
        """Run ``action`` on the GUI thread after ``duetime`` (seconds or a timedelta)."""
        msecs = max(0, int(self.to_seconds(duetime) * 1000.0))
        if msecs == 0:
            return self.schedule(action, state)
        sad = SingleAssignmentDisposable()
        disposed = False

        def invoke() -> None:
            if not disposed:
                sad.disposable = self.invoke_action(action, state=state)

        def start_timer() -> None:
            # On the GUI thread now, where QTimer works; the invoker is the context
            # object, so the timer dies with it instead of firing into a torn-down GUI.
            if not disposed:
                QTimer.singleShot(msecs, self._invoker, invoke)

        def dispose() -> None:
            nonlocal disposed
            disposed = True

        self.post(start_timer)
        return CompositeDisposable(sad, Disposable(dispose))

    def schedule_absolute(
        self,
        duetime: typing.AbsoluteTime,
        action: typing.ScheduledAction[_TState],
        state: _TState | None = None,
    ) -> abc.DisposableBase:
        """Run ``action`` on the GUI thread at ``duetime``."""
        delta: timedelta = self.to_datetime(duetime) - self.now
        return self.schedule_relative(delta, action, state=state)

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
