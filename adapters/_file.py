"""FileStorage: users kept in one private file that survives crashes and other processes.

Format 2: a header line ``appusers-storage 2 <n> <crc32 of the rest, hex>``, a line holding
a JSON object of the items whose key or value contains a newline (usually ``{}``), then the
other ``n`` items as alternate key and value lines. Start-up reads every user, and one
``split`` of the text makes all keys and values at once (see benchmarks/run.py: several
times faster than parsing JSON); the count and the checksum catch truncation and damage
that a line format would not see. Format 1, ``{"format": "appusers-storage", "version": 1,
"items": {key: value}}``, is still read; the next write migrates it to format 2.

* Writes are atomic: a temp file in the same directory is written, flushed and fsynced,
  renamed over the store with ``os.replace``, then the directory is fsynced. A writer
  killed at any instant leaves either the old or the new store, plus at worst an orphan
  temp file (``.<name>.tmp-<random>``), which the next open removes.
* Read-modify-write runs under a ``portalocker`` lock (``flock`` on POSIX, ``LockFileEx`` on
  Windows) on a sibling ``<name>.lock`` file, so several processes never lose each other's
  updates; waits are bounded by ``lock_timeout`` and raise
  :class:`~appusers.errors.StorageLockTimeoutError`.
* Blocking work (lock waits, reads of a changed file, writes, fsyncs) runs in a worker
  thread, so the event loop never stalls on the disk or on another process.
* Files are created 0600 and the directories it creates 0700, whatever the umask; a wider
  mode found on its own files is narrowed and reported as a ``"permissions-repaired"``
  :class:`StorageIssue`. It never changes the mode of a directory it did not create: a
  directory other users can write to (group/world-writable, even sticky like /tmp) is
  refused with :class:`~appusers.errors.InsecureStorageError`, since whoever can write
  there can swap the store or plant its lock file. A read-only directory can still be read.
* A corrupt store (empty, truncated, not JSON, wrong format or version, wrong shape) is
  moved aside to ``<name>.corrupt-<UTC timestamp>``, the storage starts empty and a
  ``"quarantined"`` issue is queued: opening never fails because of corruption.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import secrets
import threading
import zlib
from collections.abc import Callable, Mapping
from itertools import repeat
from pathlib import Path
from types import MappingProxyType

from appusers.errors import InvalidArgumentError, StorageError
from appusers.storage import StorageIssue

from ._memory import _apply, _check_key, _check_value, _checked_changes
from ._private_files import (
    FILE_MODE,
    check_directory,
    ensure_directory,
    exclusive_lock,
    quarantine_target,
    repair_file_mode,
)

__all__ = ["FileStorage"]

_logger = logging.getLogger("appusers.storage")

_FORMAT = "appusers-storage"
_VERSION = 2
_HEADER = _FORMAT.encode() + b" "
_FILE_MODE = FILE_MODE

# What identifies one version of the file: os.replace gives every write a new inode, and
# mtime/size/ctime guard against a freed inode number being reused by a later write.
_StatKey = tuple[int, int, int, int]
# (stat key of the file the items came from or None if there was no file, items).
_Snapshot = tuple[_StatKey | None, dict[str, str]]


class _CorruptError(Exception):
    """The bytes on disk are not a store; the message says why, never what they contain."""


class FileStorage:
    """A :class:`~appusers.storage.Storage` in one JSON file shared safely between processes.

    ``path`` is the store file; its directory should belong to the store (it is kept
    0700). Nothing is touched until the first operation or :meth:`open`. Values contain
    tokens: they are never logged, and ``repr`` shows the path only.
    """

    def __init__(self, path: str | os.PathLike[str], *, lock_timeout: float = 10.0) -> None:
        if not lock_timeout >= 0:
            raise InvalidArgumentError("lock_timeout must be a number of seconds >= 0")
        self._path = Path(os.fspath(path)).absolute()
        self._dir = self._path.parent
        self._lock_path = self._path.with_name(self._path.name + ".lock")
        self._temp_prefix = f".{self._path.name}.tmp-"
        self._lock_timeout = float(lock_timeout)
        self._opened = False
        # Serialises this instance's writers without tying up worker threads; flock does
        # the real exclusion (per open file description, so also between instances).
        self._write_lock = asyncio.Lock()
        self._snapshot: _Snapshot | None = None  # replaced whole, never mutated: thread-safe reads
        self._issues: list[StorageIssue] = []
        self._issues_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FileStorage({str(self._path)!r})"

    @property
    def path(self) -> Path:
        """The store file."""
        return self._path

    @property
    def lock_path(self) -> Path:
        """The sibling file every process flocks around a read-modify-write."""
        return self._lock_path

    async def open(self) -> None:
        """Prepare the store now: create the directory, remove orphan temp files, repair
        modes, quarantine a corrupt file. Every operation does this on first use; call it
        to have :meth:`drain_issues` report before the first read."""
        if self._opened:
            return
        async with self._write_lock:
            if not self._opened:
                await asyncio.to_thread(self._open_sync)
                self._opened = True

    async def get(self, key: str) -> str | None:
        """The value stored under ``key``, or None."""
        _check_key(key)
        return (await self._current()).get(key)

    async def items(self, prefix: str) -> Mapping[str, str]:
        """Every key starting with ``prefix`` and its value (a new dict), from one read of the file."""
        _check_key(prefix)
        current = await self._current()
        # Usually every key has the prefix (one App per store): then the copy is made in C.
        # Restore reads 100,000 users this way, where a filtering loop costs a tenth of it.
        if not prefix or all(map(str.startswith, current, repeat(prefix))):
            return dict(current)
        return {k: v for k, v in current.items() if k.startswith(prefix)}

    async def set(self, key: str, value: str) -> None:
        """Store ``value`` under ``key`` (one atomic write)."""
        _check_key(key)
        _check_value(value)
        await self._write({key: value})

    async def remove(self, key: str) -> None:
        """Forget ``key``; no error if it is absent."""
        _check_key(key)
        await self._write({key: None})

    async def update(self, changes: Mapping[str, str | None]) -> None:
        """Apply several sets (a string) and removes (None) as one atomic write."""
        await self._write(_checked_changes(changes))

    async def transact(self, fn: Callable[[Mapping[str, str]], Mapping[str, str | None]]) -> None:
        """Read-modify-write under the cross-process lock: ``fn(current)`` returns the
        changes to apply, and no other process or task writes in between.

        ``fn`` runs in a worker thread with a read-only view of the latest items; it
        must be quick and must not touch this storage. Cancelling the caller does not
        interrupt a write already under way: the store ends up old or new, never torn.
        """
        await self.open()
        async with self._write_lock:
            await asyncio.to_thread(self._transact_sync, fn)

    def drain_issues(self) -> list[StorageIssue]:
        """Repairs made since the last call (quarantines, orphan temp files, modes), oldest first."""
        with self._issues_lock:
            issues, self._issues = self._issues, []
        return issues

    # -- async plumbing -------------------------------------------------------------

    async def _current(self) -> dict[str, str]:
        await self.open()
        snapshot = self._snapshot
        if snapshot is not None:
            # A stat is microseconds; only a changed file is worth a trip to a thread.
            try:
                unchanged = snapshot[0] == _stat_key(self._path)
            except OSError:
                unchanged = False
            if unchanged:
                return snapshot[1]
        return await asyncio.to_thread(self._read_sync)

    async def _write(self, changes: dict[str, str | None]) -> None:
        await self.open()
        if not changes:
            return
        async with self._write_lock:
            await asyncio.to_thread(self._transact_sync, lambda _current: changes)

    # -- blocking work, always in a worker thread -----------------------------------

    def _open_sync(self) -> None:
        ensure_directory(self._dir)
        check_directory(self._dir)
        self._repair_mode(self._path, "file")
        self._repair_mode(self._lock_path, "lock file")
        if not self._lock_file_is_creatable():
            # A read-only directory can still be read: every write replaces the file whole,
            # so a lock-free read is never torn. Writes fail with a StorageError; nothing is
            # repaired or moved here.
            _logger.info("the session store directory %s is read-only: reading without a lock", self._dir)
            self._load(locked=False)
            return
        with self._flock():
            # Writers only create temp files while holding the lock, so any we see now
            # belongs to a writer that died.
            self._remove_orphans()
            self._load(locked=True)

    def _read_sync(self) -> dict[str, str]:
        return self._load(locked=False)

    def _transact_sync(self, fn: Callable[[Mapping[str, str]], Mapping[str, str | None]]) -> None:
        with self._flock():
            current = self._load(locked=True)
            changes = _checked_changes(fn(MappingProxyType(current)))
            if all(current.get(k) == v for k, v in changes.items()):
                return  # nothing would change: spare the disk a write and an fsync
            new = dict(current)
            _apply(new, changes)
            self._write_locked(new)

    def _load(self, *, locked: bool) -> dict[str, str]:
        """The latest items, re-reading the file only if it changed since the last read."""
        try:
            fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self._snapshot = (None, {})
            return {}
        except OSError as exc:
            raise StorageError(f"could not read the session store {self._path}: {exc.strerror}") from exc
        try:
            # fstat of the open descriptor: the key describes exactly the bytes we read.
            key = _key_of(os.fstat(fd))
            snapshot = self._snapshot
            if snapshot is not None and snapshot[0] == key:
                return snapshot[1]
            data = _read_all(fd)
        except OSError as exc:
            raise StorageError(f"could not read the session store {self._path}: {exc.strerror}") from exc
        finally:
            os.close(fd)
        try:
            items = _parse(data)
        except _CorruptError as exc:
            if not locked:
                # Quarantine only under the lock, after looking again: a writer may have
                # replaced the file meanwhile.
                with self._flock():
                    return self._load(locked=True)
            self._quarantine(str(exc))
            self._snapshot = (None, {})
            return {}
        self._snapshot = (key, items)
        return items

    def _write_locked(self, items: dict[str, str]) -> None:
        payload = _encode(items)
        temp = self._dir / f"{self._temp_prefix}{secrets.token_hex(8)}"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _FILE_MODE)
            try:
                os.fchmod(fd, _FILE_MODE)  # the umask may have narrowed or (0o000) kept it; be exact
                view = memoryview(payload)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, self._path)
        except OSError as exc:
            _unlink_quietly(temp)
            raise StorageError(f"could not write the session store {self._path}: {exc.strerror}") from exc
        self._fsync_dir()
        self._snapshot = (_stat_key(self._path), items)

    def _flock(self) -> contextlib.AbstractContextManager[None]:
        return exclusive_lock(self._lock_path, self._lock_timeout, self._path)

    def _lock_file_is_creatable(self) -> bool:
        """False in a read-only directory (or for a lock file we may not open)."""
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE)
        except PermissionError:
            return False
        except OSError:
            return True  # let _flock report it
        os.close(fd)
        return True

    def _repair_mode(self, path: Path, what: str) -> None:
        detail = repair_file_mode(path, what)
        if detail is not None:
            self._report("permissions-repaired", detail, path)

    def _remove_orphans(self) -> None:
        removed = 0
        try:
            names = os.listdir(self._dir)
        except OSError as exc:
            raise StorageError(f"could not list the directory {self._dir}: {exc.strerror}") from exc
        for name in names:
            if name.startswith(self._temp_prefix):
                _unlink_quietly(self._dir / name)
                removed += 1
        if removed:
            _logger.info("removed %d temp file(s) left in %s by an interrupted write", removed, self._dir)
            self._report(
                "orphan-removed", f"removed {removed} temp file(s) left by an interrupted write", self._dir
            )

    def _quarantine(self, reason: str) -> None:
        target = quarantine_target(self._path)
        try:
            os.replace(self._path, target)
            os.chmod(target, _FILE_MODE)  # it may hold tokens, whoever wrote it
        except OSError as exc:
            raise StorageError(
                f"the session store {self._path} is corrupt ({reason}) and could not be moved "
                f"aside: {exc.strerror}"
            ) from exc
        self._fsync_dir()
        _logger.warning("the session store %s was corrupt (%s); moved to %s", self._path, reason, target)
        self._report(
            "quarantined",
            f"the store was corrupt ({reason}); it was moved aside and the storage starts empty",
            target,
        )

    def _fsync_dir(self) -> None:
        # Makes the rename itself durable: without it a power cut can bring back the old file.
        try:
            fd = os.open(self._dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOTSUP):  # filesystems without directory fsync
                raise StorageError(f"could not sync the directory {self._dir}: {exc.strerror}") from exc
        finally:
            os.close(fd)

    def _report(self, kind: str, detail: str, path: Path) -> None:
        with self._issues_lock:
            self._issues.append(StorageIssue(kind=kind, detail=detail, path=str(path)))


def _key_of(st: os.stat_result) -> _StatKey:
    return (st.st_ino, st.st_mtime_ns, st.st_size, st.st_ctime_ns)


def _stat_key(path: Path) -> _StatKey | None:
    try:
        return _key_of(os.stat(path))
    except FileNotFoundError:
        return None


def _read_all(fd: int) -> bytes:
    # FileIO.readall sizes its buffer from fstat: one allocation, no joining of chunks.
    with open(fd, "rb", buffering=0, closefd=False) as file:
        return file.readall()


def _encode(items: Mapping[str, str]) -> bytes:
    """Format 2 (see the module docstring)."""
    plain: list[str] = []
    quoted: dict[str, str] = {}
    for key, value in items.items():
        if "\n" in key or "\n" in value:
            quoted[key] = value
        else:
            plain.append(key)
            plain.append(value)
    # ensure_ascii: the quoted items are one line of plain ASCII whatever they hold.
    rest = json.dumps(quoted, separators=(",", ":")).encode("ascii") + b"\n"
    if plain:
        plain.append("")  # every line ends with a newline, the last one too
        rest += "\n".join(plain).encode("utf-8", "surrogatepass")  # any str, even a lone surrogate
    return b"%s%d %d %08x\n%s" % (_HEADER, _VERSION, len(plain) // 2, zlib.crc32(rest), rest)


def _parse(data: bytes) -> dict[str, str]:
    if not data:
        raise _CorruptError("the file is empty")
    if data.startswith(_HEADER):
        return _parse_v2(data)
    if data[:1] == b"{":
        return _parse_v1(data)
    raise _CorruptError("not an appusers storage file")


def _parse_v2(data: bytes) -> dict[str, str]:
    # Offsets into one buffer, never slices of it: the store can be tens of MiB.
    end = data.find(b"\n")
    fields = data[:end].split(b" ") if 0 < end < 100 else []
    if len(fields) != 4:
        raise _CorruptError("malformed header")
    _, version, count, crc = fields
    if version != b"%d" % _VERSION:
        shown = version[:10].decode("ascii", "replace")
        raise _CorruptError(f"unsupported format version {shown}, expected {_VERSION}")
    try:
        plain_count, expected_crc = int(count), int(crc, 16)
    except ValueError:
        raise _CorruptError("malformed header") from None
    view = memoryview(data)
    if zlib.crc32(view[end + 1 :]) != expected_crc:
        raise _CorruptError("checksum mismatch: truncated or damaged")
    quoted_end = data.find(b"\n", end + 1)
    if quoted_end < 0:
        raise _CorruptError("item count mismatch")
    try:
        quoted = json.loads(data[end + 1 : quoted_end])
        # One split makes every key and value in a single pass: no per-line work at all.
        lines = str(view[quoted_end + 1 :], "utf-8", "surrogatepass").split("\n")
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise _CorruptError("malformed items") from None
    if not isinstance(quoted, dict) or not all(type(v) is str for v in quoted.values()):
        raise _CorruptError("malformed items")
    if lines.pop() != "" or len(lines) != 2 * plain_count:
        raise _CorruptError("item count mismatch")
    pairs = iter(lines)
    items = dict(zip(pairs, pairs, strict=True))
    if len(items) != plain_count or not quoted.keys().isdisjoint(items):
        raise _CorruptError("duplicate keys")
    items.update(quoted)
    return items


def _parse_v1(data: bytes) -> dict[str, str]:
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise _CorruptError("not UTF-8 text") from None
    except (ValueError, RecursionError):
        raise _CorruptError("not valid JSON, e.g. truncated") from None
    if not isinstance(document, dict) or document.get("format") != _FORMAT:
        raise _CorruptError("not an appusers storage file")
    version = document.get("version")
    if type(version) is not int or version != 1:
        shown = str(version) if type(version) is int else "missing or not an integer"
        raise _CorruptError(f"unsupported format version {shown}, expected {_VERSION}")
    items = document.get("items")
    if not isinstance(items, dict) or not all(type(v) is str for v in items.values()):
        raise _CorruptError("items is not an object of strings")
    return items


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        _logger.warning("could not remove %s: %s", path, exc.strerror)
