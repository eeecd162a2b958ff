"""``RetryPolicy``: when a request that failed on the way is sent again, and how long to wait.

Only requests that are safe to repeat are retried (the pipeline declares which: the
location, the profile, API-key reads, the refresh, the log-out, the email/password
calls whose repetition only sends the same email again). Function calls and MongoDB
writes never are; MongoDB reads only when the app declares them safe. Retried are
failures that may go away on their own: no response at all (connection refused,
reset, DNS) and the statuses 429, 502, 503 and 504.

Waits follow capped exponential back-off with *full jitter* (AWS Architecture Blog,
"Exponential Backoff and Jitter"): before retry *n* the wait is uniform in
``[0, min(max_delay, initial_delay * multiplier ** (n - 1))]``, so clients that failed
together do not come back together. A ``Retry-After`` header (seconds or an HTTP-date)
replaces the back-off, capped at ``max_retry_after``. No retry starts more than
``deadline`` seconds after the first attempt; a retry whose wait would end past it is
not made and the last error is raised at once. Cancelling the caller cancels the wait.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Final, Protocol

import attrs

from ._lazy import lazy_logger, lazy_module
from .errors import InvalidArgumentError, RequestTimeoutError, TransportError
from .transport import Response

if TYPE_CHECKING:
    import asyncio
    import random
else:  # imported on first use: see ``_lazy``
    asyncio = lazy_module("asyncio", globals())
    random = lazy_module("random", globals())

__all__ = [
    "RETRYABLE_STATUSES",
    "Failure",
    "RetryObserver",
    "RetryPolicy",
    "parse_retry_after",
    "send_with_retries",
]

_log = lazy_logger("appusers", globals())

#: Statuses that say "not now" rather than "no": the same request may work later.
RETRYABLE_STATUSES: Final = frozenset({429, 502, 503, 504})


_Validator = Callable[[object, 'attrs.Attribute[float]', float], None]


def _positive(name: str, *, allow_zero: bool = True) -> _Validator:
    def check(_instance: object, _attribute: attrs.Attribute[float], value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidArgumentError(f"{name} must be a finite number of seconds")
        if value < 0 or (value == 0 and not allow_zero):
            raise InvalidArgumentError(f"{name} must be {'>= 0' if allow_zero else '> 0'}")

    return check


def _attempts(_instance: object, _attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
        raise InvalidArgumentError("max_attempts must be an integer from 1 to 100")


def _multiplier(_instance: object, _attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value <= 100:
        raise InvalidArgumentError("multiplier must be a number from 1 to 100")


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP-date
    (RFC 9110 §10.2.3); ``now`` is the wall-clock time. None if absent or unreadable;
    a date in the past is 0."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit() and text.isascii():
        return float(min(int(text[:12]), 10**9))
    import email.utils  # only for an HTTP-date, which servers rarely send: not worth its import time

    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None  # RFC 9110 dates are GMT; a zone-less one is not an HTTP-date
    return max(0.0, when.timestamp() - now)


@attrs.frozen
class RetryPolicy:
    """How an :class:`~appusers.App` retries requests that are safe to repeat.

    The defaults: up to 4 attempts, back-off from 0.5 s doubling to at most 8 s (with
    full jitter), no retry starting later than 30 s after the first attempt,
    ``Retry-After`` honoured up to 60 s, request timeouts not retried (the caller's
    timeout is the bound it asked for), background probes while offline. ``RetryPolicy.none()``
    never retries and never probes by itself.

    ``sleep``, ``clock``, ``wall_clock`` and ``random`` are injectable so tests run
    the schedule without waiting and without chance.
    """

    max_attempts: int = attrs.field(default=4, validator=_attempts)
    initial_delay: float = attrs.field(default=0.5, validator=_positive("initial_delay"))
    max_delay: float = attrs.field(default=8.0, validator=_positive("max_delay"))
    multiplier: float = attrs.field(default=2.0, validator=_multiplier)
    deadline: float = attrs.field(default=30.0, validator=_positive("deadline"))
    max_retry_after: float = attrs.field(default=60.0, validator=_positive("max_retry_after"))
    retry_timeouts: bool = False
    #: While the App is offline with a user logged in, probe the server in the background on
    #: this back-off (see ``App.connectivity``).
    reconnect: bool = True
    statuses: frozenset[int] = attrs.field(default=RETRYABLE_STATUSES, converter=frozenset)
    # Factories, so that asyncio and random are imported when a policy is made, not with appusers.
    sleep: Callable[[float], Awaitable[None]] = attrs.field(
        factory=lambda: asyncio.sleep, eq=False, repr=False
    )
    clock: Callable[[], float] = attrs.field(default=time.monotonic, eq=False, repr=False)
    wall_clock: Callable[[], float] = attrs.field(default=time.time, eq=False, repr=False)
    random: Callable[[], float] = attrs.field(factory=lambda: random.random, eq=False, repr=False)

    @classmethod
    def none(cls) -> RetryPolicy:
        """Never retry and never probe in the background: every failure reaches the caller at once."""
        return cls(max_attempts=1, reconnect=False)

    def backoff_cap(self, retry: int) -> float:
        """The largest wait before retry number ``retry`` (1 for the first retry)."""
        exponent = min(max(retry - 1, 0), 64)  # 2.0 ** 64 seconds is long enough
        return float(min(self.max_delay, self.initial_delay * self.multiplier**exponent))

    def backoff(self, retry: int) -> float:
        """The wait before retry ``retry``: full jitter, uniform in ``[0, backoff_cap(retry)]``."""
        return self.random() * self.backoff_cap(retry)

    def retry_after(self, headers: Mapping[str, str]) -> float | None:
        """The server's ``Retry-After`` in seconds, capped at ``max_retry_after``; None without one."""
        wait = parse_retry_after(headers.get("retry-after"), now=self.wall_clock())
        return None if wait is None else min(wait, self.max_retry_after)

    def delay(self, retry: int, headers: Mapping[str, str] | None = None) -> float:
        """The wait before retry ``retry``: the server's ``Retry-After`` if it sent one, else back-off."""
        if headers is not None:
            wait = self.retry_after(headers)
            if wait is not None:
                return wait
        return self.backoff(retry)

    def allows(self, made: int, started: float, wait: float) -> bool:
        """Whether another attempt may follow the ``made`` attempts of a request whose first
        attempt began at ``started`` (``clock`` time), after waiting ``wait`` seconds."""
        return made < self.max_attempts and self.clock() + wait - started <= self.deadline


