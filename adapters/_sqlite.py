"""SQLiteStorage: one row per key in a private SQLite database, for many users.

* A write touches only the rows it changes (one transaction per ``update``), so a token
  refresh of one user among 100,000 costs one small write, not a rewrite of every user.
* WAL journal, ``synchronous=FULL``: a committed write survives a crash or a power cut;
  readers never wait for a writer. Writers of several processes take turns through
  SQLite's own locking (``BEGIN IMMEDIATE``), waiting at most ``lock_timeout`` before
  :class:`~appusers.errors.StorageLockTimeoutError`.
* The database, its ``-wal`` and ``-shm`` files are 0600 (SQLite gives the journal files
  the database's mode); directories it creates are 0700; a directory other users can
  write to is refused (:mod:`appusers.adapters._private_files`).
* Keys are TEXT (a prefix is one index range); values are TEXT, or a UTF-8 BLOB for the rare
  string SQLite cannot hold as TEXT (a lone surrogate), so restore builds its dict in one
  pass. A key with a lone surrogate is refused (InvalidArgumentError).
* A file that is not this storage's database (not SQLite, damaged, another application's,
  another schema version) is moved aside with its journal files to
  ``<name>.corrupt-<UTC timestamp>``, the storage starts empty and a ``"quarantined"``
  issue is queued.
* One connection per instance, reopened when the file at the path changed (another process
  quarantined it); :meth:`close` closes it, and so does garbage collection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from appusers.errors import InvalidArgumentError, StorageError, StorageLockTimeoutError
from appusers.storage import StorageIssue

from ._memory import _check_key, _check_value, _checked_changes
from ._private_files import (
    FILE_MODE,
    check_directory,
    ensure_directory,
    exclusive_lock,
    quarantine_target,
    repair_file_mode,
)
from ._sqlite_locked import while_locked

__all__ = ["SQLiteStorage"]

_logger = logging.getLogger("appusers.storage")

# PRAGMA application_id: marks the file as ours ("apUS"); user_version: our schema version.
_APPLICATION_ID = 0x61705553
_SCHEMA_VERSION = 1
_PAGE_SIZE = 16384
_SIDECARS = ("-wal", "-shm", "-journal")
_T = TypeVar("_T")


class _Corrupt(Exception):
    """The file is not this storage's database; the message says why, never what it holds."""


