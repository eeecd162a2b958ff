"""What the bindings' schedulers share: run a reactivex action later, on a host loop.

Each host (asyncio, Kivy's Clock, Qt's GUI thread) only has to say how to run a
callable on its thread after some seconds, safely from any thread, and how to
cancel that; this mixin turns it into reactivex's ``schedule*`` methods. A disposed
action never runs, even if its host callback was already queued.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from reactivex import abc, typing
from reactivex.disposable import CompositeDisposable, Disposable, SingleAssignmentDisposable

__all__ = ["HostScheduling"]

_TState = TypeVar("_TState")


class HostScheduling:
    """Mixin for a reactivex scheduler class; implement :meth:`_call_later`."""

    def _call_later(self, seconds: float, fn: Callable[[], None]) -> Callable[[], None] | None:
        """Run ``fn()`` on the host thread after ``seconds`` (0: as soon as possible).

        Called from any thread. Return a function that cancels it (also callable from
        any thread), or None when the host is gone and ``fn`` can never run.
        """
        raise NotImplementedError

    def schedule(
        self, action: typing.ScheduledAction[_TState], state: _TState | None = None
    ) -> abc.DisposableBase:
        """Run ``action`` on the host thread as soon as possible."""
        return self.schedule_relative(0.0, action, state)

    def schedule_relative(
        self,
        duetime: typing.RelativeTime,
        action: typing.ScheduledAction[_TState],
        state: _TState | None = None,
    ) -> abc.DisposableBase:
        """Run ``action`` on the host thread after ``duetime``."""
        scheduler: Any = self  # a reactivex scheduler: to_seconds, invoke_action
        seconds = max(0.0, scheduler.to_seconds(duetime))
        inner = SingleAssignmentDisposable()
        disposed = False

        def run() -> None:
            if not disposed:
                inner.disposable = scheduler.invoke_action(action, state=state)

        cancel = self._call_later(seconds, run)
        if cancel is None:
            return Disposable()

        def dispose() -> None:
            nonlocal disposed
            disposed = True
            cancel()

        return CompositeDisposable(inner, Disposable(dispose))

    def schedule_absolute(
        self,
        duetime: typing.AbsoluteTime,
        action: typing.ScheduledAction[_TState],
        state: _TState | None = None,
    ) -> abc.DisposableBase:
        """Run ``action`` on the host thread at ``duetime``."""
        scheduler: Any = self
        return self.schedule_relative(scheduler.to_datetime(duetime) - scheduler.now, action, state)
