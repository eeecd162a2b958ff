"""Connectivity: the sub-states of ``LoggedIn`` (online, refreshing, offline) and who drives them.

The request pipeline reports how every attempt went (:class:`~appusers._retry.RetryObserver`);
:class:`ConnectivityTracker` turns that into transitions of each logged-in user's
connectivity sub-machine (``_machine.CONNECTIVITY_CONFIG``) and into the App's aggregate.
One server serves every user of an App, so reaching it or not is news for all of them:
a request that gets no answer (or a "try later" status) puts every logged-in user
offline, and any answer puts them back online. ``refreshing`` is per user: its token
refresh is in flight.

While the App is offline and a user is logged in (or someone awaits
:meth:`~appusers.App.wait_online`), the tracker probes the server in the background
(``GET location``) on the retry policy's back-off, so the time of the next attempt is
known and the App notices by itself when the server is back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from ._lazy import lazy_logger, lazy_module
from ._models import Connectivity, ConnectivityState
from ._retry import Failure, RetryPolicy
from .errors import AppError, HTTPStatusError, TransportError, service_error_from_body
from .transport import Response

if TYPE_CHECKING:  # streams are built on first subscription (see ``_user``), asyncio on first use
    import asyncio

    from reactivex import Observable

    from ._streams import SafeBehaviorSubject
else:
    asyncio = lazy_module("asyncio", globals())

__all__ = ["Connected", "ConnectivityTracker", "error_of"]

_log = lazy_logger("appusers", globals())


ONLINE = Connectivity(ConnectivityState.ONLINE)
REFRESHING = Connectivity(ConnectivityState.REFRESHING)


class Connected(Protocol):
    """A user as the tracker drives it (``User`` is the implementation)."""

    @property
    def is_logged_in(self) -> bool: ...

    def _set_connectivity(self, trigger: str, value: Connectivity) -> None: ...

    @property
    def connectivity(self) -> Connectivity | None: ...


def error_of(failure: Failure) -> AppError:
    """The typed error an attempt's failure stands for."""
    if isinstance(failure, AppError):
        return failure
    if isinstance(failure, Response):
        body: Any = None
        if failure.body and failure.content_type.split(";", 1)[0].strip().lower() == "application/json":
            try:
                body = json.loads(failure.body)
            except (ValueError, RecursionError):
                body = None
        error = service_error_from_body(body, status=failure.status)
        if error is not None:
            return error
        return HTTPStatusError(f"HTTP {failure.status}", status=failure.status)
    return TransportError(type(failure).__name__)


