"""MemoryStorage: a dict that forgets everything when the process ends."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, MutableMapping

from appusers.errors import InvalidArgumentError
from appusers.storage import StorageIssue

__all__ = ["MemoryStorage"]


class MemoryStorage:
    """Keeps users in a dict: nothing survives the process (core's in-memory metadata mode).

    Every operation completes without awaiting, so within one event loop each call is
    atomic; a lock also makes it safe to share between threads. Values are strings and
    ``items`` returns a new dict, so callers never share mutable state with the store.

    Pass the same ``backing`` dict to several instances to make them share one store,
    as two Apps sharing a browser's ``localStorage`` do.
    """

    def __init__(self, backing: MutableMapping[str, str] | None = None) -> None:
        self._data: MutableMapping[str, str] = {} if backing is None else backing
        self._lock = _lock

    def __repr__(self) -> str:
        # Values hold tokens: show only how many keys there are.
        return f"MemoryStorage(keys={len(self._data)})"

    async def get(self, key: str) -> str | None:
        """The value stored under ``key``, or None."""
        _check_key(key)
        with self._lock:
            return self._data.get(key)

    async def set(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``."""
        _check_key(key)
        _check_value(value)
        with self._lock:
            self._data[key] = value

    async def remove(self, key: str) -> None:
        """Forget ``key``; no error if it is absent."""
        _check_key(key)
        with self._lock:
            self._data.pop(key, None)

    async def update(self, changes: Mapping[str, str | None]) -> None:
        """Apply several sets (a string) and removes (None) at once: all or nothing."""
        snapshot = _checked_changes(changes)
        with self._lock:
            _apply(self._data, snapshot)

    async def items(self, prefix: str) -> Mapping[str, str]:
        """Every key starting with ``prefix`` and its value (a new dict)."""
        _check_key(prefix)
        with self._lock:
            return {k: v for k, v in self._data.items() if k.startswith(prefix)}

    async def transact(self, fn: Callable[[Mapping[str, str]], Mapping[str, str | None]]) -> None:
        """Read-modify-write in one step: ``fn(current)`` returns the changes to apply.

        ``fn`` gets a read-only snapshot and must not await or block; nothing else
        touches the store while it runs.
        """
        with self._lock:
            changes = _checked_changes(fn(dict(self._data)))
            _apply(self._data, changes)

    def drain_issues(self) -> list[StorageIssue]:
        """Always empty: a dict has nothing to repair."""
        return []


# One lock for every MemoryStorage: operations take microseconds, and instances that share a
# backing dict must exclude each other. Reentrant so a misbehaving transact() fn cannot deadlock.
_lock = threading.RLock()


def _check_key(key: object) -> None:
    if not isinstance(key, str):
        raise InvalidArgumentError(f"storage keys must be str, not {type(key).__name__}")


def _check_value(value: object) -> None:
    if not isinstance(value, str):
        # Name the type only: the value may be a token.
        raise InvalidArgumentError(f"storage values must be str, not {type(value).__name__}")


def _checked_changes(changes: Mapping[str, str | None]) -> dict[str, str | None]:
    snapshot = dict(changes)
    for key, value in snapshot.items():
        _check_key(key)
        if value is not None:
            _check_value(value)
    return snapshot


def _apply(data: MutableMapping[str, str], changes: Mapping[str, str | None]) -> None:
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
