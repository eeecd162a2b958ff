"""A reactive pipeline over a user's events: cache what the session knows, react to how it ends.

Run it against the local server (started in-process when no URL is given)::

    python examples/pipeline.py                          # local server, then exits
    python examples/pipeline.py http://127.0.0.1:9090    # a running server (anonymous user)

Per session it subscribes to ``user.events`` (on this loop, through
``AsyncioScheduler``) and wires, with reactivex operators:

* custom-data refreshes -> the cached profile (``distinct_until_changed``);
* access-token refreshes -> a running count (``scan``);
* background work (a ``interval`` ticker calling a backend function) that stops
  by itself when the session ends (``take_until``), cancelling calls in flight;
* log-out, by cause (``LoggedOut.cause``): the cache is cleared; a rejected
  refresh token means "sign in again", a user request means "signed out".

The scenario: log in, refresh custom data and the token, have the server revoke
the session (the next refresh is rejected: logged out by cause), log in again,
log out by request; then it prints a summary and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import reactivex
from reactivex import operators as ops
from reactivex.disposable import CompositeDisposable

from appusers import (
    AccessTokenRefreshed,
    App,
    Credentials,
    CustomDataRefreshed,
    LoggedOut,
    LogoutCause,
    User,
    UserEvent,
)
from appusers.bindings.asyncio import AsyncioScheduler
from appusers.errors import AppError, RefreshTokenRejectedError

__all__ = ["Report", "Session", "main", "run"]

WORK_PERIOD = 0.02  # seconds between two background calls


@attrs.define
class Report:
    """What the pipeline saw, for the summary and the tests."""

    logouts: list[LogoutCause] = attrs.Factory(list)
    cache_cleared: int = 0
    token_refreshes: int = 0
    custom_data: list[dict[str, Any]] = attrs.Factory(list)
    work_done: int = 0
    work_cancelled: int = 0
    work_stopped: int = 0
    changed: asyncio.Event = attrs.field(factory=asyncio.Event, repr=False, eq=False)
    """Set whenever a field changes, so the scenario can wait for progress without polling."""

    def note(self) -> None:
        self.changed.set()


def _as_logged_out(event: UserEvent) -> LoggedOut:
    # ops.filter keeps the element type: this narrows it for the subscribers (mypy --strict).
    assert isinstance(event, LoggedOut)
    return event


def _same(data: dict[str, Any]) -> dict[str, Any]:
    # An explicit key mapper: with none, mypy cannot infer distinct_until_changed's key type.
    return data


def _count(count: int, _: UserEvent) -> int:
    return count + 1


def _visible_custom_data(event: UserEvent) -> dict[str, Any]:
    """The custom data a screen would show: without the document's own id and owner field."""
    assert isinstance(event, CustomDataRefreshed)
    return {k: v for k, v in event.custom_data.items() if k not in ("_id", "user_id")}


