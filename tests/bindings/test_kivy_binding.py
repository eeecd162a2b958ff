"""appusers.bindings.kivy: properties updated on Kivy's thread, the UrlRequest transport, lifetimes.

No window is opened: Kivy's Clock is ticked on the test's asyncio loop exactly as
``App.async_run`` ticks it (``Clock.async_tick``), so the test's thread is Kivy's
thread. State changes are published by a real App on a worker thread's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import gc
import ipaddress
import socket
import ssl
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
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
    CANARY,
    LoopbackTransportContract,
)
from appusers.bindings.kivy import (  # noqa: E402
    AppModel,
    KivyClockScheduler,
    UrlRequestTransport,
    UserModel,
    storage_for,
    user_data_dir,
)
from appusers.bindings.kivy._transport import _BUFFERED_CHUNKS  # noqa: E402
from appusers.errors import (  # noqa: E402
    AppClosedError,
    InvalidArgumentError,
    RequestTimeoutError,
    TransportError,
)
from appusers.transport import Request, StreamingTransport, Transport  # noqa: E402

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


async def test_an_app_watches_a_collection_over_urlrequest(server: Any) -> None:
    transport = UrlRequestTransport()
    assert isinstance(transport, StreamingTransport)
    async with App(server.app_id, base_url=server.url, transport=transport) as app:
        user = await app.log_in(Credentials.anonymous())
        coll = user.mongo_client("mongodb-atlas").db("d").collection("c")
        async with coll.watch() as changes:
            # The demo rules: a user's documents carry their id in owner_id.
            inserted = (await coll.insert_one({"owner_id": user.id, "n": 1})).inserted_id
            async with asyncio.timeout(5):
                change = await anext(changes)
        assert change.operation_type == "insert"
        assert change.full_document == {"_id": inserted, "owner_id": user.id, "n": 1}
        assert change.namespace == {"db": "d", "coll": "c"}
        # The server learns of the closed connection at its next write.
        await coll.insert_one({"owner_id": user.id, "n": 2})
        await until(lambda: len(server._server_app.streams) == 0)


# -- streaming over UrlRequest: pieces as they arrive, bounded waits, prompt closing ----------------


class HeldStream:
    """A server-side event stream the test drives: it writes what is put in ``outbox`` and
    sets ``gone`` when the client's connection ends (the test server cancels the handler)."""

    def __init__(self) -> None:
        self.outbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.gone = asyncio.Event()

    async def handler(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        try:
            await response.prepare(request)
            while True:
                await response.write(await self.outbox.get())
        except (asyncio.CancelledError, ConnectionResetError):
            self.gone.set()
            raise


@pytest.fixture
async def held(aiohttp_server: AiohttpServer) -> tuple[HeldStream, str]:
    stream = HeldStream()
    app = web.Application()
    app.router.add_get("/events", stream.handler)
    test_server = await aiohttp_server(app)
    return stream, str(test_server.make_url("/events"))


async def test_stream_pieces_arrive_as_sent_and_leaving_closes_the_connection(
    held: tuple[HeldStream, str],
) -> None:
    stream, url = held
    async with UrlRequestTransport() as transport:
        async with transport.open_stream(Request("GET", url, timeout=5)) as response:
            assert (response.status, response.headers["content-type"]) == (200, "text/event-stream")
            assert response.url == url
            lines = response.iter_lines()
            for n in range(3):  # each event is read while the body is still open
                stream.outbox.put_nowait(f"data: {n}\n\n".encode())
                async with asyncio.timeout(5):
                    assert [await anext(lines), await anext(lines)] == [f"data: {n}".encode(), b""]
            assert "1 streams open" in repr(transport)
            left = time.monotonic()
        async with asyncio.timeout(1):
            await stream.gone.wait()
        assert time.monotonic() - left < 1.0
        assert "0 in flight, 0 streams open" in repr(transport)


async def test_idle_timeout_bounds_each_wait_for_the_next_piece(held: tuple[HeldStream, str]) -> None:
    stream, url = held
    async with UrlRequestTransport() as transport:
        request = Request("GET", f"{url}?baas_at={CANARY}", timeout=5)
        async with transport.open_stream(request, idle_timeout=0.3) as response:
            lines = response.iter_lines()
            stream.outbox.put_nowait(b"data: a\n")
            assert await anext(lines) == b"data: a"
            started = time.monotonic()
            with pytest.raises(RequestTimeoutError) as caught:
                await anext(lines)
            assert 0.29 <= time.monotonic() - started <= 0.45
            assert url in str(caught.value) and CANARY not in str(caught.value)
            stream.outbox.put_nowait(b"data: b\n")  # an idle expiry does not end the stream
            assert await anext(lines) == b"data: b"
        with pytest.raises(InvalidArgumentError, match="idle_timeout"):
            async with transport.open_stream(request, idle_timeout=0):
                raise AssertionError("unreachable")


async def test_the_open_timeout_does_not_bound_a_quiet_stream(held: tuple[HeldStream, str]) -> None:
    stream, url = held
    async with UrlRequestTransport() as transport:
        async with transport.open_stream(Request("GET", url, timeout=0.2)) as response:
            await asyncio.sleep(0.4)  # quiet for twice the timeout that bounded the opening
            stream.outbox.put_nowait(b"data: late\n")
            async with asyncio.timeout(5):
                assert await anext(response.iter_lines()) == b"data: late"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A self-signed certificate for 127.0.0.1, its key appended (one PEM file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "appusers kivy test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path_factory.mktemp("tls") / "cert.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    return path


async def test_a_tls_stream_verifies_reads_and_closes(
    aiohttp_server: AiohttpServer, certificate: Path
) -> None:
    stream = HeldStream()
    app = web.Application()
    app.router.add_get("/events", stream.handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate)
    url = str((await aiohttp_server(app, ssl=context)).make_url("/events"))
    assert url.startswith("https://127.0.0.1:")
    async with UrlRequestTransport() as untrusting:
        with pytest.raises(TransportError, match="SSLCertVerificationError"):
            async with untrusting.open_stream(Request("GET", url, timeout=5)):
                raise AssertionError("unreachable")
    async with UrlRequestTransport(ca_file=str(certificate)) as transport:
        async with transport.open_stream(Request("GET", url, timeout=5)) as response:
            stream.outbox.put_nowait(b"data: sealed\n")
            async with asyncio.timeout(5):
                assert await anext(response.iter_lines()) == b"data: sealed"
        async with asyncio.timeout(1):
            await stream.gone.wait()


async def test_cancelling_a_reader_closes_its_connection(held: tuple[HeldStream, str]) -> None:
    stream, url = held
    opened = asyncio.Event()

    async def reader(transport: UrlRequestTransport) -> None:
        async with transport.open_stream(Request("GET", url)) as response:
            opened.set()
            async for _line in response.iter_lines():
                pass

    async with UrlRequestTransport() as transport:
        task = asyncio.create_task(reader(transport))
        async with asyncio.timeout(5):
            await opened.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with asyncio.timeout(1):
            await stream.gone.wait()


async def test_aclose_interrupts_an_open_stream(held: tuple[HeldStream, str]) -> None:
    stream, url = held
    transport = UrlRequestTransport()
    async with transport.open_stream(Request("GET", url)) as response:
        reading = asyncio.ensure_future(anext(response.iter_lines()))
        await asyncio.sleep(0)  # the reader is now waiting for a piece
        await transport.aclose()
        async with asyncio.timeout(1):
            with pytest.raises(AppClosedError):
                await reading
    async with asyncio.timeout(1):
        await stream.gone.wait()
    with pytest.raises(AppClosedError):
        async with transport.open_stream(Request("GET", url)):
            raise AssertionError("unreachable")


@pytest.fixture
async def cut_short() -> AsyncIterator[Callable[[bytes], Awaitable[str]]]:
    """Raw HTTP servers that send a response head and part of its body, then hang up."""
    servers: list[asyncio.Server] = []

    async def start(raw: bytes) -> str:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(raw)
            await writer.drain()
            writer.close()

        srv = await asyncio.start_server(answer, "127.0.0.1", 0)
        servers.append(srv)
        return f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}/events"

    yield start
    for srv in servers:
        srv.close()
        await srv.wait_closed()


@pytest.mark.parametrize(
    "framing",
    [b"Content-Length: 100\r\n\r\ndata: 1\n", b"Transfer-Encoding: chunked\r\n\r\n8\r\ndata: 1\n\r\n"],
    ids=["content-length", "chunked"],
)
async def test_a_body_cut_short_is_an_error_not_an_end(
    cut_short: Callable[[bytes], Awaitable[str]], framing: bytes
) -> None:
    url = await cut_short(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n" + framing)
    async with UrlRequestTransport() as transport:
        async with transport.open_stream(Request("GET", f"{url}?baas_at={CANARY}", timeout=5)) as response:
            lines = response.iter_lines()
            assert await anext(lines) == b"data: 1"
            with pytest.raises(TransportError) as caught:
                await anext(lines)
    assert not isinstance(caught.value, RequestTimeoutError)
    assert "IncompleteRead" in str(caught.value) and CANARY not in repr(caught.value)
    assert caught.value.__cause__ is None and caught.value.__context__ is None


async def test_a_slow_reader_holds_back_the_worker(aiohttp_server: AiohttpServer) -> None:
    payload = bytes(range(256)) * 32768  # 8 MiB: many more pieces than may wait unread

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=payload, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/big", big)
    url = str((await aiohttp_server(app)).make_url("/big"))
    async with UrlRequestTransport() as transport:
        async with transport.open_stream(Request("GET", url, timeout=5)) as response:
            waiting = response._feed._queue
            await until(lambda: waiting.qsize() >= _BUFFERED_CHUNKS)
            await asyncio.sleep(0.05)  # the worker had time to read on, had it not been held back
            assert waiting.qsize() == _BUFFERED_CHUNKS
            assert b"".join([chunk async for chunk in response.iter_chunks()]) == payload


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



def test_storage_for_creates_the_config_directory_of_a_fresh_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fresh HOME has no ~/.config: Kivy's own user_data_dir raises FileNotFoundError there.
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    from kivy.app import App as KivyApp

    class FreshHomeApp(KivyApp):  # type: ignore[misc]
        pass

    storage = storage_for(FreshHomeApp())
    assert storage.path == home / ".config" / "freshhome" / "appusers-users.json"
    assert (home / ".config").stat().st_mode & 0o777 == 0o700
    assert user_data_dir(FreshHomeApp()) == home / ".config" / "freshhome"


def test_user_data_dir_reports_a_path_it_cannot_create(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(blocker / "config"))
    from kivy.app import App as KivyApp

    class BlockedApp(KivyApp):  # type: ignore[misc]
        pass

    with pytest.raises(OSError):
        user_data_dir(BlockedApp())
    assert blocker.read_text() == "x"


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


async def test_streams_follow_the_same_redirect_rules(
    two_origins: tuple[str, str, list[dict[str, Any]]],
) -> None:
    first, second, seen = two_origins
    auth = {"Authorization": "Bearer not-for-others"}
    async with UrlRequestTransport() as transport:
        hop = Request("GET", f"{first}/a?status=308&to={second}/c", auth)
        async with transport.open_stream(hop) as stream:
            assert (stream.status, stream.url) == (200, f"{second}/c")
            assert await stream.read() == b"landed"
        assert [s["authorization"] for s in seen] == ["Bearer not-for-others", None]
        seen.clear()
        with pytest.raises(TransportError, match="redirects"):
            async with transport.open_stream(Request("GET", f"{first}/loop")):
                raise AssertionError("unreachable")
        assert len(seen) == 11
        with pytest.raises(TransportError, match="plain http"):  # refused before connecting
            async with transport.open_stream(Request("GET", f"{first}/a?status=302&to=http://example.com/x")):
                raise AssertionError("unreachable")
        with pytest.raises(InvalidArgumentError, match="loopback"):
            async with transport.open_stream(Request("GET", "http://example.com/api")):
                raise AssertionError("unreachable")
        assert "0 in flight, 0 streams open" in repr(transport)


async def test_plain_http_is_only_for_loopback() -> None:
    async with UrlRequestTransport() as transport:
        # Refused before any connection is attempted.
        with pytest.raises(InvalidArgumentError, match="loopback"):
            await transport.send(Request("GET", "http://example.com/api"))
        with pytest.raises(InvalidArgumentError):
            await transport.send(Request("GET", "ftp://127.0.0.1/x"))
