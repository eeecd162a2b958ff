"""WAL checkpoints of the users file, off the event loop.

Why: SQLite's auto-checkpoint runs inside the commit that pushes the WAL past 1,000 pages,
on the committing connection: for the server, inside a group commit on the event loop. It
copies the logged pages into the database and fsyncs both files, a stall of several
milliseconds felt by every request in flight (issue 10: anonymous log-in p99 was 2.1-2.6x
p50 with it, 1.1-1.7x without it). So the serving connection turns auto-checkpoints off
and this thread, on a connection of its own, checkpoints instead:

* every :attr:`Checkpointer.period` seconds, when some connection committed since the
  last look, a ``PASSIVE`` checkpoint: it never takes the write lock, so the loop's commits
  go on meanwhile (SQLite's ``sqlite3`` module lets go of the GIL while it works);
* a ``PASSIVE`` checkpoint cannot start the log over while commits keep arriving (the
  log restarts from its beginning only at a commit that finds every frame copied), so
  under a steady stream of log-ins the file would grow without bound. Past
  :attr:`Checkpointer.limit` frames, after a few more ``PASSIVE`` passes to catch up, a
  ``RESTART`` checkpoint takes the write lock to copy the last few frames and sync, and
  the next commit writes from the file's start again: the loop waits for that in its
  busy handler, a few milliseconds every ``limit`` frames instead of a full checkpoint
  every 1,000. ``TRUNCATE`` instead once a pinned log (below) grew the file past twice
  the limit, to give the space back;
* its connection's busy timeout is 0: a checkpoint that would wait for a writer or a
  reader (another process holding a read transaction open) turns ``PASSIVE`` at once
  rather than holding the write lock while it waits; it is tried again at the next tick,
  and the log says when a reader keeps the WAL from being emptied.

Every worker of ``--workers N`` runs one over the same file; SQLite lets one checkpoint
run at a time and the others return "busy", harmlessly. Other programs opening the file
(``appusers users``, a backup) keep their own auto-checkpoints. A crash loses nothing a
commit answered: in WAL mode a commit is durable once its frames are in the log, whether
or not they were copied yet.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

__all__ = ["Checkpointer"]

log = logging.getLogger("appusers.server")

#: PASSIVE passes at most before a RESTART, and the new frames that are few enough.
_CATCH_UP = 8
_FEW = 64
#: Bytes per WAL frame at SQLite's default 4 KiB pages (the header is 24 bytes).
_PAGE_BYTES = 4096 + 24
#: Seconds between two warnings about the same trouble (a stuck checkpoint repeats every tick).
_WARN_EVERY = 60.0


class Checkpointer:
    """A thread checkpointing one SQLite database's WAL; :meth:`stop` ends it."""

    def __init__(self, path: Path, *, period: float = 0.5, limit: int = 8192):
        self._path = path
        #: Seconds between looks at the database.
        self.period = period
        #: Frames in the log past which it is emptied (with the write lock) rather than copied.
        self.limit = limit
        #: Looks at the database, checkpoints run (tests look at these).
        self.ticks = 0
        self.passes = 0
        self.restarts = 0
        #: Frames in the log after the last checkpoint (-1 before the first).
        self.frames = -1
        self._stopping = threading.Event()
        self._db: sqlite3.Connection | None = None
        self._version = -1
        self._warned: dict[str, float] = {}
        self._thread = threading.Thread(target=self._run, name="appusers-checkpoint", daemon=True)

    def __repr__(self) -> str:
        return f"Checkpointer({str(self._path)!r})"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Checkpoint one last time, end the thread and close its connection (idempotent)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        self._close()

    def _run(self) -> None:
        try:
            while not self._stopping.wait(self.period):
                self._tick(final=False)
            self._tick(final=True)
        finally:
            self._close()

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _tick(self, *, final: bool) -> None:
        self.ticks += 1
        try:
            self._checkpoint(final=final)
        except sqlite3.Error as exc:
            if getattr(exc, "sqlite_errorname", "").startswith("SQLITE_BUSY"):
                return  # another connection is recovering or checkpointing: next tick
            # SQLite's message names the cause (locked, read-only, I/O error, disk full) and
            # never the file's contents. The connection is opened afresh next time.
            self._warn("error", "WAL checkpoint of %s failed, retrying: %s", self._path, exc)
            self._close()
            self._version = -1

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, isolation_level=None, timeout=0, check_same_thread=False)
        try:
            # Checkpoints copy pages and fsync under this connection's setting: NORMAL
            # syncs the database before the log may start over, as the serving one would.
            db.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            db.close()
            raise
        return db

    def _checkpoint(self, *, final: bool) -> None:
        if self._db is None:
            self._db = self._connect()
        db = self._db
        version = int(db.execute("PRAGMA data_version").fetchone()[0])
        if version == self._version and not final and self.frames < self.limit:
            return  # nothing committed since the last pass
        self._version = version
        busy, frames, _copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.passes += 1
        if frames >= self.limit or final:
            # Copies only what came in since the pass above, then empties the file. With
            # no busy timeout it gives up at once if a writer or reader is in the way.
            busy, frames, _copied = self._restart(db, frames)
        self.frames = frames
        if busy and frames >= self.limit:
            self._warn(
                "reader",
                "WAL of %s holds %d frames: another connection's read transaction keeps it"
                " from being emptied; retrying",
                self._path,
                frames,
            )

    def _restart(self, db: sqlite3.Connection, frames: int) -> tuple[int, int, int]:
        # The write lock is held while the frames not yet copied are copied and both files
        # synced: first catch up with PASSIVE passes (each copies what came in during the
        # one before, fewer every time) so that little is left to do under the lock.
        for _ in range(_CATCH_UP):
            _busy, log_frames, _copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if log_frames - frames <= _FEW:
                break
            frames = log_frames
        result = (1, frames, -1)
        # A commit on the loop holds the write lock for well under a millisecond: a few
        # quick retries get in between two of them.
        for _ in range(5):
            result = db.execute(f"PRAGMA wal_checkpoint({self._mode()})").fetchone()
            if not result[0]:
                self.restarts += 1
                return (0, 0, 0)  # RESTART reports the frames the log had before it
            time.sleep(0.001)
        return result

    def _mode(self) -> str:
        """RESTART, which keeps the file for the next frames to overwrite; TRUNCATE (which
        costs the truncation under the write lock) when a long reader let it grow past
        twice the limit."""
        try:
            size = os.path.getsize(f"{self._path}-wal")
        except OSError:
            return "RESTART"
        return "TRUNCATE" if size > 2 * self.limit * _PAGE_BYTES else "RESTART"

    def _warn(self, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._warned.get(kind, -_WARN_EVERY) >= _WARN_EVERY:
            self._warned[kind] = now
            log.warning(message, *args)
