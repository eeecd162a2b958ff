"""``CoreLoop``: an asyncio event loop on a thread of its own, where the App runs.

Why a core thread rather than asyncio on the Qt event loop: the App does real work
between awaits (restoring 100,000 users from storage, JSON and JWT parsing, storage
writes), and on the GUI thread every such slice would freeze the window. On its own
thread the core can take as long as it likes; the GUI thread only ever posts work to
it and receives results and stream values back through :class:`GuiScheduler`.
It also keeps the default aiohttp transport (which needs a plain asyncio loop) usable.
See docs/bindings-qt.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["CoreLoop"]

_T = TypeVar("_T")
_log = logging.getLogger("appusers.bindings.qt")


class CoreLoop:
    """An asyncio loop running on a daemon thread, started at construction.

    ::

        core = CoreLoop()
        future = core.submit(app.open())   # a concurrent.futures.Future
        ...
        core.stop(app.aclose())            # after QApplication.exec() returns

    Everything touching an App should run on this loop: submit coroutines with
    :meth:`submit`, plain callables with :meth:`call_soon`.
    """

    def __init__(self, *, name: str = "appusers-core") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._stopped = False
        self._thread.start()

    def __repr__(self) -> str:
        return f"<CoreLoop thread={self._thread.name!r} running={self.running}>"

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
        """Whether the caller runs on the core thread."""
        return threading.get_ident() == self._thread.ident

    def submit(self, coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        """Run ``coro`` on the core loop; safe from any thread, never blocks."""
        if self._stopped:
            coro.close()
            raise RuntimeError("the core loop is stopped")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Call ``fn(*args)`` on the core thread soon; safe from any thread."""
        if self._stopped:
            raise RuntimeError("the core loop is stopped")
        self._loop.call_soon_threadsafe(fn, *args)

    def stop(self, *closing: Coroutine[Any, Any, Any], timeout: float = 10.0) -> None:
        """Run the ``closing`` coroutines (e.g. ``app.aclose()``), then stop and join the thread.

        Blocks the caller until then: call it once the GUI is finished, after
        ``QApplication.exec()`` returns, never from a slot. Idempotent.
        """
        if self.in_loop_thread():
            raise RuntimeError("CoreLoop.stop() cannot be called from the core thread itself")
        if self._stopped:
            for coro in closing:
                coro.close()
            return
        if closing:
            done = asyncio.run_coroutine_threadsafe(_gather_quietly(closing), self._loop)
            try:
                done.result(timeout)
            except concurrent.futures.TimeoutError:
                _log.warning("closing the App took longer than %.1f s", timeout)
        self._stopped = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)

    def __enter__(self) -> CoreLoop:
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
