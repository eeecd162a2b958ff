"""A reactivex scheduler that runs every action on Kivy's thread, through ``Clock``.

Kivy's Clock may be called from any thread (its scheduling is thread-safe) and
runs callbacks on the thread that ticks it: the thread running Kivy's loop
(``App.run`` or ``App.async_run``). It keeps callbacks weakly, though, so each
scheduled action is also held here until it has run or been disposed; without
that, a callback whose only owner is the Clock could vanish before its frame.
"""

from __future__ import annotations

import threading
from typing import Any, TypeVar

from kivy.clock import Clock
from reactivex import abc, typing
from reactivex.disposable import CompositeDisposable, Disposable, SingleAssignmentDisposable
from reactivex.scheduler.periodicscheduler import PeriodicScheduler

__all__ = ["KivyClockScheduler"]

_TState = TypeVar("_TState")


class KivyClockScheduler(PeriodicScheduler):
    """Schedules actions on Kivy's Clock; safe to call from any thread.

    ::

        user.state_changes.pipe(ops.observe_on(KivyClockScheduler())).subscribe(update_label)
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._pending: set[Any] = set()

    @property
    def pending(self) -> int:
        """How many actions wait for their frame (for tests and diagnostics)."""
        return len(self._pending)

    def schedule(
        self, action: typing.ScheduledAction[_TState], state: _TState | None = None
    ) -> abc.DisposableBase:
        """Run ``action`` on Kivy's thread before the next frame."""
        return self.schedule_relative(0.0, action, state)

    def schedule_relative(
        self,
        duetime: typing.RelativeTime,
        action: typing.ScheduledAction[_TState],
        state: _TState | None = None,
    ) -> abc.DisposableBase:
        """Run ``action`` on Kivy's thread after ``duetime``."""
        seconds = max(0.0, self.to_seconds(duetime))
        inner = SingleAssignmentDisposable()
        disposed = False
        pending, lock = self._pending, self._lock

        def run(_dt: float) -> None:
            with lock:
                pending.discard(run)
            if not disposed:
                inner.disposable = self.invoke_action(action, state=state)

        with lock:
            pending.add(run)
        event = Clock.schedule_once(run, seconds)

        def dispose() -> None:
            nonlocal disposed
            disposed = True
            event.cancel()
            with lock:
                pending.discard(run)

        return CompositeDisposable(inner, Disposable(dispose))

    def schedule_absolute(
        self,
        duetime: typing.AbsoluteTime,
        action: typing.ScheduledAction[_TState],
        state: _TState | None = None,
    ) -> abc.DisposableBase:
        """Run ``action`` on Kivy's thread at ``duetime``."""
        return self.schedule_relative(self.to_datetime(duetime) - self.now, action, state)
