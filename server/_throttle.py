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

Both keep their state in a :class:`~appusers.server._store.Counters` the user store provides:
:class:`MemoryCounters` (bounded, in this process; a restart forgets it, which only resets
delays) beside the SQLite store, the database's tables beside PostgreSQL, so that several
servers sharing it count every attempt once whichever server it reached.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from ._config import ThrottleSettings
from ._errors import ApiError
from ._store import Counters

__all__ = ["LoginThrottle", "MemoryCounters", "RateLimiter", "too_many"]

#: Entries kept per table before the oldest are dropped (bounds memory under a spray of names).
_MAX_ENTRIES = 100_000


def too_many(wait: float, what: str) -> ApiError:
    """429 ``TooManyRequests`` with a ``Retry-After`` of ``wait`` rounded up to whole seconds."""
    seconds = max(1, math.ceil(wait))
    return ApiError(
        429, "TooManyRequests", f"{what}; retry in {seconds} s", headers={"Retry-After": str(seconds)}
    )


#: A counter as read: (failures, time of the last failure or success).
_Entry = tuple[int, float]


class _Table:
    """Counters keyed by string, oldest-first, each forgotten ``window`` s after its last write."""

    def __init__(self) -> None:
        self._entries: OrderedDict[str, list[float]] = OrderedDict()

    def get(self, key: str, now: float, window: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now - entry[1] > window:
            del self._entries[key]
            return None
        return int(entry[0]), entry[1]

    def put(self, key: str, failures: int, now: float) -> None:
        self._entries[key] = [failures, now]
        self._entries.move_to_end(key)
        while len(self._entries) > _MAX_ENTRIES:
            self._entries.popitem(last=False)

    def fail(self, key: str, now: float, window: float) -> None:
        entry = self.get(key, now, window)
        self.put(key, 1 if entry is None else entry[0] + 1, now)

    def clear(self, key: str) -> None:
        self._entries.pop(key, None)


class MemoryCounters:
    """:class:`Counters` in this process's memory (monotonic clock), bounded per table."""

    def __init__(self) -> None:
        self._tables: dict[str, _Table] = {}
        self._buckets: dict[str, OrderedDict[str, tuple[float, float]]] = {}

    def __repr__(self) -> str:
        return f"MemoryCounters(tables={sorted(self._tables)})"

    @staticmethod
    def clock() -> float:
        return time.monotonic()

    def _table(self, name: str) -> _Table:
        table = self._tables.get(name)
        if table is None:
            table = self._tables[name] = _Table()
        return table

    async def read(self, lookups: Sequence[tuple[str, str, float]], now: float) -> list[_Entry | None]:
        return [self._table(name).get(key, now, window) for name, key, window in lookups]

    async def fail(self, updates: Sequence[tuple[str, str, float]], now: float) -> None:
        for name, key, window in updates:
            self._table(name).fail(key, now, window)

    async def mark(self, table: str, key: str, now: float, window: float) -> None:
        self._table(table).put(key, 0, now)

    async def clear(self, table: str, key: str) -> None:
        self._table(table).clear(key)

    async def take(self, table: str, key: str, capacity: float, rate: float, now: float) -> float:
        buckets = self._buckets.setdefault(table, OrderedDict())
        tokens, last = buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * rate)
        if tokens < 1:
            return (1 - tokens) / rate
        buckets[key] = (tokens - 1, now)
        buckets.move_to_end(key)
        while len(buckets) > _MAX_ENTRIES:
            buckets.popitem(last=False)
        return 0.0


class LoginThrottle:
    """Failed-login counters per (account, address), per address and per account.

    ``namespace`` keeps throttles sharing one :class:`Counters` apart (client and admin log-ins).
    """

    def __init__(
        self,
        settings: ThrottleSettings,
        clock: Callable[[], float] | None = None,
        *,
        counters: Counters | None = None,
        namespace: str = "login",
    ):
        self._settings = settings
        self._counters: Counters = counters if counters is not None else MemoryCounters()
        self._clock = clock or self._counters.clock
        self._pairs, self._addresses, self._accounts, self._known = (
            f"{namespace}/{t}" for t in ("pair", "address", "account", "known")
        )

    def _delay(self, entry: _Entry | None, free: int, cap: float) -> float:
        if entry is None or entry[0] <= free:
            return 0.0
        over = entry[0] - free
        return float(min(self._settings.base_delay * 2 ** min(over - 1, 62), cap))

    async def known(self, account: str, address: str) -> bool:
        """Whether ``address`` logged in to ``account`` within ``known_for`` seconds."""
        (entry,) = await self._counters.read(
            [(self._known, _pair(account, address), self._settings.known_for)], self._clock()
        )
        return entry is not None

    async def wait(self, account: str | None, address: str) -> float:
        """Seconds the next attempt for ``account`` from ``address`` must still wait (0: go)."""
        if not self._settings.enabled:
            return 0.0
        s = self._settings
        now = self._clock()
        lookups = [(self._addresses, address, s.window)]
        if account is not None:
            pair = _pair(account, address)
            lookups += [
                (self._pairs, pair, s.window),
                (self._known, pair, s.known_for),
                (self._accounts, account, s.window),
            ]
        entries = await self._counters.read(lookups, now)
        waits = [0.0]

        def add(entry: _Entry | None, free: int, cap: float) -> None:
            if entry is not None:
                waits.append(entry[1] + self._delay(entry, free, cap) - now)

        if account is not None:
            add(entries[1], s.account_free_failures, s.max_delay)
            if entries[2] is not None:  # a known address: only its own pair counts
                return max(waits)
            add(entries[3], s.account_wide_free_failures, s.account_wide_max_delay)
        add(entries[0], s.address_free_failures, s.max_delay)
        return max(waits)

    async def check(self, account: str | None, address: str) -> None:
        """Raise 429 ``TooManyRequests`` (with ``Retry-After``) if the attempt must still wait."""
        wait = await self.wait(account, address)
        if wait > 0:
            raise too_many(wait, "too many failed login attempts")

    async def failed(self, account: str | None, address: str) -> None:
        """Count one checked, failed attempt."""
        if not self._settings.enabled:
            return
        window = self._settings.window
        updates = [(self._addresses, address, window)]
        if account is not None:
            updates += [(self._pairs, _pair(account, address), window), (self._accounts, account, window)]
        await self._counters.fail(updates, self._clock())

    async def succeeded(self, account: str | None, address: str) -> None:
        """Clear the pair's counter and remember ``address`` as known for ``account``."""
        if account is None:
            return
        pair = _pair(account, address)
        await self._counters.clear(self._pairs, pair)
        await self._counters.mark(self._known, pair, self._clock(), self._settings.known_for)


def _pair(account: str, address: str) -> str:
    return f"{account}\0{address}"


class RateLimiter:
    """Token buckets per key: ``capacity`` requests at once, refilled at ``rate`` per second."""

    def __init__(
        self,
        capacity: float,
        rate: float,
        clock: Callable[[], float] | None = None,
        *,
        counters: Counters | None = None,
        name: str = "rate",
    ):
        self._capacity = float(capacity)
        self._rate = float(rate)
        self._counters: Counters = counters if counters is not None else MemoryCounters()
        self._clock = clock or self._counters.clock
        self._name = name

    async def take(self, key: str, what: str) -> None:
        """Spend one request of ``key`` or raise 429 ``TooManyRequests``."""
        if self._capacity <= 0:
            return  # off
        wait = await self._counters.take(self._name, key, self._capacity, self._rate, self._clock())
        if wait > 0:
            raise too_many(wait, what)
