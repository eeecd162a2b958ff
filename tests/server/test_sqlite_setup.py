"""Processes opening a fresh SQLite file at once (``--workers N`` on a new data directory).

Switching a file to WAL from two connections at once makes SQLite fail one of them with
"database is locked" at once, busy timeout or not; ``set_up`` tries again. Real files, real
connections, threads released by the sqlite3 module's C code to run at the same time.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from appusers.server._sqlite_counters import SqliteCounters
from appusers.server._sqlite_setup import set_up
from appusers.server._sqlite_store import SqliteUserStore
from appusers.server.documents._engine import Engine


def _at_once(open_one: Callable[[Path], object], path: Path, rounds: int = 25, width: int = 4) -> list[str]:
    """Open ``path`` from ``width`` threads at the same moment, ``rounds`` times over fresh
    files; the errors raised."""
    errors: list[str] = []
    for n in range(rounds):
        target = path / f"round{n}"
        target.mkdir()
        barrier = threading.Barrier(width)

        def one(target: Path = target, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                open_one(target)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=one) for _ in range(width)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return errors


def test_set_up_switches_a_fresh_file_to_wal_from_many_connections_at_once(tmp_path: Path) -> None:
    def open_one(directory: Path) -> None:
        db = sqlite3.connect(directory / "f.sqlite3", isolation_level=None, timeout=30)
        try:
            set_up(db, "PRAGMA journal_mode=WAL", "CREATE TABLE IF NOT EXISTS t (x)")
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            db.close()

    assert _at_once(open_one, tmp_path) == []


def test_each_store_opens_a_fresh_directory_from_many_workers_at_once(tmp_path: Path) -> None:
    def open_all(directory: Path) -> None:
        SqliteCounters(directory / "throttle.sqlite3")._db.close()
        Engine(directory / "documents", shared=True)._db.close()
        store = SqliteUserStore(directory / "users.sqlite3")
        store._db.close()

    assert _at_once(open_all, tmp_path, rounds=10) == []


def test_any_other_error_closes_the_connection_and_raises_at_once(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "f.sqlite3", isolation_level=None)
    with pytest.raises(sqlite3.OperationalError, match="syntax"):
        set_up(db, "PRAGMA journal_mode=WAL", "CREATE TABLE (")
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        db.execute("SELECT 1")


def test_a_lock_held_past_the_timeout_closes_the_connection_and_raises(tmp_path: Path) -> None:
    path = tmp_path / "f.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        db = sqlite3.connect(path, isolation_level=None, timeout=0.01)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            set_up(db, "PRAGMA journal_mode=WAL", timeout=0.1)
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            db.execute("SELECT 1")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
