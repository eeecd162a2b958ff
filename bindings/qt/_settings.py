"""``QSettingsStorage``: the storage seam on ``QSettings``.

Keys are stored hex-encoded (UTF-8) under one group: storage keys contain ``/``-like
separators and parentheses, and QSettings treats ``/`` and ``\\`` as group separators
and is case-insensitive on Windows and macOS, so raw keys would not round-trip
everywhere. Values are plain strings (QSettings keeps them exactly; checked with INI
files). Each write is followed by ``sync()``, which Qt performs as an atomic file
replace, so ``update`` lands all or nothing on disk; a process-wide lock per file makes
each operation atomic between threads of one process (QSettings instances on one file
share an in-process cache).

QSettings does blocking file I/O. Called by the App on its :class:`CoreLoop` thread,
that never blocks the GUI.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path

from PySide6.QtCore import QSettings

from appusers.errors import InvalidArgumentError, StorageError
from appusers.storage import StorageIssue

__all__ = ["QSettingsStorage"]

_locks: dict[str, threading.RLock] = {}
_locks_guard = threading.Lock()


def _lock_for(name: str) -> threading.RLock:
    with _locks_guard:
        return _locks.setdefault(name, threading.RLock())


def _encode(key: str) -> str:
    return "k" + key.encode("utf-8").hex()


def _decode(name: str) -> str | None:
    if not name.startswith("k"):
        return None
    try:
        return bytes.fromhex(name[1:]).decode("utf-8")
    except ValueError:
        return None


def _check_key(key: object) -> None:
    if not isinstance(key, str):
        raise InvalidArgumentError(f"storage keys must be strings, not {type(key).__name__}")


def _check_value(value: object) -> None:
    # The type only: the value may be a token.
    if not isinstance(value, str):
        raise InvalidArgumentError(f"storage values must be strings, not {type(value).__name__}")


class QSettingsStorage:
    """Keeps users in ``QSettings``: an INI file at ``path``, or the platform's native
    settings store for ``organization``/``application`` (the registry on Windows, a
    plist on macOS, an INI file on Linux).

    ::

        storage = QSettingsStorage("~/.config/myapp/users.ini")
        app = App("my-app", storage=storage)

    ``group`` is the settings group the keys live in, so the App's records can share a
    settings file with the rest of an application's settings.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        organization: str | None = None,
        application: str | None = None,
        group: str = "appusers",
    ) -> None:
        if path is None and not organization:
            raise InvalidArgumentError("QSettingsStorage needs a path or an organization name")
        if not group or "/" in group or "\\" in group:
            raise InvalidArgumentError("group must be a non-empty name without slashes")
        if path is not None:
            resolved = Path(path).expanduser()
            resolved.parent.mkdir(parents=True, exist_ok=True)
            self._settings = QSettings(str(resolved), QSettings.Format.IniFormat)
        else:
            assert organization is not None
            self._settings = QSettings(organization, application or "")
        self._group = group
        self._lock = _lock_for(self._settings.fileName())
        self._issues: list[StorageIssue] = []
        if self._settings.status() == QSettings.Status.FormatError:
            self._issues.append(
                StorageIssue("unreadable", "the settings file could not be parsed", self._settings.fileName())
            )

    def __repr__(self) -> str:
        # Never values: they hold tokens.
        return f"QSettingsStorage({self._settings.fileName()!r}, group={self._group!r})"

    @property
    def file_name(self) -> str:
        """Where QSettings keeps the data (a path, or a registry key on Windows)."""
        return self._settings.fileName()

    # -- the Storage protocol ------------------------------------------------------------

    async def get(self, key: str) -> str | None:
        """The value stored under ``key``, or None."""
        _check_key(key)
        with self._lock:
            self._reload()
            return self._read(_encode(key))

    async def set(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``, atomically."""
        _check_key(key)
        _check_value(value)
        await self.update({key: value})

    async def remove(self, key: str) -> None:
        """Forget ``key``; no error if it is absent."""
        _check_key(key)
        await self.update({key: None})

    async def update(self, changes: Mapping[str, str | None]) -> None:
        """Apply several sets and removes as one atomic write."""
        snapshot = dict(changes)  # checked and copied before anything is written
        for key, value in snapshot.items():
            _check_key(key)
            if value is not None:
                _check_value(value)
        if not snapshot:
            return
        with self._lock:
            settings = self._settings
            settings.beginGroup(self._group)
            try:
                for key, value in snapshot.items():
                    if value is None:
                        settings.remove(_encode(key))
                    else:
                        settings.setValue(_encode(key), value)
            finally:
                settings.endGroup()
            self._sync("write")

    async def items(self, prefix: str) -> Mapping[str, str]:
        """Every key starting with ``prefix`` and its value, in one read."""
        _check_key(prefix)
        found: dict[str, str] = {}
        with self._lock:
            self._reload()
            settings = self._settings
            settings.beginGroup(self._group)
            try:
                names = settings.childKeys()
            finally:
                settings.endGroup()
            for name in names:
                key = _decode(name)
                if key is None or not key.startswith(prefix):
                    continue
                value = self._read(name)
                if value is not None:
                    found[key] = value
        return found

    def drain_issues(self) -> list[StorageIssue]:
        """Repairs and problems noticed since the last call, oldest first."""
        issues, self._issues = self._issues, []
        return issues

    # -- helpers (called with the lock held) -----------------------------------------------

    def _read(self, name: str) -> str | None:
        value = self._settings.value(f"{self._group}/{name}")
        if value is None:
            return None
        if not isinstance(value, str):
            # Hand-edited into something else (a list, a number): not ours to interpret.
            self._issues.append(StorageIssue("record-dropped", "a settings value is not a string",
                                             self._settings.fileName()))
            return None
        return value

    def _reload(self) -> None:
        # sync() re-reads the file if another process changed it.
        self._sync("read")

    def _sync(self, what: str) -> None:
        self._settings.sync()
        status = self._settings.status()
        if status == QSettings.Status.AccessError:
            raise StorageError(f"could not {what} the settings file {self._settings.fileName()}")
        if status == QSettings.Status.FormatError and what == "read":
            self._issues.append(StorageIssue("unreadable", "the settings file could not be parsed",
                                             self._settings.fileName()))
