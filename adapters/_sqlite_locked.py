"""Trying an SQLite step again while another connection converting the same file locks it.

Why: processes opening a fresh file at the same moment (``appusers serve --workers N`` on a
new data directory, several apps sharing one session store) each switch it to WAL. Two
connections converting one file at once deadlock, and SQLite breaks the deadlock by failing
one of them with "database is locked" at once, whatever the busy timeout (measured: 57
failures in 200 rounds of 4 threads). The other finishes the conversion, so the same step
a moment later succeeds. The SDK's session store and the server's stores share this one loop.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["while_locked"]

T = TypeVar("T")

#: Between two tries: long enough for the other connection to finish its conversion.
_PAUSE_S = 0.01


def while_locked(step: Callable[[], T], *, timeout: float) -> T:
    """``step()``, again while it fails with SQLite's "database is locked", for up to
    ``timeout`` seconds; then (or on any other error) its error propagates."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return step()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(_PAUSE_S)
