"""A value read at most once per event-loop iteration.

Why: the users store and the shared document store each ask SQLite whether another process
committed (``PRAGMA data_version``) before they trust a cache. Asked per read, that query was
a large share of a worker's CPU; asked once per iteration it is still never stale for a
request, because a request's bytes arrive in an iteration that began after every write its
client saw complete, and the value is forgotten in the first step of the next iteration
(:meth:`asyncio.loop.call_soon`), before the callbacks of what that iteration's poll found.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["PerIteration"]

T = TypeVar("T")


class PerIteration(Generic[T]):
    """``read()``, kept for the rest of the event-loop iteration that called it."""

    __slots__ = ("_held", "_read", "_value")

    def __init__(self, read: Callable[[], T]) -> None:
        self._read = read
        self._held = False
        self._value: T | None = None

    def get(self, loop: asyncio.AbstractEventLoop | None) -> T:
        """The value read in this iteration of ``loop`` (the running one), reading it first
        if it has not been; with ``loop`` None (another thread, or keeping off), read afresh
        every time and kept for nobody."""
        if loop is not None and self._held:
            return self._value  # type: ignore[return-value]  # held means read
        value = self._read()
        if loop is not None:
            self._value, self._held = value, True
            loop.call_soon(self._forget)
        return value

    def _forget(self) -> None:
        self._held = False
        self._value = None
