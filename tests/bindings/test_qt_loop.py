"""CoreLoop: the App's asyncio loop on a thread of its own."""

from __future__ import annotations

import asyncio
import threading

import pytest

from appusers.bindings.qt import CoreLoop


def test_coroutines_run_on_the_core_thread_and_results_come_back() -> None:
    core = CoreLoop()
    try:
        async def where() -> int | None:
            await asyncio.sleep(0)
            return threading.get_ident()

        assert core.submit(where()).result(5) == core.thread.ident != threading.get_ident()
        seen: list[bool] = []
        done = threading.Event()
        core.call_soon(lambda: (seen.append(core.in_loop_thread()), done.set()))
        assert done.wait(5) and seen == [True]
        assert not core.in_loop_thread()
    finally:
        core.stop()


def test_stop_runs_the_closing_coroutines_then_cancels_what_is_left() -> None:
    core = CoreLoop()
    closed: list[str] = []
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def close() -> None:
        closed.append("closed")

    pending = core.submit(forever())
    core.stop(close())
    assert closed == ["closed"]
    assert cancelled.is_set() and pending.cancelled()
    assert not core.running and not core.thread.is_alive()
    core.stop()  # idempotent
    coro = close()
    with pytest.raises(RuntimeError):
        core.submit(coro)  # closed for us: no "never awaited" warning
    with pytest.raises(RuntimeError):
        core.call_soon(print)


def test_stop_from_the_core_thread_is_refused() -> None:
    core = CoreLoop()
    try:
        async def stop_here() -> None:
            core.stop()

        with pytest.raises(RuntimeError):
            core.submit(stop_here()).result(5)
    finally:
        core.stop()
