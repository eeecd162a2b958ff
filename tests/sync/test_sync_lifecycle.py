"""appusers.sync's lifecycle and its refusals: closing cleanly, running-loop and loop-thread calls."""

from __future__ import annotations

import asyncio
import gc
import threading

import pytest

from appusers import Credentials, UserState
from appusers._loop_thread import LoopThread
from appusers.adapters import MemoryStorage
from appusers.errors import AppClosedError, ClientError, InvalidArgumentError
from appusers.sync import App, BlockingCallError, User
from appusers.testing import ServerThread

WAIT = 10.0


def sync_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("appusers-sync")]


def make(server: ServerThread, **kwargs: object) -> App:
    return App(server.app_id, base_url=server.url, storage=MemoryStorage(), **kwargs)  # type: ignore[arg-type]


def test_the_with_block_closes_the_app_and_joins_its_thread(appusers_server_thread: ServerThread) -> None:
    before = sync_threads()
    with make(appusers_server_thread) as app:
        thread = app.loop_thread.thread
        assert thread.is_alive() and thread not in before
        app.log_in(Credentials.anonymous()).functions.sum(1)
        core = app.core
    assert app.closed and core.closed and not thread.is_alive()
    assert sync_threads() == before


def test_an_app_dropped_unclosed_is_closed_when_collected(appusers_server_thread: ServerThread) -> None:
    app = make(appusers_server_thread)
    app.log_in(Credentials.anonymous())
    thread, core = app.loop_thread.thread, app.core
    del app
    gc.collect()
    thread.join(WAIT)
    assert not thread.is_alive() and core.closed


def test_a_call_inside_a_running_event_loop_is_refused_clearly(appusers_server_thread: ServerThread) -> None:
    with make(appusers_server_thread) as app:

        async def misuse() -> None:
            app.log_in(Credentials.anonymous())

        with pytest.raises(BlockingCallError, match="running asyncio event loop") as caught:
            asyncio.run(misuse())
        assert isinstance(caught.value, ClientError) and isinstance(caught.value, RuntimeError)
        assert app.all_users == {}  # nothing was sent

        async def right_way() -> int:
            user = await asyncio.to_thread(app.log_in, Credentials.anonymous())
            result: int = await asyncio.to_thread(user.functions.sum, 2, 3)
            return result

        assert asyncio.run(right_way()) == 5


def test_constructing_inside_a_running_loop_is_refused_and_starts_no_thread(
    appusers_server_thread: ServerThread,
) -> None:
    before = sync_threads()

    async def construct() -> None:
        make(appusers_server_thread)

    with pytest.raises(BlockingCallError, match="allow_running_loop=True"):
        asyncio.run(construct())
    assert sync_threads() == before


def test_allow_running_loop_is_what_a_notebook_needs(appusers_server_thread: ServerThread) -> None:
    async def cell() -> int:
        # A notebook cell: code that runs inside the kernel's event loop and blocks it.
        with make(appusers_server_thread, allow_running_loop=True) as app:
            total: int = app.log_in(Credentials.anonymous()).functions.sum(20, 22)
            return total

    assert asyncio.run(cell()) == 42
    with pytest.raises(InvalidArgumentError):
        make(appusers_server_thread, allow_running_loop="yes")


def test_a_blocking_call_from_a_stream_callback_is_refused_not_deadlocked(
    appusers_server_thread: ServerThread,
) -> None:
    with make(appusers_server_thread) as app:
        user = app.log_in(Credentials.anonymous(reuse=False))
        outcome: list[object] = []
        done = threading.Event()

        def on_state(state: UserState) -> None:
            if state is UserState.REMOVED:
                return
            try:
                outcome.append(user.is_anonymous())  # a read: fine on the loop thread
                user.functions.sum(1)  # a blocking call: would wait for itself
            except BlockingCallError as exc:
                outcome.append(exc)
            try:
                app.close()
            except BlockingCallError as exc:
                outcome.append(exc)
            done.set()

        user.state_changes.subscribe(on_state)
        assert done.wait(WAIT)
        assert outcome[0] is True
        assert all(isinstance(e, BlockingCallError) and "own loop thread" in str(e) for e in outcome[1:])
        assert len(outcome) == 3 and not app.closed


def test_a_failed_construction_leaves_no_thread_behind() -> None:
    before = sync_threads()
    with pytest.raises(InvalidArgumentError):
        App("", base_url="http://127.0.0.1:9", storage=MemoryStorage())
    with pytest.raises(InvalidArgumentError):
        App("app", base_url="ftp://example.com", storage=MemoryStorage())
    assert sync_threads() == before


def test_user_objects_reject_foreign_arguments(appusers_server_thread: ServerThread) -> None:
    with make(appusers_server_thread) as app:
        with pytest.raises(InvalidArgumentError):
            app.remove_user("someone")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError):
            app.log_in("anonymous")  # type: ignore[arg-type]
        user = app.log_in(Credentials.anonymous())
        assert isinstance(user, User) and repr(user) == repr(user.core)


def test_loop_thread_run_cancels_the_coroutine_when_the_wait_is_cut_short() -> None:
    loop = LoopThread(name="appusers-test")
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    try:
        with pytest.raises(TimeoutError):
            loop.run(forever(), timeout=0.05)
        assert cancelled.wait(WAIT)

        async def where() -> bool:
            return loop.in_loop_thread()

        assert loop.run(where()) is True
        assert loop.call(loop.in_loop_thread) is True

        async def nested() -> None:
            loop.run(where())

        with pytest.raises(RuntimeError, match="deadlock"):
            loop.run(nested())
    finally:
        loop.stop()
    assert repr(loop) == "<LoopThread thread='appusers-test' running=False>"


def test_closing_from_another_thread_unblocks_a_waiting_call(appusers_server_thread: ServerThread) -> None:
    app = make(appusers_server_thread)
    user = app.log_in(Credentials.anonymous())
    notes = user.mongo_client("mongodb-atlas").db("app").collection("notes")
    outcome: list[BaseException] = []
    opened = threading.Event()

    def watcher() -> None:
        try:
            with notes.watch() as changes:
                opened.set()
                next(changes)  # no change will come: blocks until the App goes
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=watcher)
    thread.start()
    assert opened.wait(WAIT)
    app.close()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], AppClosedError), outcome
