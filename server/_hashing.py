"""Password hashing in a bounded worker pool (issue 9 item 13).

scrypt is deliberately expensive (~32 MiB and tens of ms each). Run on the shared default
executor, 25 concurrent password logins occupied all of its threads and both cores, and every
other request that needed a thread queued behind them: function-call throughput fell from
~1,900/s to 211/s. Here hashing has its own small pool (``workers`` threads, 1 by default:
hashlib.scrypt releases the GIL, so the event loop keeps a core) and a bounded queue: past
``max_waiting`` waiting hashings a new one is refused with 429 instead of piling up. On Linux
the hashing threads also run at a lower scheduling priority (``nice``, +10 by default), so
when the cores are busy the event loop goes first and logins wait instead of everything else.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Callable
from typing import TypeVar

from ._config import ScryptSettings
from ._secrets import dummy_verify, hash_password, verify_password
from ._throttle import too_many

__all__ = ["PasswordHasher"]

T = TypeVar("T")


def _lower_priority(nice: int) -> None:
    """Raise this thread's nice value (Linux schedules threads individually; elsewhere a no-op)."""
    setpriority = getattr(os, "setpriority", None)
    if nice <= 0 or setpriority is None or not os.path.isdir("/proc/self/task"):
        return
    with contextlib.suppress(OSError):  # a lower priority is a preference, not a requirement
        setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


class PasswordHasher:
    """Hash and verify passwords off the event loop, at most ``cost.workers`` at a time."""

    def __init__(self, cost: ScryptSettings):
        self._cost = cost
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, cost.workers),
            thread_name_prefix="appusers-scrypt",
            initializer=_lower_priority,
            initargs=(cost.nice,),
        )
        self._pending = 0

    def __repr__(self) -> str:
        return f"PasswordHasher(workers={self._cost.workers}, pending={self._pending})"

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        if self._pending >= self._cost.workers + self._cost.max_waiting:
            raise too_many(1, "the server is busy hashing passwords")
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        finally:
            self._pending -= 1

    async def hash(self, password: str) -> str:
        """A fresh salted scrypt hash of ``password``."""
        return await self._run(hash_password, password, self._cost)

    async def verify(self, password: str, stored: str) -> bool:
        """Whether ``password`` matches the stored hash."""
        return await self._run(verify_password, password, stored)

    async def dummy(self) -> None:
        """The work of a check, for an unknown account (so timing does not tell it apart)."""
        await self._run(dummy_verify, self._cost)

    def close(self) -> None:
        """Stop the pool (running hashings finish in the background)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
