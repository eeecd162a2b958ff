"""QSettingsStorage and QtNetworkTransport prove the seams: the contract suites, then a real App."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from appusers import App, Credentials
from appusers.adapters.storage_contract import StorageContract
from appusers.adapters.transport_contract import LoopbackTransportContract
from appusers.bindings.qt import QSettingsStorage, QtNetworkTransport
from appusers.errors import InvalidArgumentError
from appusers.server import LocalServer, load_config
from appusers.transport import Request, Transport

pytestmark = pytest.mark.usefixtures("qapp")
AiohttpServer = Callable[..., Awaitable[Any]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestQSettingsStorage(StorageContract):
    @pytest.fixture
    def open_storage(self, tmp_path: Path) -> Callable[[], QSettingsStorage]:
        return lambda: QSettingsStorage(tmp_path / "settings" / "users.ini")


class TestQSettingsStorageInAGroupOfASharedFile(StorageContract):
    """The App's records next to an application's own settings, in a group of their own."""

    @pytest.fixture
    def open_storage(self, tmp_path: Path) -> Callable[[], QSettingsStorage]:
        from PySide6.QtCore import QSettings

        path = tmp_path / "app.ini"
        other = QSettings(str(path), QSettings.Format.IniFormat)
        other.setValue("window/geometry", "800x600")
        other.sync()
        return lambda: QSettingsStorage(path, group="accounts")


async def test_qsettings_keeps_the_applications_other_settings(tmp_path: Path) -> None:
    from PySide6.QtCore import QSettings

    path = tmp_path / "app.ini"
    storage = QSettingsStorage(path)
    await storage.update({"app(a):user(1)": "x", "a/b\\c": "slashes"})
    settings = QSettings(str(path), QSettings.Format.IniFormat)
    settings.setValue("window/geometry", "800x600")
    settings.sync()
    assert await storage.items("") == {"app(a):user(1)": "x", "a/b\\c": "slashes"}
    assert QSettings(str(path), QSettings.Format.IniFormat).value("window/geometry") == "800x600"


def test_qsettings_storage_arguments() -> None:
    with pytest.raises(InvalidArgumentError):
        QSettingsStorage()
    with pytest.raises(InvalidArgumentError):
        QSettingsStorage("x.ini", group="a/b")


class TestQtNetworkTransport(LoopbackTransportContract):
    TIMEOUT = 0.5

    def make_transport(self) -> Transport:
        return QtNetworkTransport()


async def test_cookies_are_neither_stored_nor_sent(aiohttp_server: AiohttpServer) -> None:
    seen: list[str | None] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Cookie"))
        response = web.Response(text="ok")
        response.set_cookie("session", "abc")
        return response

    app = web.Application()
    app.router.add_get("/", handler)
    server = await aiohttp_server(app)
    async with QtNetworkTransport() as transport:
        for _ in range(2):
            response = await transport.send(Request("GET", str(server.make_url("/"))))
            assert response.status == 200
    assert seen == [None, None]


async def test_a_redirect_to_another_origin_is_not_followed(aiohttp_server: AiohttpServer) -> None:
    async def handler(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://127.0.0.2:9/elsewhere")

    app = web.Application()
    app.router.add_get("/", handler)
    server = await aiohttp_server(app)
    async with QtNetworkTransport() as transport:
        response = await transport.send(
            Request("GET", str(server.make_url("/")), {"Authorization": "Bearer secret"})
        )
    assert response.status == 302


async def test_an_app_on_both_qt_adapters_logs_in_and_is_restored(tmp_path: Path) -> None:
    async with LocalServer(config=load_config(None), data_dir=tmp_path / "server") as server:
        storage_path = tmp_path / "users.ini"
        async with QtNetworkTransport() as transport, App(
            server.app_id, base_url=server.url, storage=QSettingsStorage(storage_path), transport=transport
        ) as app:
            user = await app.log_in(Credentials.anonymous())
            assert await user.functions.sum(1, 2) == 3
            user_id = user.id
        # A new process would see the same: a new storage on the file, a new transport.
        async with QtNetworkTransport() as transport, App(
            server.app_id, base_url=server.url, storage=QSettingsStorage(storage_path), transport=transport
        ) as again:
            restored = again.current_user
            assert restored is not None and restored.id == user_id
            assert await restored.functions.sum(2, 3) == 5
            await again.log_out()
