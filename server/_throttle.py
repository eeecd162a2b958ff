"""Login throttling per account and per client address (reliability.md S8).

Each key (``account:<provider>:<name>`` or ``address:<ip>``) keeps its recent failure
count and the time of the last failure, forgotten ``window`` seconds after that
failure. The first ``free`` failures cost nothing; after failure number
``free + k`` the next attempt is refused until ``min(base_delay * 2**(k-1), max_delay)``
seconds have passed since it. A refused attempt is not checked and not counted,
so an attacker cannot push the delay further, and the real user is never
locked out longer than ``max_delay``. A success clears the account's counter.

With the defaults (5 free per account, base 1 s, cap 60 s, window 15 min) an
attacker gets at most 5 + ~65 guesses per account in the first hour and ~60 per hour
after that. The state lives in memory: a restart forgets it, which only resets
the delays.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import attrs

from ._config import ThrottleSettings
from ._errors import ApiError

__all__ = ["LoginThrottle"]


@attrs.define
class _Entry:
    failures: int
    last: float


class LoginThrottle:
    """In-memory failure counters keyed by account and by address."""

    def __init__(self, settings: ThrottleSettings, clock: Callable[[], float] | None = None):
        self._settings = settings
        self._entries: dict[str, _Entry] = {}
        self._clock = clock or time.monotonic

    def _delay(self, entry: _Entry, free: int) -> float:
        over = entry.failures - free
        if over <= 0:
            return 0.0
        s = self._settings
        return float(min(s.base_delay * 2 ** min(over - 1, 62), s.max_delay))

    def _live(self, key: str, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and now - entry.last > self._settings.window:
            del self._entries[key]
            return None
        return entry

    def check(self, account: str | None, address: str) -> None:
        """Raise 429 if either key must still wait."""
        if not self._settings.enabled:
            return
        now = self._clock()
        wait = 0.0
        for key, free in self._keys(account, address):
            entry = self._live(key, now)
            if entry is not None:
                wait = max(wait, entry.last + self._delay(entry, free) - now)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise ApiError(
                429,
                "TooManyRequests",
                f"too many failed login attempts; retry in {seconds} s",
                headers={"Retry-After": str(seconds)},
            )

    def failed(self, account: str | None, address: str) -> None:
        """Count one failed attempt for both keys."""
        if not self._settings.enabled:
            return
        now = self._clock()
        for key, _free in self._keys(account, address):
            entry = self._live(key, now)
            if entry is None:
                self._entries[key] = _Entry(1, now)
            else:
                entry.failures += 1
                entry.last = now
        if len(self._entries) > 100_000:  # bound memory under a spray of names
            self._entries = {k: e for k, e in self._entries.items() if now - e.last <= self._settings.window}

    def succeeded(self, account: str | None) -> None:
        """Forget the account's failures (the address keeps its count)."""
        if account is not None:
            self._entries.pop("account:" + account, None)

    def _keys(self, account: str | None, address: str) -> list[tuple[str, int]]:
        keys = [("address:" + address, self._settings.address_free_failures)]
        if account is not None:
            keys.append(("account:" + account, self._settings.account_free_failures))
        return keys
