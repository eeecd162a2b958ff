"""Per-request deadlines for the aiohttp transport: ``asyncio.timeout`` semantics, cheaper.

A request's deadline cancels its task when it passes, and the cancellation leaves the
``with`` block as ``TimeoutError`` unless someone else cancelled the task too (the same
steps as CPython's ``asyncio.Timeout``). What differs is the bookkeeping:

* a plain ``with`` block, not ``async with``: no coroutine per enter and exit;
* with a :class:`Timers`, the requests of one transport share **one** loop timer, set for the
  earliest deadline in flight. ``loop.call_at`` and ``Handle.cancel`` per request cost more
  client CPU than the rest of the adapter's own work (benchmarks/run.py, call_function
  overhead): a request that ends in time left a cancelled handle in the loop's heap, which
  every later timer pushed past and the loop swept out again. A new deadline only arms the
  timer when it is earlier than the armed one; one that ends in time is just forgotten.
"""

from __future__ import annotations

import asyncio
import math
import time
from asyncio import current_task as _current_task

__all__ = ["Deadline", "Timers"]

# asyncio runs a timer whose time is less than one clock resolution away (``_run_once``):
# deadlines that close are due in the same pass, as they would be with a timer each.
_RESOLUTION = time.get_clock_info("monotonic").resolution


class Timers:
    """The deadlines of one event loop's requests, on one ``loop.call_at`` timer."""

    __slots__ = ("_armed_at", "_handle", "_loop", "_pending", "_time")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._time = loop.time
        self._pending: dict[Deadline, None] = {}  # insertion-ordered set
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = math.inf

    def _rearm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._arm(when)

    def _arm(self, when: float) -> None:
        self._armed_at = when
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        due = max(self._armed_at, self._loop.time() + _RESOLUTION)
        self._handle = None
        self._armed_at = math.inf
        earliest = math.inf
        expired = []
        for deadline in self._pending:
            if deadline.when < due:
                expired.append(deadline)
            elif deadline.when < earliest:
                earliest = deadline.when
        for deadline in expired:
            del self._pending[deadline]
            deadline._expire()
        if earliest < math.inf:
            self._arm(earliest)

    def close(self) -> None:
        """Drop the timer (the transport is closing; nothing is left to time)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._armed_at = math.inf
        self._pending.clear()


class Deadline:
    """``asyncio.timeout(delay)`` as a plain ``with`` block, for the per-request path.

    With ``timers``, on their shared timer; without, on a timer of its own."""

    __slots__ = ("_cancelling", "_expired", "_handle", "_task", "_timers", "when")

    def __init__(self, delay: float, timers: Timers | None = None) -> None:
        self._expired = False
        self._timers = timers
        self._handle: asyncio.Handle | None = None
        if timers is not None:
            # Timers._add() inlined, and the task asked of the timers' loop: this runs per request.
            task = _current_task(timers._loop)
            if task is None:
                raise RuntimeError("Timeout should be used inside a task")
            self._task = task
            self._cancelling = task.cancelling()
            self.when = when = timers._time() + delay
            timers._pending[self] = None
            if when < timers._armed_at:
                timers._rearm(when)
            return
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Timeout should be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        loop = task.get_loop()
        self.when = when = loop.time() + delay
        self._handle = (
            loop.call_soon(self._expire) if when <= loop.time() else loop.call_at(when, self._expire)
        )

    def __enter__(self) -> Deadline:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, _tb: object) -> None:
        timers = self._timers
        if timers is not None:
            timers._pending.pop(self, None)
        elif self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._expired and self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc

    def _expire(self) -> None:
        self._task.cancel()
        self._expired = True
        self._handle = None
