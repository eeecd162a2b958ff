"""Setting up a freshly opened SQLite connection when other processes open the same file.

Why: the workers of ``appusers serve --workers N`` open a fresh data directory's files at the
same moment, and each switches them to WAL. Two connections converting one file at once
deadlock, and SQLite breaks the deadlock by failing one of them with "database is locked"
at once, whatever the busy timeout (measured: 57 failures in 200 rounds of 4 threads). The
other finishes the conversion, so trying again a moment later succeeds.
"""

from __future__ import annotations

import sqlite3
import time

__all__ = ["set_up"]


def set_up(db: sqlite3.Connection, *scripts: str, timeout: float = 30.0) -> None:
    """Run ``scripts`` (each through ``executescript``) on a freshly opened ``db``, again while
    SQLite says the database is locked, for up to ``timeout`` seconds. Any other error, or
    the lock outlasting ``timeout``, closes ``db`` and raises."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            for script in scripts:
                db.executescript(script)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                db.close()
                raise
        except BaseException:
            db.close()
            raise
        time.sleep(0.01)
