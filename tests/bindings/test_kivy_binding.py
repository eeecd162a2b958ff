"""appusers.bindings.kivy: properties updated on Kivy's thread, the UrlRequest transport, lifetimes.

No window is opened: Kivy's Clock is ticked on the test's asyncio loop exactly as
``App.async_run`` ticks it (``Clock.async_tick``), so the test's thread is Kivy's
thread. State changes are published by a real App on a worker thread's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from ._kivy_env import import_kivy_or_skip

import_kivy_or_skip()

from aiohttp import web  # noqa: E402
from kivy.clock import Clock  # noqa: E402
from reactivex import operators as ops  # noqa: E402
from reactivex.subject import Subject  # noqa: E402

from appusers import App, Credentials, UserState  # noqa: E402
from appusers.adapters import FileStorage  # noqa: E402
from appusers.adapters.transport_contract import (  # noqa: E402
    LoopbackTransportContract,
)
from appusers.bindings.kivy import (  # noqa: E402
    AppModel,
    KivyClockScheduler,
    UrlRequestTransport,
    UserModel,
    storage_for,
)
from appusers.errors import InvalidArgumentError, TransportError  # noqa: E402
from appusers.transport import Request, Transport  # noqa: E402

from ._workers import worker_app  # noqa: E402

AiohttpServer = Callable[..., Any]


@pytest.fixture
async def kivy_clock() -> AsyncIterator[None]:
    """Tick Kivy's Clock on this loop, as ``App.async_run`` does."""
    Clock.init_async_lib("asyncio")

    async def tick() -> None:
        while True:
            await Clock.async_tick()

    task = asyncio.ensure_future(tick())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Let the loop (and so the Clock) run until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the UrlRequest transport passes the transport contract ------------------------------------


class TestUrlRequestTransport(LoopbackTransportContract):
    TIMEOUT = 0.5

    def make_transport(self) -> Transport:
        # No Clock ticking here: the transport dispatches on the awaiting loop by itself.
        return UrlRequestTransport()


async def test_an_app_logs_in_and_out_over_urlrequest(server: Any) -> None:
    async with App(server.app_id, base_url=server.url, transport=UrlRequestTransport()) as app:
        user = await app.log_in(Credentials.anonymous())
        assert await user.functions.sum(1, 2) == 3
        await user.log_out()
        assert user.state is UserState.REMOVED


# -- the scheduler -------------------------------------------------------------------------------


