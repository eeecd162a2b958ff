"""An App given no storage keeps its users on the device (platformdirs), one store per app id and base URL."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from appusers import App, Credentials, UserState
from appusers.adapters import FileStorage, MemoryStorage, default_storage_path
from appusers.server import LocalServer

from ._helpers import email_user


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_test_session_never_points_at_the_real_home(_private_user_data_dir: Path) -> None:
    path = default_storage_path("app", "http://127.0.0.1:1")
    assert path.is_relative_to(_private_user_data_dir)
    assert not path.is_relative_to(Path.home() / ".local")


async def test_users_come_back_in_a_new_app_without_a_storage(
    server: LocalServer, _private_user_data_dir: Path
) -> None:
    async with App(server.app_id, base_url=server.url) as app:
        assert isinstance(app.storage, FileStorage)
        user = await email_user(app, server, "ana@example.com")
        anon = await app.log_in(Credentials.anonymous())
        path = app.storage.path
    assert path == default_storage_path(server.app_id, server.url)
    assert path.is_relative_to(_private_user_data_dir / "appusers")
    # Everything the SDK created is private, however the test runner's umask is set.
    assert mode_of(path) == 0o600
    assert mode_of(path.parent) == 0o700
    assert mode_of(path.parent.parent) == 0o700

    async with App(server.app_id, base_url=server.url) as again:
        assert list(again.all_users) == [user.id, anon.id]
        assert again.current_user is not None and again.current_user.id == anon.id
        restored = again.all_users[user.id]
        assert restored.state is UserState.LOGGED_IN
        assert await restored.functions.sum(1, 2) == 3  # the restored tokens work


async def test_one_store_per_app_id_and_base_url(server: LocalServer) -> None:
    async with App(server.app_id, base_url=server.url) as app:
        await app.log_in(Credentials.anonymous())
    other_url = server.url.replace("127.0.0.1", "localhost")
    paths = {
        default_storage_path(server.app_id, server.url),
        default_storage_path(server.app_id, other_url),
        default_storage_path(server.app_id + "-2", server.url),
        default_storage_path(server.app_id.upper(), server.url),  # case-insensitive filesystems
    }
    assert len(paths) == 4
    async with App(server.app_id, base_url=other_url) as elsewhere:
        assert len(elsewhere.all_users) == 0


def test_hostile_app_ids_stay_inside_the_data_directory(_private_user_data_dir: Path) -> None:
    root = _private_user_data_dir / "appusers" / "apps"
    hostile = ["../../etc", "/abs/path", "a\\b", "con", "NUL", ".", "..", "x" * 300, "é🙂\x00\n", " "]
    names = set()
    for app_id in hostile:
        path = default_storage_path(app_id, "http://127.0.0.1:1")
        assert path.parent.parent == root, app_id
        name = path.parent.name
        assert len(name) <= 64 and name.isascii() and name.isprintable(), app_id
        assert not name.startswith(".") and "/" not in name and "\\" not in name, app_id
        names.add(name)
    assert len(names) == len(hostile)


async def test_memory_storage_is_the_opt_in_that_keeps_nothing(
    server: LocalServer, _private_user_data_dir: Path
) -> None:
    async with App(server.app_id, base_url=server.url, storage=MemoryStorage()) as app:
        await app.log_in(Credentials.anonymous())
    assert not (_private_user_data_dir / "appusers").exists()
    async with App(server.app_id, base_url=server.url, storage=MemoryStorage()) as app:
        assert len(app.all_users) == 0
