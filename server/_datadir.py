"""The server's data directory: its files 0600 and its directories 0700 under any umask (S21).

The server's own entries (the names in :data:`SERVER_ENTRIES` and everything below them) are
created with explicit modes before anything writes to them and narrowed again once the stores
are open, so neither the umask nor a mode found on disk decides who can read them.

The data directory itself is treated as the server's when it is new, empty or holds only
server entries: it is made 0700 (an existing wider one is narrowed, with a warning naming the
old mode). The SDK never changes the mode of a directory it did not create (issue 11); the
server differs on purpose, because its data directory holds password hashes and signing keys
and is named for it (``--data``). A directory that also holds other files is not the server's
to narrow: it is left alone with a warning, unless others can write to it (without the sticky
bit), where they could swap the server's files: then the server refuses to start.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

__all__ = ["SERVER_ENTRIES", "narrow", "prepare"]

log = logging.getLogger("appusers.server")

#: What the server keeps in its data directory (directories are narrowed recursively).
SERVER_ENTRIES = frozenset(
    {
        "users.sqlite3",
        "users.sqlite3-wal",
        "users.sqlite3-shm",
        "users.sqlite3-journal",
        "throttle.sqlite3",
        "throttle.sqlite3-wal",
        "throttle.sqlite3-shm",
        "throttle.sqlite3-journal",
        "documents",
        "outbox.jsonl",
    }
)
_FILES = ("users.sqlite3", "documents/documents.sqlite3", "documents/LOCK")
_DIRS = ("documents",)


def prepare(path: Path) -> None:
    """Create or check ``path`` and pre-create the server's entries with private modes."""
    if not path.exists():
        path.mkdir(parents=True, mode=0o700)
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(f"data directory {path} is not a directory")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise PermissionError(f"data directory {path} belongs to another user")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        foreign = sorted(set(os.listdir(path)) - SERVER_ENTRIES)
        if not foreign:
            os.chmod(path, 0o700)
            if mode != 0o700 and _has_entries(path):
                log.warning("data directory %s was %04o; narrowed to 0700", path, mode)
        elif mode & 0o002 and not mode & stat.S_ISVTX:
            raise PermissionError(
                f"data directory {path} is writable by every user ({mode:04o}) and holds other files;"
                " use a directory of its own"
            )
        else:
            log.warning(
                "data directory %s is %04o and holds other files (%s...); its mode is left as is,"
                " the server's own files in it are private",
                path,
                mode,
                foreign[0],
            )
    for name in _DIRS:
        sub = path / name
        if not sub.exists():
            sub.mkdir(mode=0o700)
    for name in _FILES:
        os.close(os.open(path / name, os.O_CREAT | os.O_WRONLY, 0o600))
    narrow(path)


def narrow(path: Path) -> list[Path]:
    """Make the server's entries under ``path`` 0600 (files) / 0700 (directories); returns what changed."""
    changed: list[Path] = []

    def fix(entry: Path, want: int) -> None:
        st = os.lstat(entry)
        if stat.S_ISLNK(st.st_mode):
            return  # never follow a link out of the data directory
        if stat.S_IMODE(st.st_mode) != want:
            os.chmod(entry, want)
            changed.append(entry)

    for name in SERVER_ENTRIES:
        entry = path / name
        if not os.path.lexists(entry):
            continue
        if entry.is_dir() and not entry.is_symlink():
            fix(entry, 0o700)
            for root, dirs, files in os.walk(entry):
                for d in dirs:
                    fix(Path(root) / d, 0o700)
                for f in files:
                    fix(Path(root) / f, 0o600)
        else:
            fix(entry, 0o600)
    return changed


def _has_entries(path: Path) -> bool:
    """Whether the directory holds anything (the scandir iterator is closed either way)."""
    with os.scandir(path) as entries:
        return any(True for _ in entries)
