"""``Invoker``: run a callable on the thread a ``QObject`` lives in, posted from any thread.

This is qasync's "signaller" pattern: a queued signal carries the callable. Qt puts a
queued emission into the receiver thread's event queue whatever thread emits it,
including plain Python threads Qt has never seen, so this is the one primitive every
cross-thread hop in the Qt binding goes through. (``QTimer.singleShot`` is not a
substitute: called from a thread with no Qt event loop, its timer never fires.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

__all__ = ["Invoker"]

_log = logging.getLogger("appusers.bindings.qt")


class Invoker(QObject):
    """Runs posted callables, in order, on the thread this object lives in.

    ``thread`` is where the callables run (default: the creating thread). ``post`` is
    safe from any thread; an exception in a callable is logged, never propagated
    into Qt's event dispatch.
    """

    _posted = Signal(object)

    def __init__(self, thread: QThread | None = None) -> None:
        super().__init__()
        if thread is not None and thread is not self.thread():
            # Only the owning thread may push an object away; we are that thread here.
            self.moveToThread(thread)
        # Queued even when emitted on the receiver's own thread: callers rely on post()
        # never running the callable re-entrantly inside their own call.
        self._posted.connect(self._run, Qt.ConnectionType.QueuedConnection)

    def post(self, fn: Callable[[], Any]) -> bool:
        """Queue ``fn()`` for this object's thread; False if the object is already gone."""
        if not shiboken6.isValid(self):
            return False
        try:
            self._posted.emit(fn)
        except RuntimeError:  # deleted between the check and the emit (shutdown)
            return False
        return True

    @Slot(object)
    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception:
            _log.exception("a callback posted to a Qt thread raised")