async def test_scheduler_runs_worker_thread_emissions_on_the_clock_thread(kivy_clock: None) -> None:
    kivy_thread = threading.get_ident()
    source: Subject[int] = Subject()
    scheduler = KivyClockScheduler()
    seen: list[tuple[int, int]] = []
    subscription = source.pipe(ops.observe_on(scheduler)).subscribe(
        lambda value: seen.append((value, threading.get_ident()))
    )
    workers = [threading.Thread(target=lambda: [source.on_next(i) for i in range(50)]) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    await until(lambda: len(seen) == 100)
    subscription.dispose()
    assert {thread for _, thread in seen} == {kivy_thread}
    await until(lambda: scheduler.pending == 0)  # nothing is held once run or disposed


async def test_scheduler_holds_actions_strongly_and_disposal_cancels(kivy_clock: None) -> None:
    scheduler = KivyClockScheduler()
    ran: list[str] = []
    # Lambdas nobody else references: the Clock alone would let them be collected.
    scheduler.schedule(lambda *_: ran.append("kept"))
    cancelled = scheduler.schedule_relative(0.01, lambda *_: ran.append("cancelled"))
    gc.collect()
    threading.Thread(target=cancelled.dispose).start()
    await until(lambda: "kept" in ran)
    await asyncio.sleep(0.05)
    assert ran == ["kept"]
    assert scheduler.pending == 0


# -- the models ------------------------------------------------------------------------------------


async def test_properties_follow_a_worker_thread_app_on_the_kivy_thread(
    server: Any, kivy_clock: None
) -> None:
    kivy_thread = threading.get_ident()
    async with worker_app(server) as worker:
        model = AppModel(worker.app)
        callbacks: list[tuple[str, Any, int]] = []

        def record(name: str) -> Callable[[Any, Any], None]:
            return lambda _instance, value: callbacks.append((name, value, threading.get_ident()))

        model.bind(current_user_id=record("current_user_id"), logged_in=record("logged_in"),
                   users=record("users"))
        model.current_user.bind(state=record("state"), email=record("email"),
                                custom_data=record("custom_data"))
        assert (model.logged_in, model.current_user_id, model.users) == (False, "", [])

        ana = await worker.email_user("ana@example.com")
        await until(lambda: model.logged_in)
        assert model.current_user_id == ana.id
        assert model.current_user.user_id == ana.id
        assert model.current_user.state == "LoggedIn"
        assert model.current_user.email == "ana@example.com"
        assert model.users == [
            {"user_id": ana.id, "state": "LoggedIn", "name": "", "email": "ana@example.com", "current": True}
        ]

        await worker.call(ana.functions.set_custom_data({"plan": "pro"}))
        await worker.call(ana.refresh_custom_data())
        await until(lambda: model.current_user.custom_data.get("plan") == "pro")

        bo = await worker.email_user("bo@example.com")
        await until(lambda: model.current_user_id == bo.id)
        assert [row["current"] for row in model.users] == [False, True]

        await worker.log_out(bo)
        await until(lambda: model.current_user_id == ana.id)
        assert [row["state"] for row in model.users] == ["LoggedIn", "LoggedOut"]
        await worker.log_out(ana)
        await until(lambda: not model.logged_in)
        assert model.current_user.state == "" and model.current_user_id == ""

        names = {name for name, _, _ in callbacks}
        assert {"current_user_id", "logged_in", "users", "state", "email", "custom_data"} <= names
        assert {thread for _, _, thread in callbacks} == {kivy_thread}
        assert worker.worker.thread.ident != kivy_thread
        model.dispose()


async def test_actions_switch_users_and_report_errors(app: App, server: Any, kivy_clock: None) -> None:
    model = AppModel(app)
    first = await model.log_in(Credentials.anonymous(reuse=False))
    second = await model.log_in(Credentials.anonymous(reuse=False))
    await until(lambda: model.current_user_id == second.id)
    model.switch_user(first.id)
    await until(lambda: model.current_user_id == first.id)
    assert model.error == ""
    await model.log_out()
    await until(lambda: model.current_user_id == second.id and len(model.users) == 1)
    model.switch_user(first.id)  # removed: the failure is shown, nothing raised
    assert "User does not exist" in model.error or "no user" in model.error
    assert await model.log_in(Credentials.email_password("nobody@example.com", "wrong-pass")) is None
    assert model.error and "wrong-pass" not in model.error
    assert not model.busy
    await model.remove_user(second.id)
    await until(lambda: not model.logged_in and model.users == [])
    model.dispose()


async def test_a_model_never_keeps_an_app_or_user_alive(server: Any, kivy_clock: None) -> None:
    app = App(server.app_id, base_url=server.url)
    user = await app.log_in(Credentials.anonymous())
    model = AppModel(app)
    single = UserModel(user)
    assert model.current_user.user_id == single.user_id == user.id
    await app.aclose()
    app_ref, user_ref = weakref.ref(app), weakref.ref(user)
    del app, user
    gc.collect()
    assert app_ref() is None and user_ref() is None
    assert model.app is None and single.user is None
    model.refresh()
    single.refresh()
    assert (model.logged_in, model.users, single.state) == (False, [], "")


async def test_a_screen_that_goes_away_ends_its_subscriptions(app: App, kivy_clock: None) -> None:
    user = await app.log_in(Credentials.anonymous())
    app_events = app._events
    model = AppModel(app)
    assert app._events is not None and app._events.observers
    model.dispose()
    assert app._events.observers == []
    assert user._state_subject is not None and user._state_subject.observers == []

    dropped = UserModel(user)
    probe = weakref.ref(dropped)
    assert user._state_subject.observers
    del dropped
    gc.collect()
    assert probe() is None
    assert user._state_subject.observers == []  # collected without dispose(): subscriptions ended too
    del app_events


async def test_storage_lives_in_the_kivy_apps_user_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: Any
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    from kivy.app import App as KivyApp

    class UsersDemoApp(KivyApp):  # type: ignore[misc]
        pass

    kivy_app = UsersDemoApp()
    storage = storage_for(kivy_app)
    assert isinstance(storage, FileStorage)
    assert Path(kivy_app.user_data_dir).is_relative_to(tmp_path)
    async with App(server.app_id, base_url=server.url, storage=storage) as first:
        user = await first.log_in(Credentials.anonymous())
    async with App(server.app_id, base_url=server.url, storage=storage_for(kivy_app)) as second:
        assert list(second.all_users) == [user.id]
    assert any(Path(kivy_app.user_data_dir).iterdir())


# -- what the transport adds on top of UrlRequest: redirects and the http rule ---------------


@pytest.fixture
async def two_origins(aiohttp_server: AiohttpServer) -> AsyncIterator[tuple[str, str, list[dict[str, Any]]]]:
    """Two servers on 127.0.0.1 (so two origins) that record what reached them."""
    seen: list[dict[str, Any]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append({"origin": request.host, "method": request.method, "path": request.path,
                     "authorization": request.headers.get("Authorization"), "body": await request.read()})
        if request.path == "/loop":
            return web.Response(status=301, headers={"Location": "/loop"})
        if "to" in request.query:
            status, location = int(request.query["status"]), request.query["to"]
            return web.Response(status=status, headers={"Location": location})
        return web.Response(text="landed")

    apps = []
    for _ in range(2):
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        apps.append(await aiohttp_server(app))
    first, second = (str(server.make_url("")).rstrip("/") for server in apps)
    yield first, second, seen


async def test_redirects_follow_fetch_rules(two_origins: tuple[str, str, list[dict[str, Any]]]) -> None:
    first, second, seen = two_origins
    auth = {"Authorization": "Bearer not-for-others"}
    async with UrlRequestTransport() as transport:
        kept = await transport.send(Request("POST", f"{first}/a?status=307&to=/b", auth, b"body"))
        assert (kept.status, kept.body) == (200, b"landed")
        hops = [(s["method"], s["path"], s["body"]) for s in seen]
        assert hops == [("POST", "/a", b"body"), ("POST", "/b", b"body")]
        seen.clear()
        await transport.send(Request("POST", f"{first}/a?status=302&to=/b", auth, b"body"))
        assert [(s["method"], s["body"]) for s in seen] == [("POST", b"body"), ("GET", b"")]
        seen.clear()
        await transport.send(Request("GET", f"{first}/a?status=308&to={second}/c", auth))
        assert [s["authorization"] for s in seen] == ["Bearer not-for-others", None]
        assert seen[1]["path"] == "/c"
        seen.clear()
        with pytest.raises(TransportError, match="redirects"):
            await transport.send(Request("GET", f"{first}/loop"))
        assert len(seen) == 11  # the request and MAX_REDIRECTS hops


async def test_plain_http_is_only_for_loopback() -> None:
    async with UrlRequestTransport() as transport:
        # Refused before any connection is attempted.
        with pytest.raises(InvalidArgumentError, match="loopback"):
            await transport.send(Request("GET", "http://example.com/api"))
        with pytest.raises(InvalidArgumentError):
            await transport.send(Request("GET", "ftp://127.0.0.1/x"))
