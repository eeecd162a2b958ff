"""The adapter's per-request deadline behaves as ``asyncio.timeout`` does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from appusers.adapters._aiohttp import _Deadline


def _asyncio_timeout(delay: float) -> Any:
    return asyncio.timeout(delay)


@contextlib.asynccontextmanager
async def _deadline(delay: float) -> Any:
    with _Deadline(delay):
        yield


KINDS: dict[str, Callable[[float], Any]] = {"asyncio.timeout": _asyncio_timeout, "_Deadline": _deadline}


@pytest.mark.parametrize("kind", KINDS)
async def test_work_that_finishes_in_time_is_untouched(kind: str) -> None:
    async with KINDS[kind](5):
        await asyncio.sleep(0)
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", KINDS)
async def test_work_past_the_deadline_raises_timeout_error(kind: str) -> None:
    with pytest.raises(TimeoutError):
        async with KINDS[kind](0.01):
            await asyncio.sleep(5)
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", KINDS)
async def test_an_elapsed_deadline_fires_on_the_next_loop_iteration(kind: str) -> None:
    with pytest.raises(TimeoutError):
        async with KINDS[kind](0):
            await asyncio.sleep(0.5)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_cancellation_from_outside_stays_a_cancellation(kind: str) -> None:
    started = asyncio.Event()

    async def work() -> None:
        async with KINDS[kind](5):
            started.set()
            await asyncio.sleep(5)

    task = asyncio.create_task(work())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("kind", KINDS)
async def test_an_outside_cancellation_racing_the_deadline_wins(kind: str) -> None:
    async def work() -> None:
        async with KINDS[kind](0.01):
            asyncio.current_task().cancel()  # type: ignore[union-attr]  # a second request to cancel
            await asyncio.sleep(5)

    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(work())
