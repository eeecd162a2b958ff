"""Deadlines sharing one loop timer (``Timers``) behave as one ``asyncio.timeout`` each."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from appusers.adapters._deadline import Deadline, Timers


@contextlib.asynccontextmanager
async def shared(delay: float, timers: Timers) -> AsyncIterator[None]:
    with Deadline(delay, timers):
        yield


@pytest.fixture
async def timers() -> AsyncIterator[Timers]:
    timers = Timers(asyncio.get_running_loop())
    yield timers
    timers.close()


async def test_work_that_finishes_in_time_is_untouched(timers: Timers) -> None:
    async with shared(5, timers):
        await asyncio.sleep(0)
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    assert not timers._pending


async def test_work_past_the_deadline_raises_timeout_error(timers: Timers) -> None:
    with pytest.raises(TimeoutError):
        async with shared(0.01, timers):
            await asyncio.sleep(5)
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_an_elapsed_deadline_fires_on_the_next_loop_iteration(timers: Timers) -> None:
    with pytest.raises(TimeoutError):
        async with shared(0, timers):
            await asyncio.sleep(0.5)


async def test_an_outside_cancellation_stays_a_cancellation(timers: Timers) -> None:
    started = asyncio.Event()

    async def work() -> None:
        async with shared(5, timers):
            started.set()
            await asyncio.sleep(5)

    task = asyncio.create_task(work())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_earlier_deadline_after_a_later_one_fires_on_time(timers: Timers) -> None:
    """The timer is armed for the later deadline first; the earlier one must re-arm it."""
    late_started = asyncio.Event()

    async def late() -> str:
        async with shared(30, timers):
            late_started.set()
            await asyncio.sleep(0.3)
        return "done"

    late_task = asyncio.create_task(late())
    await late_started.wait()
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        async with shared(0.05, timers):
            await asyncio.sleep(5)
    assert time.monotonic() - began < 1
    assert await late_task == "done"  # the other deadline is untouched


async def test_concurrent_deadlines_each_fire_at_their_own_time(timers: Timers) -> None:
    results: dict[float, str] = {}

    async def work(delay: float, duration: float) -> None:
        try:
            async with shared(delay, timers):
                await asyncio.sleep(duration)
            results[delay] = "finished"
        except TimeoutError:
            results[delay] = "timed out"

    await asyncio.gather(work(0.05, 5), work(0.15, 5), work(5, 0.25), work(0.2, 0.01))
    assert results == {0.05: "timed out", 0.15: "timed out", 5: "finished", 0.2: "finished"}
    assert not timers._pending


async def test_a_timer_left_armed_by_finished_work_times_later_work(timers: Timers) -> None:
    """The timer stays armed for a deadline whose work ended; when it fires it re-arms for the rest."""
    async with shared(0.05, timers):
        pass  # ended in time: the timer stays armed for 0.05 s
    with pytest.raises(TimeoutError):
        async with shared(0.2, timers):
            await asyncio.sleep(5)


async def test_close_drops_the_timer(timers: Timers) -> None:
    async with shared(0.05, timers):
        pass
    timers.close()
    assert timers._handle is None
    await asyncio.sleep(0.1)  # nothing fires
