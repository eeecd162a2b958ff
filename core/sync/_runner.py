"""``Runner``: how a blocking call reaches the core's loop thread, and when it is refused.

Every call of the facade goes through one of these. A call is refused, with
:class:`BlockingCallError`, where blocking would hang or stall something: on the App's
own loop thread (a stream callback or listener calling back into the facade would wait
for itself forever) and, unless the App allows it, on a thread whose asyncio loop is
running (it would stall every other task of that loop; use ``appusers.App`` there).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from reactivex import Observable, abc
from reactivex import operators as ops

from .._loop_thread import LoopThread
from ..errors import AppClosedError, ClientError

__all__ = ["BlockingCallError", "Runner", "refuse_in_running_loop", "same"]

_T = TypeVar("_T")
_U = TypeVar("_U")


class BlockingCallError(ClientError, RuntimeError):
    """A blocking call was made where it would hang (the App's loop thread) or stall a
    running asyncio loop. Await ``appusers.App`` there instead, or hand the call to a
    thread (``await asyncio.to_thread(...)``)."""

    code = "BlockingCall"


_ON_LOOP_THREAD = (
    "a blocking appusers.sync call was made on the App's own loop thread (from a stream "
    "callback or listener?); it would wait for itself forever. Hand it to another thread, "
    "or use the async objects there"
)
_IN_RUNNING_LOOP = (
    "a blocking appusers.sync call was made inside a running asyncio event loop, which it "
    "would stall. In async code await appusers.App instead (or run the blocking code with "
    "'await asyncio.to_thread(...)'); in a notebook, whose cells run inside an event loop, "
    "pass allow_running_loop=True to appusers.sync.App"
)


class Runner:
    """Runs coroutines and callables on ``loop`` for blocking callers."""

    __slots__ = ("allow_running_loop", "loop")

    def __init__(self, loop: LoopThread, *, allow_running_loop: bool) -> None:
        self.loop = loop
        self.allow_running_loop = allow_running_loop

    def check_caller(self) -> None:
        """Raise :class:`BlockingCallError` if the calling thread must not block."""
        if self.loop.in_loop_thread():
            raise BlockingCallError(_ON_LOOP_THREAD)
        if not self.allow_running_loop:
            refuse_in_running_loop()

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Await ``coro`` on the loop thread and return its result (or raise its exception)."""
        try:
            self.check_caller()
        except BaseException:
            coro.close()
            raise
        if not self.loop.running:
            coro.close()
            raise AppClosedError("this App is closed")
        try:
            return self.loop.run(coro)
        except concurrent.futures.CancelledError:
            if not self.loop.running:
                # The App was closed (by another thread) while this call waited.
                raise AppClosedError("the App was closed during the call") from None
            raise
        except RuntimeError as exc:
            if not self.loop.running and not isinstance(exc, ClientError):
                raise AppClosedError("this App is closed") from None
            raise

    def call(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(*args)`` on the loop thread (a quick hop: allowed from any thread)."""
        if self.loop.in_loop_thread():
            return fn(*args)
        if not self.loop.running:
            raise AppClosedError("this App is closed")
        try:
            return self.loop.call(fn, *args)
        except RuntimeError as exc:
            if not self.loop.running and not isinstance(exc, ClientError):
                raise AppClosedError("this App is closed") from None
            raise

    def observe(self, source: Callable[[], Observable[_U]], wrap: Callable[[_U], _T]) -> Observable[_T]:
        """``source()`` seen from any thread: each subscription is made on the loop thread
        (where the core's subjects live), values are ``wrap``-ped and delivered there."""

        def subscribe(
            observer: abc.ObserverBase[_T], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            def attach() -> abc.DisposableBase:
                return source().pipe(ops.map(wrap)).subscribe(observer, scheduler=scheduler)

            return self.call(attach)

        return Observable(subscribe)


def refuse_in_running_loop() -> None:
    """Raise :class:`BlockingCallError` if the calling thread runs an asyncio loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise BlockingCallError(_IN_RUNNING_LOOP)


def same(value: _T) -> _T:
    return value
