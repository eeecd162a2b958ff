"""Group commit: log-in writes that arrive during one turn of the event loop share one transaction.

Why: a new user's log-in writes three rows, and alone its commit (WAL frames, file locks)
costs as much CPU as everything else the store does for it (issue 10: about 95 µs of store
CPU per log-in alone, 35 µs in batches of 16). Under load many log-ins are in flight at
once, so :meth:`GroupCommit.write` queues the statements and the queue is committed at the
start of the next loop turn (``loop.call_soon``), in one ``BEGIN IMMEDIATE`` ... ``COMMIT``.
Each caller's await returns only once the commit holding its rows is done, so an answered
log-in is exactly as durable as with a commit of its own (the connection's setting: WAL with
``synchronous=NORMAL``, a crash of the process loses nothing committed, a power cut may lose
the last commits). A lone log-in waits one loop turn more, nothing else.

Failures never leave half of a write:

* a constraint violation (a concurrent first log-in took the identity, a user deleted
  meanwhile) belongs to one write: the batch is rolled back and its writes are committed
  again one transaction each, so the others still succeed and the violating one gets the
  error (:class:`DuplicateError` for a unique key, else SQLite's own);
* any other failure (the file locked by another process past the busy timeout, a full
  disk, an I/O error) rolls the batch back and fails each of its writes with
  :class:`StoreUnavailableError` (answered 503, retryable).

A write whose caller was cancelled before the commit is dropped: nobody would answer it.
Writes of one batch must not depend on each other (each is one log-in's rows).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from ._store import DuplicateError, StoreUnavailableError

__all__ = ["GroupCommit", "Statement"]

#: One SQL statement and its parameters.
Statement = tuple[str, Sequence[Any]]
#: Unique-key violations: the row exists already (everything else is not a duplicate).
_DUPLICATE = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})


class _Write:
    __slots__ = ("after", "future", "statements")

    def __init__(
        self,
        statements: Sequence[Statement],
        future: asyncio.Future[None],
        after: Callable[[], None] | None,
    ):
        self.statements = statements
        self.future = future
        self.after = after


class GroupCommit:
    """Batches writes on one SQLite connection (used from its event loop thread only)."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db
        self._queue: list[_Write] = []
        #: Transactions committed so far (tests and benchmarks look at batching through it).
        self.commits = 0

    async def write(
        self, statements: Sequence[Statement], *, after: Callable[[], None] | None = None
    ) -> None:
        """Run ``statements`` in a transaction shared with other writes; return once committed.

        ``after`` runs right after the commit (before any other statement on the connection):
        cache invalidation that must not be skipped if the caller is cancelled meanwhile.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if not self._queue:
            loop.call_soon(self.flush)
        self._queue.append(_Write(statements, future, after))
        await future

    def flush(self) -> None:
        """Commit everything queued (also called before the connection closes)."""
        batch = [w for w in self._queue if not w.future.done()]
        self._queue = []
        if not batch:
            return
        try:
            self._commit(batch)
        except sqlite3.IntegrityError:
            for write in batch:  # find the violating write(s): one transaction each
                try:
                    self._commit([write])
                except Exception as exc:
                    _fail(write, _error(exc))
                else:
                    _done(write)
            return
        except Exception as exc:
            for write in batch:
                _fail(write, _error(exc))
            return
        for write in batch:
            _done(write)

    def _commit(self, batch: Sequence[_Write]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for write in batch:
                for sql, params in write.statements:
                    db.execute(sql, params)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self.commits += 1


def _done(write: _Write) -> None:
    if write.after is not None:
        write.after()
    if not write.future.done():
        write.future.set_result(None)


def _fail(write: _Write, exc: BaseException) -> None:
    if not write.future.done():
        write.future.set_exception(exc)


def _error(exc: Exception) -> Exception:
    """What a failed write's caller sees."""
    if isinstance(exc, sqlite3.IntegrityError):
        if getattr(exc, "sqlite_errorname", "") in _DUPLICATE:
            return DuplicateError("already exists")
        return exc
    if isinstance(exc, sqlite3.Error):
        # SQLite's message names the cause (locked, disk full, I/O) and never a secret.
        return StoreUnavailableError(f"user store write failed: {exc}")
    return exc
