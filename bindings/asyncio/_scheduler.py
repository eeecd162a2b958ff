"""A reactivex scheduler that runs every action on one asyncio loop, whoever calls it.

reactivex's own ``AsyncIOThreadSafeScheduler`` delivers on the loop too, but two of
its traits bite a UI: disposing from another thread *blocks* that thread until
the loop has run the cancellation (a deadlock when the loop is waiting on that
thread), and scheduling onto a loop that has closed raises into the emitting
thread. This subclass keeps its clock (``now``, ``to_seconds``) and replaces
both: disposal only flags the action (and cancels its timer on the loop
later), and a closed loop silently drops the action, since nothing can run
there any more.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

from reactivex import abc, typing
from reactivex.disposable import CompositeDisposable, Disposable, SingleAssignmentDisposable
from reactivex.scheduler.eventloop import AsyncIOThreadSafeScheduler

__all__ = ["AsyncioScheduler"]

_TState = TypeVar("_TState")


class AsyncioScheduler(AsyncIOThreadSafeScheduler):
    """Schedules actions on ``loop`` (default: the running loop); safe from any thread.

    Use it with ``observe_on`` to move a stream onto the loop::

        user.state_changes.pipe(ops.observe_on(AsyncioScheduler())).subscribe(update)
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(loop if loop is not None else asyncio.get_running_loop())

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop every action runs on."""
        return self._loop

    def schedule(
        self, action: typing.ScheduledAction[_TState], state: _TState | None = None
    ) -> abc.DisposableBase:
        """Run ``action`` on the loop as soon as possible."""
        return self.schedule_relative(0.0, action, state)

    def schedule_relative(
        self,
        duetime: typing.RelativeTime,
        action: typing.ScheduledAction[_TState],
        state: _TState | None = None,
    ) -> abc.DisposableBase:
        """Run ``action`` on the loop after ``duetime``."""
        seconds = max(0.0, self.to_seconds(duetime))
        loop = self._loop
        inner = SingleAssignmentDisposable()
        disposed = False
        timer: list[asyncio.TimerHandle] = []

        def run() -> None:
            if not disposed:
                inner.disposable = self.invoke_action(action, state=state)

        def start() -> None:
            if disposed:
                return
            if seconds > 0:
                timer.append(loop.call_later(seconds, run))
            else:
                run()

        try:
            loop.call_soon_threadsafe(start)
        except RuntimeError:  # the loop is closed: the action can never run
            return Disposable()

        def cancel_timer() -> None:
            while timer:
                timer.pop().cancel()

        def dispose() -> None:
            nonlocal disposed
            disposed = True
            if timer:
                try:
                    loop.call_soon_threadsafe(cancel_timer)
                except RuntimeError:
                    pass  # closed: its timers are gone with it

        return CompositeDisposable(inner, Disposable(dispose))

    def schedule_absolute(
        self,
        duetime: typing.AbsoluteTime,
        action: typing.ScheduledAction[_TState],
        state: _TState | None = None,
    ) -> abc.DisposableBase:
        """Run ``action`` on the loop at ``duetime``."""
        return self.schedule_relative(self.to_datetime(duetime) - self.now, action, state)

    def __repr__(self) -> str:
        return f"<AsyncioScheduler loop={self._loop!r}>"

