"""Throttling counters in a SQLite file, shared by the worker processes of one server.

A single ``appusers serve`` keeps its counters in memory (:class:`MemoryCounters`): one
process sees every attempt. With ``--workers N`` each attempt reaches one of N processes, so
the counters live in ``<data>/throttle.sqlite3`` instead: the same operations, each one
short transaction, so an address guessing through several workers is counted once per
guess whichever worker answered. A file of its own, not a table in ``users.sqlite3``: every
failed log-in writes here, and writes to the users file are what other workers watch to
invalidate their caches.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from ._sqlite_setup import set_up

__all__ = ["SqliteCounters"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (
    name TEXT NOT NULL, key TEXT NOT NULL, failures INTEGER NOT NULL, last REAL NOT NULL,
    expires REAL NOT NULL, PRIMARY KEY (name, key)
);
CREATE INDEX IF NOT EXISTS counters_expires ON counters (expires);
CREATE TABLE IF NOT EXISTS buckets (
    name TEXT NOT NULL, key TEXT NOT NULL, tokens REAL NOT NULL, last REAL NOT NULL,
    expires REAL NOT NULL, PRIMARY KEY (name, key)
);
CREATE INDEX IF NOT EXISTS buckets_expires ON buckets (expires);
"""


class SqliteCounters:
    """:class:`~appusers.server._store.Counters` in one SQLite file (wall-clock seconds).

    Used from the event loop thread like the SQLite user store: each statement is an
    indexed lookup or write. Expired rows read as absent and are swept now and then.
    """

    #: Seconds between sweeps of expired rows (per process).
    SWEEP_EVERY = 60.0

    def __init__(self, path: Path):
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._path = path
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        # Workers open a fresh file at the same moment (see ._sqlite_setup).
        set_up(self._db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL", _SCHEMA)
        self._swept = 0.0

    def __repr__(self) -> str:
        return f"SqliteCounters({str(self._path)!r})"

    def close(self) -> None:
        self._db.close()

    @staticmethod
    def clock() -> float:
        return time.time()

    def _sweep(self, now: float) -> None:
        if now - self._swept < self.SWEEP_EVERY:
            return
        self._swept = now
        self._db.execute("DELETE FROM counters WHERE expires < ?", (now,))
        self._db.execute("DELETE FROM buckets WHERE expires < ?", (now,))

    async def read(
        self, lookups: Sequence[tuple[str, str, float]], now: float
    ) -> list[tuple[int, float] | None]:
        out: list[tuple[int, float] | None] = []
        for table, key, window in lookups:
            row = self._db.execute(
                "SELECT failures, last FROM counters WHERE name=? AND key=?", (table, key)
            ).fetchone()
            out.append((int(row[0]), float(row[1])) if row is not None and now - row[1] <= window else None)
        return out

    async def fail(self, updates: Sequence[tuple[str, str, float]], now: float) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for table, key, window in updates:
                self._db.execute(
                    "INSERT INTO counters (name, key, failures, last, expires) VALUES (?, ?, 1, ?, ?)"
                    " ON CONFLICT (name, key) DO UPDATE SET"
                    " failures = CASE WHEN expires < excluded.last THEN 1 ELSE failures + 1 END,"
                    " last = excluded.last, expires = excluded.expires",
                    (table, key, now, now + window),
                )
            self._sweep(now)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    async def mark(self, table: str, key: str, now: float, window: float) -> None:
        self._db.execute(
            "INSERT INTO counters (name, key, failures, last, expires) VALUES (?, ?, 0, ?, ?)"
            " ON CONFLICT (name, key) DO UPDATE SET failures = 0, last = excluded.last,"
            " expires = excluded.expires",
            (table, key, now, now + window),
        )

    async def clear(self, table: str, key: str) -> None:
        self._db.execute("DELETE FROM counters WHERE name=? AND key=?", (table, key))

    async def take(self, table: str, key: str, capacity: float, rate: float, now: float) -> float:
        full_after = capacity / rate if rate > 0 else 365 * 24 * 3600.0
        # Read and spend in one write transaction: two workers cannot both spend the last token.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            row = self._db.execute(
                "SELECT tokens, last FROM buckets WHERE name=? AND key=?", (table, key)
            ).fetchone()
            level = capacity if row is None else min(capacity, row[0] + (now - row[1]) * rate)
            if level < 1:
                self._db.execute("COMMIT")
                return max((1 - level) / rate, 0.001) if rate > 0 else full_after
            self._db.execute(
                "INSERT INTO buckets (name, key, tokens, last, expires) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (name, key) DO UPDATE SET tokens = excluded.tokens, last = excluded.last,"
                " expires = excluded.expires",
                (table, key, level - 1, now, now + full_after),
            )
            self._sweep(now)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return 0.0