class SQLiteStorage:
    """A :class:`~appusers.storage.Storage` in a SQLite database, one row per key.

    ``path`` is the database file; its directory is created 0700 if missing. Nothing is
    touched until the first operation or :meth:`open`. Values contain tokens: they are
    never logged, and ``repr`` shows the path only. Keep the file on a local disk: SQLite's
    locking is unreliable on network filesystems.
    """

    def __init__(self, path: str | os.PathLike[str], *, lock_timeout: float = 10.0) -> None:
        if not lock_timeout >= 0:
            raise InvalidArgumentError("lock_timeout must be a number of seconds >= 0")
        self._path = Path(os.fspath(path)).absolute()
        self._lock_timeout = float(lock_timeout)
        self._opened = False
        self._open_lock = asyncio.Lock()
        self._issues: list[StorageIssue] = []
        self._issues_lock = threading.Lock()
        # One connection per instance, used from worker threads one at a time.
        self._db: sqlite3.Connection | None = None
        self._db_inode = 0
        self._db_lock = threading.RLock()

    def __repr__(self) -> str:
        return f"SQLiteStorage({str(self._path)!r})"

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    async def open(self) -> None:
        """Prepare the store now: create the directory and the database, repair modes,
        quarantine a foreign or damaged file. Every operation does this on first use."""
        if self._opened:
            return
        async with self._open_lock:
            if not self._opened:
                await asyncio.to_thread(self._open_sync)
                self._opened = True

    async def get(self, key: str) -> str | None:
        """The value stored under ``key``, or None."""
        _check_key(key)
        stored = _key(key)

        def query(db: sqlite3.Connection) -> str | None:
            row = db.execute("SELECT value FROM items WHERE key = ?", (stored,)).fetchone()
            return None if row is None else _value_of(row[0])

        return await self._run(query)

    async def items(self, prefix: str) -> Mapping[str, str]:
        """Every key starting with ``prefix`` and its value (a new dict), from one query."""
        _check_key(prefix)
        start = _key(prefix)
        end = _successor(start)

        def query(db: sqlite3.Connection) -> dict[str, str]:
            if end is not None:
                cursor = db.execute("SELECT key, value FROM items WHERE key >= ? AND key < ?", (start, end))
            elif start:
                cursor = db.execute("SELECT key, value FROM items WHERE key >= ?", (start,))
            else:
                cursor = db.execute("SELECT key, value FROM items")
            return _rows_to_dict(cursor.fetchall())

        return await self._run(query)

    async def set(self, key: str, value: str) -> None:
        """Store ``value`` under ``key`` (one transaction)."""
        _check_key(key)
        _check_value(value)
        await self._write({key: value})

    async def remove(self, key: str) -> None:
        """Forget ``key``; no error if it is absent."""
        _check_key(key)
        await self._write({key: None})

    async def update(self, changes: Mapping[str, str | None]) -> None:
        """Apply several sets (a string) and removes (None) as one transaction."""
        checked = _checked_changes(changes)
        if checked:
            await self._write(checked)

    async def transact(self, fn: Callable[[Mapping[str, str]], Mapping[str, str | None]]) -> None:
        """Read-modify-write in one write transaction: ``fn(current)`` returns the changes to
        apply, and no other process or task writes in between. ``fn`` runs in a worker thread
        with a read-only view of every item; it must be quick and must not touch this storage."""

        def run(db: sqlite3.Connection) -> None:
            with _write_transaction(db):
                current = _rows_to_dict(db.execute("SELECT key, value FROM items").fetchall())
                changes = _checked_changes(fn(MappingProxyType(current)))
                _apply_changes(db, changes)

        await self._run(run)

    def drain_issues(self) -> list[StorageIssue]:
        """Repairs made since the last call (quarantines, modes), oldest first."""
        with self._issues_lock:
            issues, self._issues = self._issues, []
        return issues

    # -- plumbing -------------------------------------------------------------------------

    async def _write(self, changes: dict[str, str | None]) -> None:
        def run(db: sqlite3.Connection) -> None:
            with _write_transaction(db):
                _apply_changes(db, changes)

        await self._run(run)

    async def _run(self, operation: Callable[[sqlite3.Connection], _T]) -> _T:
        await self.open()
        return await asyncio.to_thread(self._run_sync, operation)

    def _run_sync(self, operation: Callable[[sqlite3.Connection], _T]) -> _T:
        with self._db_lock:
            try:
                return self._with_db(operation)
            except _Corrupt as exc:
                reason = str(exc)
            # Damaged since we opened it (or replaced by something else): move it aside, start
            # empty and run the operation once more on the fresh database.
            self._quarantine_if_still_corrupt(reason)
            return self._with_db(operation)

    def _with_db(self, operation: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``operation`` on the cached connection (caller holds _db_lock), reconnecting
        when the file at the path is no longer the one it has open (quarantined, replaced)."""
        try:
            current = os.stat(self._path).st_ino
        except FileNotFoundError:
            self._create_file()
            current = os.stat(self._path).st_ino
        except OSError as exc:
            raise StorageError(f"could not use the session store {self._path}: {exc.strerror}") from exc
        if self._db is not None and self._db_inode != current:
            self._close_db()
        db = self._db
        try:
            if db is None:
                db = sqlite3.connect(
                    self._path, timeout=self._lock_timeout, isolation_level=None, check_same_thread=False
                )
                self._db, self._db_inode = db, current
                _prepare(db, self._lock_timeout)
            return operation(db)
        except sqlite3.OperationalError as exc:
            if str(exc).startswith("no such table"):
                self._close_db()
                raise _Corrupt("the items table is missing") from None
            raise _storage_error(exc, self._path, self._lock_timeout) from None
        except sqlite3.DatabaseError as exc:
            # Not an I/O or locking problem: the bytes are not a healthy database.
            self._close_db()
            raise _Corrupt(f"damaged database ({_reason(exc)})") from None
        except _Corrupt:
            self._close_db()
            raise

    def _close_db(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()

    def close(self) -> None:
        """Close the cached connection (the next operation opens another). Also done when the
        storage is garbage-collected."""
        with self._db_lock:
            self._close_db()

    def __del__(self) -> None:
        # Not under _db_lock: nothing else can hold a reference to a collected storage.
        db = getattr(self, "_db", None)
        if db is not None:
            with contextlib.suppress(Exception):
                db.close()

    def _open_sync(self) -> None:
        ensure_directory(self._path.parent)
        check_directory(self._path.parent)
        for suffix in ("", *_SIDECARS):
            path = self._path.with_name(self._path.name + suffix)
            detail = repair_file_mode(path, "file")
            if detail is not None:
                self._report("permissions-repaired", detail, path)
        self._create_file()
        self._run_sync(lambda db: None)  # connects and checks the schema; quarantines if needed

    def _create_file(self) -> None:
        """Create the database file 0600 before SQLite does (it would follow the umask)."""
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
        except FileExistsError:
            return
        except OSError as exc:
            raise StorageError(f"could not create the session store {self._path}: {exc.strerror}") from exc
        try:
            os.fchmod(fd, FILE_MODE)
        finally:
            os.close(fd)

    def _quarantine_if_still_corrupt(self, reason: str) -> None:
        # Only one process moves the file, and only after looking again under the lock: another
        # one may have quarantined it and made a fresh database meanwhile. Caller holds _db_lock.
        self._close_db()
        lock_path = self._path.with_name(self._path.name + ".lock")
        with exclusive_lock(lock_path, self._lock_timeout, self._path):
            try:
                self._with_db(lambda db: db.execute("SELECT count(*) FROM items").fetchone())
                return  # healthy now: someone else already replaced it
            except _Corrupt:
                pass
            self._close_db()
            target = quarantine_target(self._path)
            try:
                os.replace(self._path, target)
                os.chmod(target, FILE_MODE)  # it may hold tokens, whoever wrote it
                for suffix in _SIDECARS:
                    with contextlib.suppress(FileNotFoundError):
                        os.replace(self._path.with_name(self._path.name + suffix), f"{target}{suffix}")
            except OSError as exc:
                raise StorageError(
                    f"the session store {self._path} is damaged ({reason}) and could not be moved "
                    f"aside: {exc.strerror}"
                ) from exc
            self._create_file()
            self._with_db(lambda db: None)
        _logger.warning("the session store %s was damaged (%s); moved to %s", self._path, reason, target)
        self._report(
            "quarantined",
            f"the store was damaged ({reason}); it was moved aside and the storage starts empty",
            target,
        )

    def _report(self, kind: str, detail: str, path: Path) -> None:
        with self._issues_lock:
            self._issues.append(StorageIssue(kind=kind, detail=detail, path=str(path)))


def _prepare(db: sqlite3.Connection, lock_timeout: float) -> None:
    """Check that the database is ours and current, or make an empty file ours. Raises _Corrupt."""
    app_id = db.execute("PRAGMA application_id").fetchone()[0]
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if app_id == 0 and version == 0:
        tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if tables:
            raise _Corrupt("another application's database")
        # Only takes effect on a database nothing has been written to yet. Restore reads every
        # row: with 16 KiB pages it reads a quarter as many pages as with SQLite's default 4 KiB
        # (about a fifth less CPU for 100,000 users); a one-user write is still one page or two.
        db.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
        with _write_transaction(db):
            # Re-check inside the write lock: another process may have just created it.
            if db.execute("PRAGMA application_id").fetchone()[0] == 0:
                db.execute("CREATE TABLE items (key TEXT PRIMARY KEY, value NOT NULL) WITHOUT ROWID")
                db.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
                db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        app_id, version = _APPLICATION_ID, _SCHEMA_VERSION
    if app_id != _APPLICATION_ID:
        raise _Corrupt("another application's database")
    if version != _SCHEMA_VERSION:
        raise _Corrupt(f"unsupported schema version {version}, expected {_SCHEMA_VERSION}")
    _to_wal(db, lock_timeout)
    db.execute("PRAGMA synchronous = FULL")


def _to_wal(db: sqlite3.Connection, lock_timeout: float) -> None:
    """Switch the file to WAL; again while another process opening it switches it too
    (see :mod:`._sqlite_locked`), for up to ``lock_timeout`` s. (Seen in CI: one of 4
    processes failed to open a fresh store.)"""

    def switch() -> None:
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.execute("PRAGMA journal_mode = WAL")

    while_locked(switch, timeout=lock_timeout)


@contextlib.contextmanager
def _write_transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("PRAGMA synchronous = FULL")  # per connection; every write must reach the disk
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _apply_changes(db: sqlite3.Connection, changes: Mapping[str, str | None]) -> None:
    upserts = [(_key(k), _value(v)) for k, v in changes.items() if v is not None]
    removals = [(_key(k),) for k, v in changes.items() if v is None]
    if upserts:
        # Unchanged values (e.g. the index of users when only one user's tokens changed)
        # are left alone: no page is written for them.
        db.executemany(
            "INSERT INTO items (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value WHERE value IS NOT excluded.value",
            upserts,
        )
    if removals:
        db.executemany("DELETE FROM items WHERE key = ?", removals)


def _key(key: str) -> str:
    """Keys are TEXT, so a prefix is one index range; SQLite cannot hold a lone surrogate as TEXT."""
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError("SQLiteStorage keys must be valid Unicode (no lone surrogates)") from None
    return key


def _value(value: str) -> str | bytes:
    # TEXT comes back as str with no per-row work; the rare value SQLite cannot hold as TEXT
    # (a lone surrogate) is stored as a BLOB and decoded when read.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")
    return value


def _value_of(stored: str | bytes) -> str:
    return stored if isinstance(stored, str) else stored.decode("utf-8", "surrogatepass")


def _rows_to_dict(rows: list[Any]) -> dict[str, str]:
    found: dict[str, Any] = dict(rows)  # one C-level pass: restore reads every user this way
    if not set(map(type, found.values())) <= {str}:
        found = {k: _value_of(v) for k, v in found.items()}
    return found


def _successor(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (None: no bound).

    TEXT compares as UTF-8 bytes, i.e. by code point."""
    trimmed = prefix.rstrip("\U0010ffff")
    if not trimmed:
        return None
    last = ord(trimmed[-1]) + 1
    if 0xD800 <= last <= 0xDFFF:
        last = 0xE000  # surrogates are not characters SQLite can hold
    return trimmed[:-1] + chr(last)


def _reason(exc: sqlite3.Error) -> str:
    # SQLite's messages name the problem, never the data ("database is locked", "disk I/O error").
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _storage_error(exc: sqlite3.OperationalError, path: Path, timeout: float) -> StorageError:
    reason = _reason(exc)
    if "locked" in reason or "busy" in reason:
        return StorageLockTimeoutError(
            f"another writer held the lock on the session store {path} for more than {timeout:g} s"
        )
    return StorageError(f"could not use the session store {path}: {reason}")
