"""Setting up a freshly opened SQLite connection when other processes open the same file.

Why: the workers of ``appusers serve --workers N`` open a fresh data directory's files at the
same moment, and each switches them to WAL; SQLite fails one of two concurrent switches with
"database is locked" at once, whatever the busy timeout. The SDK's session store meets the
same race; both try again through :func:`appusers.adapters._sqlite_locked.while_locked`.
"""

from __future__ import annotations

import sqlite3

from appusers.adapters._sqlite_locked import while_locked

__all__ = ["set_up"]


def set_up(db: sqlite3.Connection, *scripts: str, timeout: float = 30.0) -> None:
    """Run ``scripts`` (each through ``executescript``) on a freshly opened ``db``, again while
    SQLite says the database is locked, for up to ``timeout`` seconds. Any other error, or
    the lock outlasting ``timeout``, closes ``db`` and raises."""

    def run() -> None:
        for script in scripts:
            db.executescript(script)

    try:
        while_locked(run, timeout=timeout)
    except BaseException:
        db.close()
        raise
