"""Time limits for the store's worker: an operation past its deadline is stopped, not waited for.

A thread cannot be killed, and the matcher and pipeline engine are third-party
code without cancellation points. So a watchdog thread raises
:class:`Interrupted` *inside* the worker (CPython's
``PyThreadState_SetAsyncExc``): it arrives at the next bytecode the worker
runs, however deep in mongomock it is, and unwinds the operation. Only the
compute phase is interruptible: an operation computes on copies and commits
after :meth:`Watchdog.disarm`, which also clears an interrupt that was raised but
not yet delivered, so a commit is never torn and memory never disagrees with
SQLite. The interrupt is a ``BaseException``, which the borrowed engine never
catches, and it is raised once per operation: a second one could land after the
operation's own handler, in the thread pool's loop. C code that runs long
without returning to Python is the one thing it cannot stop, which is why
patterns run on RE2 (linear time).

The cost on the normal path is two uncontended lock round trips per operation;
the watchdog polls (no wake-up per operation).
"""

from __future__ import annotations

import ctypes
import threading
import time

from ._errors import DocumentStoreError

__all__ = ["Interrupted", "MaxTimeExpired", "Watchdog"]

class Interrupted(BaseException):
    """Raised in the worker at its deadline; a ``BaseException``, so ``except Exception`` lets it pass."""


class MaxTimeExpired(DocumentStoreError):
    """The operation ran past the store's time limit (MongoDB's ``MaxTimeMSExpired``, code 50)."""

    code = 50
    code_name = "MaxTimeMSExpired"

    def __init__(self, limit: float) -> None:
        super().__init__(f"(MaxTimeMSExpired) operation exceeded time limit of {limit:g} s")
        self.limit = limit


# Two prototypes of one C function: raise an exception class, or (NULL) cancel a pending one.
_raise_in = ctypes.pythonapi["PyThreadState_SetAsyncExc"]
_raise_in.argtypes = (ctypes.c_ulong, ctypes.py_object)
_raise_in.restype = ctypes.c_int
_cancel_in = ctypes.pythonapi["PyThreadState_SetAsyncExc"]
_cancel_in.argtypes = (ctypes.c_ulong, ctypes.c_void_p)
_cancel_in.restype = ctypes.c_int


class Watchdog:
    """Interrupts the armed thread once its deadline passes; one per worker thread."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._target = 0
        self._deadline = 0.0
        self._armed = False
        self._fired_at = 0.0
        self._poll = 0.1
        self._stopped = False

    def arm(self, deadline: float, limit: float) -> None:
        """From the worker: interrupt this thread at ``deadline`` (``time.monotonic()``) unless disarmed."""
        with self._lock:
            self._target = threading.get_ident()
            self._deadline = deadline
            self._fired_at = 0.0
            self._armed = True
            # A short limit needs a finer poll; never coarser than a tenth of the limit.
            self._poll = min(0.1, max(limit / 10, 0.005))
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(
                    target=self._watch, name=f"{self._name}-watchdog", daemon=True
                )
                self._thread.start()

    def disarm(self) -> bool:
        """From the worker: no interrupt from now on; returns whether one was raised for this operation."""
        with self._lock:
            self._armed = False
            fired = self._fired_at != 0.0
            if fired:
                # Raised but maybe not yet delivered: cancel it, the operation is past the point of no return.
                _cancel_in(self._target, None)
            return fired

    def stop(self) -> None:
        """End the watchdog thread (the store closed)."""
        with self._lock:
            self._stopped = True
            self._armed = False
        self._wake.set()

    def _watch(self) -> None:
        while True:
            self._wake.wait(self._poll)
            with self._lock:
                if self._stopped:
                    return
                now = time.monotonic()
                if self._armed and self._fired_at == 0.0 and now >= self._deadline:
                    self._fired_at = now
                    _raise_in(self._target, Interrupted)
