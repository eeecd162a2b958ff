"""The storage seam: where an App keeps its users between runs.

A storage is a tiny async key/value store of strings. The App owns the keys and
the format of the values (JSON); a storage only has to keep them safe:
``set`` is atomic per key (a reader sees the old value or the new, never half).

Adapters: ``appusers.adapters.MemoryStorage`` and ``appusers.adapters.FileStorage``.
A new adapter proves itself by subclassing ``appusers.adapters.storage_contract.StorageContract``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import attrs

__all__ = ["Storage", "StorageIssue"]


@attrs.frozen
class StorageIssue:
    """Something a storage had to repair while opening, e.g. a quarantined corrupt file.

    The App publishes these as :class:`~appusers.StorageRecovered` events.
    """

    kind: str  # "quarantined", "permissions-repaired", "orphan-removed"
    detail: str
    path: str = ""


@runtime_checkable
class Storage(Protocol):
    async def get(self, key: str) -> str | None:
        """The value stored under ``key``, or None."""
        ...

    async def set(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``, atomically."""
        ...

    async def remove(self, key: str) -> None:
        """Forget ``key``; no error if it is absent."""
        ...

    async def update(self, changes: Mapping[str, str | None]) -> None:
        """Apply several sets (a string) and removes (None) as one atomic write."""
        ...

    async def items(self, prefix: str) -> Mapping[str, str]:
        """Every key starting with ``prefix`` and its value, in one read."""
        ...

    def drain_issues(self) -> list[StorageIssue]:
        """Repairs made since the last call (quarantines...), oldest first."""
        ...