Failure = BaseException | Response
"""What ended an attempt: the error raised (no response) or a retryable response."""


class RetryObserver(Protocol):
    """Told how each attempt went (the connectivity of the session follows it)."""

    def attempt_failed(self, failure: Failure, retry_at: float | None) -> None:
        """An attempt failed; ``retry_at`` is the ``clock`` time of the next one (None: no more)."""
        ...

    def attempt_answered(self, response: Response) -> None:
        """The server answered with something that is not a "try later"."""
        ...


async def send_with_retries(
    policy: RetryPolicy,
    send: Callable[[], Awaitable[Response]],
    *,
    idempotent: bool,
    observer: RetryObserver | None = None,
) -> Response:
    """``send()`` until it gives a response that is not a "try later", or the policy says stop.

    Returns the last response (possibly a 503 when retries ran out: the caller turns it
    into a typed error) or raises the last attempt's ``TransportError``. Requests that
    are not ``idempotent`` are sent once whatever happens.
    """
    started = policy.clock()
    made = 0
    while True:
        made += 1
        try:
            response = await send()
        except TransportError as exc:
            retryable = idempotent and (policy.retry_timeouts or not isinstance(exc, RequestTimeoutError))
            wait = policy.delay(made) if retryable else 0.0
            if not (retryable and policy.allows(made, started, wait)):
                if observer is not None:
                    observer.attempt_failed(exc, None)
                raise
            if observer is not None:
                observer.attempt_failed(exc, policy.clock() + wait)
        else:
            if response.status not in policy.statuses:
                if observer is not None:
                    observer.attempt_answered(response)
                return response
            wait = policy.delay(made, response.headers) if idempotent else 0.0
            if not (idempotent and policy.allows(made, started, wait)):
                if observer is not None:
                    observer.attempt_failed(response, None)
                return response
            if observer is not None:
                observer.attempt_failed(response, policy.clock() + wait)
        _log.debug("retrying in %.3f s (attempt %d of %d)", wait, made + 1, policy.max_attempts)
        await policy.sleep(wait)
