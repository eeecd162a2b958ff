"""``async for`` over an Rx stream, delivered on the consumer's loop whatever thread emits.

The iterator subscribes when it is created (so nothing published between creating
it and the first ``__anext__`` is missed) and buffers what arrives until it is read.
It is a plain class rather than an async generator on purpose: a dropped async
generator is finalised by a task the loop creates, a dropped ``StreamIterator``
simply disposes its subscription in ``__del__``. The subscription reaches only a
small inbox, never the iterator, so dropping the iterator is enough to end it.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Generic, TypeVar

from reactivex import Observable, abc
from reactivex import operators as ops

from appusers.bindings.asyncio._scheduler import AsyncioScheduler

__all__ = ["StreamIterator", "aiter_stream"]

_T = TypeVar("_T")

_NEXT, _ERROR, _DONE = 0, 1, 2


class _Inbox:
    """What the subscription writes to; always touched on the loop thread."""

    __slots__ = ("entries", "waiter")

    def __init__(self) -> None:
        self.entries: collections.deque[tuple[int, Any]] = collections.deque()
        self.waiter: asyncio.Future[None] | None = None

    def push(self, kind: int, value: Any) -> None:
        self.entries.append((kind, value))
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class StreamIterator(Generic[_T]):
    """An async iterator over ``source``; see :func:`aiter_stream`."""

    def __init__(self, source: Observable[_T], *, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        inbox = self._inbox = _Inbox()
        self._closed = False
        # The callbacks close over the inbox only: the subscription must not keep self alive.
        self._subscription: abc.DisposableBase | None = source.pipe(
            ops.observe_on(AsyncioScheduler(self._loop))
        ).subscribe(
            on_next=lambda value: inbox.push(_NEXT, value),
            on_error=lambda error: inbox.push(_ERROR, error),
            on_completed=lambda: inbox.push(_DONE, None),
        )

    def __aiter__(self) -> StreamIterator[_T]:
        return self

    async def __anext__(self) -> _T:
        inbox = self._inbox
        while not inbox.entries:
            if self._closed:
                raise StopAsyncIteration
            if inbox.waiter is not None:
                raise RuntimeError("another task is already waiting on this stream iterator")
            waiter = inbox.waiter = self._loop.create_future()
            try:
                # Cancelling here loses nothing: items stay queued until a later __anext__.
                await waiter
            finally:
                inbox.waiter = None
        if self._closed:
            raise StopAsyncIteration
        kind, value = inbox.entries.popleft()
        if kind == _NEXT:
            return value  # type: ignore[no-any-return]
        self._dispose()
        if kind == _ERROR:
            raise value
        raise StopAsyncIteration

    async def __aenter__(self) -> StreamIterator[_T]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Unsubscribe and drop what is buffered; a pending ``__anext__`` ends the iteration."""
        self.close()

    def close(self) -> None:
        """Synchronous :meth:`aclose`, for the loop thread (e.g. a UI callback)."""
        self._dispose()
        self._inbox.entries.clear()
        waiter = self._inbox.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def closed(self) -> bool:
        return self._closed

    def _dispose(self) -> None:
        self._closed = True
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.dispose()

    def __del__(self) -> None:
        # May run on any thread (the GC's): disposing a subscription is thread-safe, the waiter is not
        # touched (a task awaiting it would be keeping this iterator alive anyway).
        subscription = getattr(self, "_subscription", None)
        if subscription is not None:
            subscription.dispose()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._inbox.entries)} buffered"
        return f"<StreamIterator {state}>"


def aiter_stream(
    source: Observable[_T], *, loop: asyncio.AbstractEventLoop | None = None
) -> StreamIterator[_T]:
    """Iterate ``source`` with ``async for`` on ``loop`` (default: the running loop).

    Values published on any thread are delivered on the loop, in order, and
    buffered until read::

        async for state in aiter_stream(user.state_changes):
            print(state)

    Breaking out of the loop, ``await it.aclose()``, ``async with`` or simply
    dropping the iterator unsubscribes. An error on the stream is raised from
    ``__anext__``; completion ends the iteration.

    The iterator holds what it buffered, and its subscription holds the stream:
    over ``app.users_changes`` or ``app.current_user_changes``, whose latest value
    is a ``User``, a live iterator keeps those users (and their App) reachable.
    ``app.events``, ``user.events`` and ``user.state_changes`` carry no objects.
    """
    return StreamIterator(source, loop=loop)
