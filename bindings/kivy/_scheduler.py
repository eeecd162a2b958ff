"""A reactivex scheduler that runs every action on Kivy's thread, through ``Clock``.

Kivy's Clock may be called from any thread (its scheduling is thread-safe) and
runs callbacks on the thread that ticks it: the thread running Kivy's loop
(``App.run`` or ``App.async_run``). It keeps callbacks weakly, though, so each
scheduled action is also held here until it has run or been disposed; without
that, a callback whose only owner is the Clock could vanish before its frame.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from kivy.clock import Clock
from reactivex.scheduler.periodicscheduler import PeriodicScheduler

from appusers.bindings._host_scheduler import HostScheduling

__all__ = ["KivyClockScheduler"]

class KivyClockScheduler(HostScheduling, PeriodicScheduler):
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

    def _call_later(self, seconds: float, fn: Callable[[], None]) -> Callable[[], None] | None:
        pending, lock = self._pending, self._lock

        def run(_dt: float) -> None:
            with lock:
                pending.discard(run)
            fn()

        with lock:
            pending.add(run)  # the strong reference Kivy's Clock does not keep
        event = Clock.schedule_once(run, seconds)

        def cancel() -> None:
            event.cancel()
            with lock:
                pending.discard(run)

        return cancel
