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
from collections.abc import Callable

from reactivex.scheduler.eventloop import AsyncIOThreadSafeScheduler

from appusers.bindings._host_scheduler import HostScheduling

__all__ = ["AsyncioScheduler"]

class AsyncioScheduler(HostScheduling, AsyncIOThreadSafeScheduler):
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

    def _call_later(self, seconds: float, fn: Callable[[], None]) -> Callable[[], None] | None:
        loop = self._loop
        timer: list[asyncio.TimerHandle] = []
        cancelled = False

        def start() -> None:
            if cancelled:
                return
            if seconds > 0:
                timer.append(loop.call_later(seconds, fn))
            else:
                fn()

        try:
            loop.call_soon_threadsafe(start)
        except RuntimeError:  # the loop is closed: the action can never run
            return None

        def cancel_timer() -> None:
            while timer:
                timer.pop().cancel()

        def cancel() -> None:
            nonlocal cancelled
            cancelled = True
            if timer:
                try:
                    loop.call_soon_threadsafe(cancel_timer)
                except RuntimeError:
                    pass  # closed: its timers are gone with it

        return cancel

    def __repr__(self) -> str:
        return f"<AsyncioScheduler loop={self._loop!r}>"

