"""Login throttling without lock-out, and rate limits for the account routes (reliability.md S8, S17, S18).

:class:`LoginThrottle` counts failed logins under three keys:

* ``(account, address)`` — the guesses one address makes at one account. Its delay is the
  attacker's budget: the first ``account_free_failures`` cost nothing, then failure number
  ``free + k`` makes the next attempt from that address wait
  ``min(base_delay * 2**(k-1), max_delay)`` seconds.
* ``address`` — failures from one address over all accounts (credential stuffing);
  ``address_free_failures`` free, same delays.
* ``account`` — failures at one account from every address (a botnet);
  ``account_wide_free_failures`` free, delays capped at ``account_wide_max_delay``.

An address that has logged in to an account successfully (within ``known_for`` seconds) is
*known* for that account: only its own ``(account, address)`` counter applies to it. So
neither an attacker's failures from another address nor a stuffing run from the same address
slow the real user down on a device they used before, and a user on a new device waits at
most ``account_wide_max_delay`` (never locked out). A refused attempt is not checked and not
counted, so hammering cannot push a delay further; counters are forgotten ``window`` seconds
after their last failure; a success clears its own pair only (clearing the account-wide
counter would hand a distributed attacker a reset).

With the defaults (5 free, delays 1, 2, ... 64 s then 90 s) one address gets at most
5 + 7 + (3600 - 127) / 90 ≈ 51 checked guesses at one account in the first hour and 40 per
hour after that, however fast it sends (see benchmarks/attacks_auth.py for the measured run).

:class:`RateLimiter` is a token bucket per key for routes that must be slow whatever their
outcome (registration, confirmation and reset emails): ``capacity`` requests at once, refilled
at ``rate`` per second.

The state lives in memory and is bounded; a restart forgets it, which only resets delays.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

import attrs

from ._config import ThrottleSettings
from ._errors import ApiError

__all__ = ["LoginThrottle", "RateLimiter", "too_many"]

#: Entries kept per table before the oldest are dropped (bounds memory under a spray of names).
_MAX_ENTRIES = 100_000


def too_many(wait: float, what: str) -> ApiError:
    """429 ``TooManyRequests`` with a ``Retry-After`` of ``wait`` rounded up to whole seconds."""
    seconds = max(1, math.ceil(wait))
    return ApiError(
        429, "TooManyRequests", f"{what}; retry in {seconds} s", headers={"Retry-After": str(seconds)}
    )


@attrs.define
class _Entry:
    failures: int
    last: float


class _Table:
    """Failure counters keyed by string, oldest-first, each forgotten ``window`` s after its last failure."""

    def __init__(self, window: float):
        self._window = window
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def get(self, key: str, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and now - entry.last > self._window:
            del self._entries[key]
            return None
        return entry

    def fail(self, key: str, now: float) -> None:
        entry = self.get(key, now)
        if entry is None:
            self._entries[key] = _Entry(1, now)
        else:
            entry.failures += 1
            entry.last = now
            self._entries.move_to_end(key)
        while len(self._entries) > _MAX_ENTRIES:
            self._entries.popitem(last=False)

    def clear(self, key: str) -> None:
        self._entries.pop(key, None)


class LoginThrottle:
    """Failed-login counters per (account, address), per address and per account."""

    def __init__(self, settings: ThrottleSettings, clock: Callable[[], float] | None = None):
        self._settings = settings
        self._clock = clock or time.monotonic
        self._pairs = _Table(settings.window)
        self._addresses = _Table(settings.window)
        self._accounts = _Table(settings.window)
        #: (account, address) pairs that logged in successfully -> time of that success.
        self._known: OrderedDict[tuple[str, str], float] = OrderedDict()

    def _delay(self, entry: _Entry | None, free: int, cap: float) -> float:
        if entry is None or entry.failures <= free:
            return 0.0
        over = entry.failures - free
        return float(min(self._settings.base_delay * 2 ** min(over - 1, 62), cap))

    def known(self, account: str, address: str) -> bool:
        """Whether ``address`` logged in to ``account`` within ``known_for`` seconds."""
        when = self._known.get((account, address))
        if when is None:
            return False
        if self._clock() - when > self._settings.known_for:
            del self._known[(account, address)]
            return False
        return True

    def wait(self, account: str | None, address: str) -> float:
        """Seconds the next attempt for ``account`` from ``address`` must still wait (0: go)."""
        if not self._settings.enabled:
            return 0.0
        s = self._settings
        now = self._clock()
        waits = [0.0]

        def add(entry: _Entry | None, free: int, cap: float) -> None:
            if entry is not None:
                waits.append(entry.last + self._delay(entry, free, cap) - now)

        if account is not None:
            add(self._pairs.get(f"{account}\0{address}", now), s.account_free_failures, s.max_delay)
            if self.known(account, address):
                return max(waits)
            add(self._accounts.get(account, now), s.account_wide_free_failures, s.account_wide_max_delay)
        add(self._addresses.get(address, now), s.address_free_failures, s.max_delay)
        return max(waits)

    def check(self, account: str | None, address: str) -> None:
        """Raise 429 ``TooManyRequests`` (with ``Retry-After``) if the attempt must still wait."""
        wait = self.wait(account, address)
        if wait > 0:
            raise too_many(wait, "too many failed login attempts")

    def failed(self, account: str | None, address: str) -> None:
        """Count one checked, failed attempt."""
        if not self._settings.enabled:
            return
        now = self._clock()
        self._addresses.fail(address, now)
        if account is not None:
            self._pairs.fail(f"{account}\0{address}", now)
            self._accounts.fail(account, now)

    def succeeded(self, account: str | None, address: str) -> None:
        """Clear the pair's counter and remember ``address`` as known for ``account``."""
        if account is None:
            return
        self._pairs.clear(f"{account}\0{address}")
        self._known[(account, address)] = self._clock()
        self._known.move_to_end((account, address))
        while len(self._known) > _MAX_ENTRIES:
            self._known.popitem(last=False)


class RateLimiter:
    """Token buckets per key: ``capacity`` requests at once, refilled at ``rate`` per second."""

    def __init__(self, capacity: float, rate: float, clock: Callable[[], float] | None = None):
        self._capacity = float(capacity)
        self._rate = float(rate)
        self._clock = clock or time.monotonic
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def wait(self, key: str) -> float:
        """Seconds until ``key`` may send again (0: it may now)."""
        tokens, _last = self._level(key, self._clock())
        return 0.0 if tokens >= 1 else (1 - tokens) / self._rate

    def _level(self, key: str, now: float) -> tuple[float, float]:
        tokens, last = self._buckets.get(key, (self._capacity, now))
        return min(self._capacity, tokens + (now - last) * self._rate), now

    def take(self, key: str, what: str) -> None:
        """Spend one request of ``key`` or raise 429 ``TooManyRequests``."""
        if self._capacity <= 0:
            return  # off
        now = self._clock()
        tokens, _last = self._level(key, now)
        if tokens < 1:
            raise too_many((1 - tokens) / self._rate, what)
        self._buckets[key] = (tokens - 1, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > _MAX_ENTRIES:
            self._buckets.popitem(last=False)
