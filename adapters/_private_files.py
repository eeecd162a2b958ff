"""The file-mode rules every on-disk storage follows (reliability S2).

* Directories a storage creates are 0700 and its files 0600, whatever the umask.
* A directory it did not create is never chmod-ed; one that other users can write to
  (group/world-writable, even sticky like /tmp) is refused: whoever can write there can
  replace the store, or plant its lock or journal files.
* Its own files found wider than 0600 are narrowed (and reported by the caller); a file
  of the store owned by another user is refused.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# At import, not on first lock: a forked writer must not pay for it (~60 ms) inside its first write.
import portalocker

from appusers.errors import InsecureStorageError, StorageError, StorageLockTimeoutError

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "check_directory",
    "ensure_directory",
    "exclusive_lock",
    "quarantine_target",
    "repair_file_mode",
]

_logger = logging.getLogger("appusers.storage")

FILE_MODE = 0o600
DIR_MODE = 0o700
_CONTENDED = frozenset({errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK})
_LOCK_POLL_MAX = 0.02  # seconds; OS locks have no timeout, so waiters poll with a capped back-off


def ensure_directory(directory: Path) -> None:
    """Create ``directory`` and missing parents 0700; existing ones are left as they are."""
    missing: list[Path] = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for made in reversed(missing):
        try:
            os.mkdir(made, DIR_MODE)
        except FileExistsError:
            continue  # another process made it first; check_directory looks at the last one
        except OSError as exc:
            raise StorageError(f"could not create the directory {made}: {exc.strerror}") from exc
        os.chmod(made, DIR_MODE)  # ours, just made: mkdir's mode went through the umask


def check_directory(directory: Path) -> None:
    """Refuse a directory other users can write to; never change its mode (it is not ours)."""
    try:
        st = os.stat(directory)
    except OSError as exc:
        raise StorageError(f"could not inspect the directory {directory}: {exc.strerror}") from exc
    mode = stat.S_IMODE(st.st_mode)
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise InsecureStorageError(
            f"the session store directory {directory} is writable by other users (mode {mode:03o}); "
            "they could replace the store or its lock file. Keep the store in a directory of its "
            "own (a storage creates a missing one with mode 700) or remove group/other write access"
        )


def repair_file_mode(path: Path, what: str) -> str | None:
    """Narrow one of the store's own files to 0600. Returns what to report when others could
    read it before, else None; raises InsecureStorageError for a file of another user."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageError(f"could not inspect {path}: {exc.strerror}") from exc
    if st.st_uid != os.geteuid():
        raise InsecureStorageError(f"the session store {what} {path} belongs to another user")
    mode = stat.S_IMODE(st.st_mode)
    if mode == FILE_MODE:
        return None
    try:
        os.chmod(path, FILE_MODE)
    except OSError as exc:
        _logger.warning("could not set the mode of %s from %03o: %s", path, mode, exc.strerror)
        return None
    if not mode & 0o077:
        return None  # too narrow for us to use (e.g. made under umask 0o777): fixed, nothing leaked
    _logger.warning("the session store %s %s had mode %03o; narrowed to %03o", what, path, mode, FILE_MODE)
    return f"{what} mode {mode:03o} narrowed to {FILE_MODE:03o}"


def quarantine_target(path: Path) -> Path:
    """A free ``<name>.corrupt-<UTC timestamp>[-n]`` next to ``path``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    return target


@contextmanager
def exclusive_lock(lock_path: Path, timeout: float, store: Path) -> Iterator[None]:
    """Hold an exclusive OS lock on ``lock_path`` (created 0600), waiting at most ``timeout`` s.

    Through portalocker: ``flock`` on POSIX (per open file, so two instances in one process
    exclude each other too), ``LockFileEx`` on Windows. Blocking: run it in a worker thread.
    """
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    except OSError as exc:
        raise StorageError(f"could not open the lock file {lock_path}: {exc.strerror}") from exc
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != FILE_MODE:
            os.fchmod(fd, FILE_MODE)  # ours: just made through the umask, or repaired at open
        flags = portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while True:
            try:
                portalocker.lock(fd, flags)
                break
            except portalocker.LockException as exc:
                # Contention is AlreadyLocked in recent portalocker, a LockException caused by
                # EAGAIN/EACCES in older ones; anything else is a real failure.
                cause = exc.__cause__
                contended = isinstance(exc, portalocker.AlreadyLocked) or (
                    isinstance(cause, OSError) and cause.errno in _CONTENDED
                )
                if not contended:
                    raise StorageError(f"could not lock {lock_path}: {type(exc).__name__}") from None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StorageLockTimeoutError(
                    f"another writer held the lock on the session store {store} for more than {timeout:g} s"
                )
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, _LOCK_POLL_MAX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