class Session:
    """The pipeline of one logged-in session of ``user``; ``ended`` resolves with the log-out cause."""

    def __init__(self, user: User, cache: dict[str, Any], report: Report, say: Callable[[str], None]) -> None:
        self.user = user
        self.cache = cache
        self.report = report
        self.say = say
        loop = asyncio.get_running_loop()
        self.ended: asyncio.Future[LogoutCause] = loop.create_future()
        self._calls: set[asyncio.Task[Any]] = set()
        scheduler = AsyncioScheduler(loop)

        # One subscription upstream, shared by every branch, delivered on this loop.
        events: reactivex.Observable[UserEvent] = user.events.pipe(ops.observe_on(scheduler), ops.share())
        logged_out: reactivex.Observable[LoggedOut] = events.pipe(
            ops.filter(lambda e: isinstance(e, LoggedOut)), ops.map(_as_logged_out), ops.take(1), ops.share()
        )

        self._subscriptions = CompositeDisposable(
            events.pipe(
                ops.filter(lambda e: isinstance(e, CustomDataRefreshed)),
                ops.map(_visible_custom_data),
                ops.distinct_until_changed(_same),
                ops.take_until(logged_out),
            ).subscribe(self._on_custom_data),
            events.pipe(
                ops.filter(lambda e: isinstance(e, AccessTokenRefreshed)),
                ops.scan(_count, 0),
                ops.take_until(logged_out),
            ).subscribe(self._on_token_count),
            reactivex.interval(WORK_PERIOD, scheduler=scheduler).pipe(
                ops.take_until(logged_out),
            ).subscribe(on_next=self._work, on_completed=self._stop_work),
            logged_out.subscribe(self._on_logged_out),
        )

    # -- branches ------------------------------------------------------------------------

    def _on_custom_data(self, data: dict[str, Any]) -> None:
        self.cache["custom_data"] = data
        self.report.custom_data.append(data)
        self.report.note()
        self.say(f"custom data refreshed: {sorted(data.items())}")

    def _on_token_count(self, count: int) -> None:
        self.report.token_refreshes += 1
        self.report.note()
        self.say(f"access token refreshed ({count} this session)")

    def _work(self, tick: int) -> None:
        async def call() -> None:
            self.cache[f"sum-{tick}"] = await self.user.functions.sum(tick, 1)
            self.report.work_done += 1
            self.report.note()

        task = asyncio.ensure_future(call())
        self._calls.add(task)
        task.add_done_callback(self._call_done)

    def _call_done(self, task: asyncio.Task[Any]) -> None:
        self._calls.discard(task)
        if not task.cancelled():
            error = task.exception()
            # An AppError means the session ended under the call: expected, its result is moot.
            if error is not None and not isinstance(error, AppError):
                self.say(f"background call failed: {type(error).__name__}")

    def _stop_work(self) -> None:
        cancelled = 0
        for task in list(self._calls):
            if task.cancel():
                cancelled += 1
        self.report.work_stopped += 1
        self.report.work_cancelled += cancelled
        self.say(f"background work stopped ({cancelled} call(s) in flight cancelled)")

    def _on_logged_out(self, event: LoggedOut) -> None:
        size = len(self.cache)
        self.cache.clear()
        self.report.cache_cleared += 1
        self.report.logouts.append(event.cause)
        advice = {
            LogoutCause.USER_REQUEST: "signed out",
            LogoutCause.REFRESH_TOKEN_REJECTED: "the session expired: sign in again",
            LogoutCause.REMOVED: "the user was removed from this device",
            LogoutCause.DELETED: "the account was deleted",
        }[event.cause]
        self.say(f"logged out ({event.cause.name}): {advice}; cleared {size} cached entries")
        if not self.ended.done():
            self.ended.set_result(event.cause)

    async def wait_ended(self, timeout: float = 10.0) -> LogoutCause:
        """The log-out cause, once the session has ended and its calls have settled."""
        cause = await asyncio.wait_for(asyncio.shield(self.ended), timeout)
        await asyncio.gather(*self._calls, return_exceptions=True)
        self.dispose()
        return cause

    def dispose(self) -> None:
        for task in list(self._calls):
            task.cancel()
        self._subscriptions.dispose()


async def _wait(report: Report, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            report.changed.clear()
            await report.changed.wait()


async def _scenario(app: App, credentials: Credentials, server: Any, say: Callable[[str], None]) -> Report:
    report = Report()
    cache: dict[str, Any] = {}

    user = await app.log_in(credentials)
    say(f"logged in as {user.id}")
    session = Session(user, cache, report, say)
    await _wait(report, lambda: report.work_done >= 3)
    await user.functions.set_custom_data({"plan": "pro", "theme": "dark"})
    await user.refresh_custom_data()
    await user.refresh_access_token()  # same custom data: a token refresh only
    await _wait(report, lambda: report.token_refreshes >= 2 and "custom_data" in cache)

    if server is not None:
        # The server ends the session; the next refresh is rejected and logs the user out.
        await server.revoke_sessions(user.id)
        try:
            await user.refresh_access_token()
        except RefreshTokenRejectedError:
            pass
    else:
        await user.log_out()
    await session.wait_ended()

    user = await app.log_in(credentials)
    say(f"logged in again as {user.id}")
    session = Session(user, cache, report, say)
    await _wait(report, lambda: report.work_done >= 5)
    await user.log_out()
    await session.wait_ended()
    return report


async def run(base_url: str | None = None, *, say: Callable[[str], None] = print) -> Report:
    """Run the scenario against ``base_url``, or against a local server started here."""
    if base_url is not None:
        async with App("appusers-local", base_url=base_url) as app:
            report = await _scenario(app, Credentials.anonymous(reuse=False), None, say)
    else:
        from appusers.server import LocalServer, load_config

        with tempfile.TemporaryDirectory(prefix="appusers-pipeline-") as data_dir:
            async with LocalServer(config=load_config(None), data_dir=Path(data_dir)) as server:
                say(f"local server at {server.url}")
                async with App(server.app_id, base_url=server.url) as app:
                    email, password = "pipeline@example.com", "pipeline-pass"
                    await app.email_password_auth.register_user(email, password)
                    mail = [m for m in server.read_outbox() if m["kind"] == "confirm"][-1]
                    await app.email_password_auth.confirm_user(mail["token"], mail["tokenId"])
                    credentials = Credentials.email_password(email, password)
                    report = await _scenario(app, credentials, server, say)
    say(
        f"done: log-outs {[cause.name for cause in report.logouts]}, cache cleared {report.cache_cleared}x, "
        f"{report.token_refreshes} token refreshes, {report.work_done} calls done, "
        f"{report.work_cancelled} cancelled"
    )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base_url", nargs="?", help="a running server (default: start a local one)")
    args = parser.parse_args(argv)
    asyncio.run(run(args.base_url))
    return 0


if __name__ == "__main__":
    sys.exit(main())

