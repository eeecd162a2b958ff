"""``LoopThread``: an asyncio event loop on a thread of its own, for callers that have none.

The core is asyncio; a GUI thread (the Qt binding) or plain blocking code (``appusers.sync``)
must not run that loop itself. Both hand their work to one of these: the App lives on the
loop thread, callers post coroutines to it and get ``concurrent.futures.Future`` results
back. Shutting down cancels and awaits whatever is still pending there, so no "task was
destroyed but it is pending" or never-awaited coroutine warning is left behind.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread"]

_T = TypeVar("_T")
_log = logging.getLogger("appusers")


class LoopThread:
    """An asyncio loop running on a daemon thread, started at construction.

    ::

        loop = LoopThread()
        future = loop.submit(app.open())   # a concurrent.futures.Future, never blocks
        user = loop.run(app.log_in(creds)) # blocks until done (not from the loop thread)
        loop.stop(app.aclose())            # runs the closing coroutines, then joins

    Everything touching an App should run on this loop: coroutines through
    :meth:`submit` / :meth:`run`, plain callables through :meth:`call_soon` / :meth:`call`.
    """

    def __init__(self, *, name: str = "appusers-core") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._stopped = False
        self._stop_lock = threading.Lock()
        self._thread.start()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} thread={self._thread.name!r} running={self.running}>"

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stopped

    def in_loop_thread(self) -> bool:
        """Whether the caller runs on the loop thread."""
        return threading.get_ident() == self._thread.ident

    def submit(self, coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        """Run ``coro`` on the loop; safe from any thread, never blocks."""
        if self._stopped:
            coro.close()
            raise RuntimeError("the core loop is stopped")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def run(self, coro: Coroutine[Any, Any, _T], timeout: float | None = None) -> _T:
        """Run ``coro`` on the loop and block until it is done; its result or its exception.

        Refused on the loop thread itself (it would wait for itself forever). If the wait
        is interrupted (``KeyboardInterrupt``, ``timeout``), the coroutine is cancelled.
        """
        if self.in_loop_thread():
            coro.close()
            raise RuntimeError("a blocking call on the core loop's own thread would deadlock")
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Call ``fn(*args)`` on the loop thread soon; safe from any thread."""
        if self._stopped:
            raise RuntimeError("the core loop is stopped")
        self._loop.call_soon_threadsafe(fn, *args)

    def call(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Call ``fn(*args)`` on the loop thread and return its result (directly when already there)."""
        if self.in_loop_thread():
            return fn(*args)

        async def call() -> _T:
            return fn(*args)

        return self.run(call())

    def stop(self, *closing: Coroutine[Any, Any, Any], timeout: float = 10.0) -> None:
        """Run the ``closing`` coroutines (e.g. ``app.aclose()``), then stop and join the thread.

        Blocks the caller until then. Idempotent; refused on the loop thread itself.
        """
        if self.in_loop_thread():
            for coro in closing:
                coro.close()
            raise RuntimeError(f"{type(self).__name__}.stop() cannot be called from the loop thread itself")
        with self._stop_lock:
            if self._stopped:
                for coro in closing:
                    coro.close()
                return
            if closing:
                done = asyncio.run_coroutine_threadsafe(_gather_quietly(closing), self._loop)
                try:
                    done.result(timeout)
                except concurrent.futures.TimeoutError:
                    _log.warning("closing took longer than %.1f s", timeout)
            self._stopped = True
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)

    def __enter__(self) -> LoopThread:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            # Whatever is still pending is cancelled and awaited, so no "task was destroyed
            # but it is pending" and no never-awaited coroutine warnings at exit.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            asyncio.set_event_loop(None)
            loop.close()


async def _gather_quietly(coros: tuple[Coroutine[Any, Any, Any], ...]) -> None:
    results = await asyncio.gather(*coros, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            _log.warning("closing raised %s", type(result).__name__)