class ConnectivityTracker:
    """Follows the App's attempts; drives its users' connectivity and the App's aggregate."""

    def __init__(
        self,
        users: Callable[[], Iterable[Connected]],
        probe: Callable[[], Awaitable[Response]],
        policy: Callable[[], RetryPolicy],
        spawn: Callable[[Any], asyncio.Task[Any] | None],
    ) -> None:
        self._users = users
        self._probe = probe
        self._policy = policy
        self._spawn = spawn
        self._state = ONLINE
        self._confirmed = False  # an answer from the server was seen
        self._subject: SafeBehaviorSubject[Connectivity] | None = None
        self._waiters = 0
        self._prober: asyncio.Task[Any] | None = None
        self._refreshing = 0

    # -- what the App exposes -----------------------------------------------------------------

    @property
    def state(self) -> Connectivity:
        """The aggregate: offline if the server is out of reach, refreshing while a user's
        refresh is in flight, else online."""
        value = self._state
        if value.online and self._refreshing:
            return REFRESHING
        return value

    @property
    def changes(self) -> Observable[Connectivity]:
        from ._streams import SafeBehaviorSubject, hide

        if self._subject is None:
            self._subject = SafeBehaviorSubject(self.state)
        return hide(self._subject)

    async def wait_online(self, timeout: float | None) -> None:
        if self._confirmed and self._state.online:
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def check(value: Connectivity) -> None:
            if value.online and self._confirmed and not done.done():
                done.set_result(None)

        subscription = self.changes.subscribe(check)
        self._waiters += 1
        try:
            self._ensure_probing(now=True)
            await asyncio.wait_for(asyncio.shield(done), timeout)
        finally:
            self._waiters -= 1
            subscription.dispose()

    # -- RetryObserver: how each attempt went --------------------------------------------------

    def attempt_failed(self, failure: Failure, retry_at: float | None) -> None:
        if isinstance(failure, BaseException) and not isinstance(failure, TransportError):
            return  # not about reaching the server (closed App, bad argument)
        policy = self._policy()
        next_attempt = None if retry_at is None else time.time() + max(0.0, retry_at - policy.clock())
        self._go_offline(error_of(failure), next_attempt)
        if retry_at is None:
            self._ensure_probing(now=False)

    def attempt_answered(self, response: Response) -> None:
        self._confirmed = True
        if not self._state.online:
            self._go_online()

    # -- refreshes ---------------------------------------------------------------------------------

    def refresh_started(self, user: Connected) -> None:
        if user.is_logged_in and user.connectivity is not None:
            user._set_connectivity("begin_refresh", REFRESHING)
        self._refreshing += 1
        self._publish()

    def refresh_ended(self, user: Connected) -> None:
        self._refreshing = max(0, self._refreshing - 1)
        current = user.connectivity
        if user.is_logged_in and current is not None and current.state is ConnectivityState.REFRESHING:
            if self._state.online:
                user._set_connectivity("end_refresh", ONLINE)
            else:
                user._set_connectivity("lose_server", self._state)
        self._publish()

    # -- internals ---------------------------------------------------------------------------------

    def _go_offline(self, error: AppError, next_attempt: float | None) -> None:
        value = Connectivity(ConnectivityState.OFFLINE, error, next_attempt)
        self._state = value
        for user in list(self._users()):
            current = user.connectivity
            refreshing = current is not None and current.state is ConnectivityState.REFRESHING
            if user.is_logged_in and current is not None and not refreshing:
                user._set_connectivity("lose_server", value)
        self._publish()

    def _go_online(self) -> None:
        self._state = ONLINE
        for user in list(self._users()):
            current = user.connectivity
            if user.is_logged_in and current is not None and current.state is ConnectivityState.OFFLINE:
                user._set_connectivity("reach_server", ONLINE)
        if self._prober is not None and self._prober is not asyncio.current_task():
            self._prober.cancel()
        self._prober = None
        self._publish()

    def _publish(self) -> None:
        value = self.state
        if self._subject is not None and self._subject.value != value:
            self._subject.on_next(value)

    def _wanted(self) -> bool:
        if self._waiters:
            return True
        return any(user.is_logged_in for user in self._users())

    def _ensure_probing(self, *, now: bool) -> None:
        if self._prober is not None and not self._prober.done():
            return
        if not self._policy().reconnect and not self._waiters:
            return
        if not self._wanted():
            return
        self._prober = self._spawn(self._probe_until_online(first_wait=not now))

    async def _probe_until_online(self, *, first_wait: bool) -> None:
        retry = 0
        wait_first = first_wait
        while self._wanted() and not (self._confirmed and self._state.online):
            policy = self._policy()
            if wait_first:
                retry += 1
                wait = policy.backoff_cap(retry) * (0.5 + policy.random() / 2)
                if not self._state.online:
                    self._go_offline(self._state.error or TransportError("offline"), time.time() + wait)
                await policy.sleep(wait)
            wait_first = True
            try:
                response = await self._probe()
            except TransportError as exc:
                _log.debug("connectivity probe failed: %s", type(exc).__name__)
                self._go_offline(exc, None)
                continue
            except AppError:
                return  # the App is closing
            if response.status in policy.statuses:
                self._go_offline(error_of(response), None)
                continue
            self.attempt_answered(response)
            return
