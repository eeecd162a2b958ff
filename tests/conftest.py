"""Fixtures shared by the whole suite: a real local server on 127.0.0.1 and Apps bound to it."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from _pg_testkit import drop_postgres_database, new_postgres_url, server_database

from appusers import App
from appusers.server import LocalServer, load_config
from appusers.server._config import ScryptSettings

# Keep GUI toolkits headless wherever a test imports one.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("KIVY_NO_ARGS", "1")

# An App without a storage persists under the platform's user data directory, and keyring
# storages reach for the OS keyring: no test may touch the real ones. Set at import, before any
# test or subprocess starts, so child processes inherit it; each test then gets its own
# directory (below), because many tests open Apps with the same app id and base URL.
_DATA_ROOT = Path(tempfile.mkdtemp(prefix="appusers-tests-data-"))
os.environ["XDG_DATA_HOME"] = str(_DATA_ROOT / "session")
os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
_data_dirs = itertools.count()


def pytest_sessionfinish() -> None:
    shutil.rmtree(_DATA_ROOT, ignore_errors=True)
    drop_postgres_database()


@pytest.fixture
def postgres_url() -> str:
    """An empty PostgreSQL schema of its own, as a URL (the test is skipped without PostgreSQL)."""
    return new_postgres_url()


@pytest.fixture(autouse=True)
def _private_user_data_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh, empty user data directory per test (created on demand by the SDK)."""
    data_dir = _DATA_ROOT / f"t{next(_data_dirs)}"
    monkeypatch.setenv("XDG_DATA_HOME", str(data_dir))
    yield data_dir


def fast_config() -> Any:
    """The demo settings with a cheap scrypt cost: tests hash many passwords."""
    return attrs.evolve(load_config(None), scrypt=ScryptSettings(n=2**10, r=8, p=1))


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[LocalServer]:
    """A fresh local server (demo settings) with its own data directory."""
    async with LocalServer(config=server_database(fast_config()), data_dir=tmp_path / "server") as srv:
        yield srv


@pytest.fixture
async def make_app(server: LocalServer) -> AsyncIterator[Callable[..., Awaitable[App]]]:
    """Opens Apps against ``server``; closes them all at the end of the test."""
    apps: list[App] = []

    async def make(**kwargs: Any) -> App:
        kwargs.setdefault("base_url", server.url)
        app = App(server.app_id, **kwargs)
        apps.append(app)
        await app.open()
        return app

    yield make
    for app in apps:
        await app.aclose()


@pytest.fixture
async def app(make_app: Callable[..., Awaitable[App]]) -> App:
    return await make_app()
