"""appusers.bindings.asyncio: delivery on the loop thread, ``async for``, wait_for, no leaks.

State changes are published by a real App running on a worker thread's own loop
(against the local server); the consumers run on the test's loop, whose debug
mode turns any non-thread-safe call into an error.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from typing import Any

import pytest
import reactivex
from reactivex import operators as ops
from reactivex.subject import Subject

from appusers import App, AppEvent, Credentials, CurrentUserChanged, LoggedOut, LogoutCause, UserState
from appusers.bindings.asyncio import AsyncioScheduler, StreamIterator, aiter_stream

from ._workers import worker_app


def other_tasks() -> set[asyncio.Task[Any]]:
    current = asyncio.current_task()
    return {task for task in asyncio.all_tasks() if task is not current}


@pytest.fixture(autouse=True)
async def debug_loop() -> None:
    # Debug mode makes asyncio raise on loop calls from a foreign thread.
    asyncio.get_running_loop().set_debug(True)


# -- the scheduler -------------------------------------------------------------------------


async def test_observe_on_delivers_on_the_loop_thread_in_order() -> None:
    loop_thread = threading.get_ident()
    source: Subject[int] = Subject()
    seen: list[tuple[int, int]] = []
    done = asyncio.Event()

    def record(value: int) -> None:
        seen.append((value, threading.get_ident()))
        if value == 199:
            done.set()

    subscription = source.pipe(ops.observe_on(AsyncioScheduler())).subscribe(record)

    def emit(start: int) -> None:
        for value in range(start, start + 100):
            source.on_next(value)

    first = threading.Thread(target=emit, args=(0,))
    first.start()
    first.join()
    second = threading.Thread(target=emit, args=(100,))
    second.start()
    second.join()
    await asyncio.wait_for(done.wait(), 5)
    subscription.dispose()
    assert [value for value, _ in seen] == list(range(200))
    assert {thread for _, thread in seen} == {loop_thread}


async def test_dispose_from_another_thread_never_blocks_and_cancels() -> None:
    scheduler = AsyncioScheduler()
    ran: list[str] = []
    soon = scheduler.schedule(lambda *_: ran.append("soon"))
    later = scheduler.schedule_relative(0.05, lambda *_: ran.append("later"))
    kept = scheduler.schedule_relative(0.05, lambda *_: ran.append("kept"))
    # The loop thread is blocked in join(): reactivex's own thread-safe scheduler would
    # deadlock here, waiting for the loop to confirm the cancellation.
    worker = threading.Thread(target=lambda: (soon.dispose(), later.dispose()))
    worker.start()
    worker.join(2)
    assert not worker.is_alive()
    await asyncio.sleep(0.15)
    assert ran == ["kept"]
    kept.dispose()


async def test_scheduling_onto_a_closed_loop_is_dropped() -> None:
    closed = asyncio.new_event_loop()
    closed.close()
    scheduler = AsyncioScheduler(closed)
    disposable = scheduler.schedule(lambda *_: pytest.fail("ran on a closed loop"))
    disposable.dispose()
    assert scheduler.loop is closed


# -- async for over user and app streams ------------------------------------------------------


async def test_async_for_over_state_changes_published_by_a_worker_thread(server: Any) -> None:
    loop_thread = threading.get_ident()
    async with worker_app(server) as worker:
        user = await worker.email_user("ana@example.com")
        published_on: list[int] = []
        source = user.state_changes.pipe(ops.do_action(lambda _: published_on.append(threading.get_ident())))
        states: list[UserState] = []
        async with aiter_stream(source) as stream:
            async for state in stream:
                assert threading.get_ident() == loop_thread
                states.append(state)
                if state is UserState.LOGGED_IN:
                    await worker.log_out(user)
                else:
                    break
        assert states == [UserState.LOGGED_IN, UserState.LOGGED_OUT]
        assert published_on[-1] == worker.worker.thread.ident != loop_thread


async def test_async_for_over_app_streams_and_logout_cause(server: Any) -> None:
    async with worker_app(server) as worker:
        current = aiter_stream(worker.app.current_user_changes)
        app_events: StreamIterator[AppEvent] = aiter_stream(worker.app.events)
        assert await current.__anext__() is None  # replayed on subscribe
        user = await worker.email_user("bo@example.com")
        assert await current.__anext__() is user
        user_events = aiter_stream(user.events)
        await worker.log_out(user)
        logged_out = await asyncio.wait_for(user_events.__anext__(), 5)
        assert logged_out == LoggedOut(user.id, LogoutCause.USER_REQUEST, UserState.LOGGED_OUT)
        assert await current.__anext__() is None
        kinds = []
        while not kinds or kinds[-1] != CurrentUserChanged(None):
            kinds.append(await asyncio.wait_for(app_events.__anext__(), 5))
        assert CurrentUserChanged(user.id) in kinds
        for stream in (current, app_events, user_events):
            await stream.aclose()


async def test_errors_and_completion_end_the_iteration() -> None:
    source: Subject[int] = Subject()
    stream = aiter_stream(source)
    threading.Thread(target=lambda: (source.on_next(1), source.on_error(ValueError("boom")))).start()
    assert await stream.__anext__() == 1
    with pytest.raises(ValueError, match="boom"):
        await stream.__anext__()
    assert stream.closed
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()
    assert [x async for x in aiter_stream(reactivex.of(1, 2, 3))] == [1, 2, 3]


async def test_cancelling_a_pending_next_loses_nothing() -> None:
    source: Subject[str] = Subject()
    stream = aiter_stream(source)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(stream.__anext__(), 0.01)
    waiter = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0)
    waiter.cancel()
    source.on_next("kept")  # arrives after the cancellation, before anyone reads again
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert await stream.__anext__() == "kept"
    await stream.aclose()


async def test_aclose_wakes_a_waiting_reader() -> None:
    stream = aiter_stream(Subject[int]())
    reader = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0)
    await stream.aclose()
    with pytest.raises(StopAsyncIteration):
        await reader


# -- lifetimes -------------------------------------------------------------------------------


async def test_a_dropped_iterator_leaves_no_subscription_and_no_task(app: App) -> None:
    user = await app.log_in(Credentials.anonymous())
    before = other_tasks()
    stream = aiter_stream(user.state_changes)
    async for state in stream:
        assert state is UserState.LOGGED_IN
        break
    probe = weakref.ref(stream)
    del stream
    gc.collect()
    assert probe() is None
    assert user._state_subject is not None and user._state_subject.observers == []
    assert other_tasks() <= before


async def test_breaking_out_of_async_for_unsubscribes_even_while_referenced(app: App) -> None:
    source: Subject[int] = Subject()
    stream = aiter_stream(source)
    source.on_next(1)
    async for _ in stream:
        await stream.aclose()
    assert source.observers == []


async def test_iterators_never_keep_an_app_or_user_alive(server: Any) -> None:
    app = App(server.app_id, base_url=server.url)
    user = await app.log_in(Credentials.anonymous())
    # Not users_changes/current_user_changes: their subjects hold the latest value (users) by design.
    streams = [aiter_stream(app.events), aiter_stream(user.state_changes), aiter_stream(user.events)]
    assert await streams[1].__anext__() is UserState.LOGGED_IN
    await app.aclose()
    app_ref, user_ref = weakref.ref(app), weakref.ref(user)
    del app, user
    gc.collect()
    assert app_ref() is None and user_ref() is None
    for stream in streams:
        await stream.aclose()


# -- User.wait_for ------------------------------------------------------------------------------


async def test_wait_for_a_state_published_by_a_worker_thread(server: Any) -> None:
    async with worker_app(server) as worker:
        user = await worker.email_user("cy@example.com")
        await user.wait_for(UserState.LOGGED_IN)  # already there: returns at once
        waiting = asyncio.ensure_future(user.wait_for(UserState.LOGGED_OUT, timeout=5))
        await asyncio.sleep(0)
        assert not waiting.done()
        await worker.log_out(user)
        await waiting
        assert user.state is UserState.LOGGED_OUT
        assert user._state_subject is not None and user._state_subject.observers == []


async def test_wait_for_times_out_and_unsubscribes(app: App) -> None:
    user = await app.log_in(Credentials.anonymous())
    with pytest.raises(TimeoutError):
        await user.wait_for(UserState.LOGGED_OUT, timeout=0.02)
    assert user._state_subject is not None and user._state_subject.observers == []
