"""Fixtures shared by the whole suite: a real local server on 127.0.0.1 and Apps bound to it.

The server and the Apps come from appusers' own pytest plugin, ``appusers.testing`` (loaded
through its entry point); this file names them as the suite knows them and keeps the suite's
own rules (no test touches the real user data directory or keyring).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _pg_testkit import drop_postgres_database, new_postgres_url, server_database

from appusers import App
from appusers.server import LocalServer, ServerConfig
from appusers.testing import fast_config

# The plugin's own tests run pytest on generated test files (tests/testing).
pytest_plugins = ["pytester"]

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


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel ``pip wheel`` builds from this checkout (built once per session)."""
    out = tmp_path_factory.mktemp("wheel")
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(root)],
                   check=True, timeout=600, capture_output=True)
    (built,) = out.glob("appusers-*.whl")
    return built


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


@pytest.fixture
def appusers_config() -> ServerConfig:
    """The plugin's settings (demo, cheap scrypt), on PostgreSQL in the suite's PostgreSQL pass."""
    return server_database(fast_config())


@pytest.fixture
def appusers_data_dir(tmp_path: Path) -> Path:
    return tmp_path / "server"


@pytest.fixture
def server(appusers_server: LocalServer) -> LocalServer:
    """A fresh local server (demo settings, cheap scrypt) with its own data directory."""
    return appusers_server


@pytest.fixture
def make_app(appusers_app_factory: Callable[..., Awaitable[App]]) -> Callable[..., Awaitable[App]]:
    """Opens Apps against ``server``; closes them all at the end of the test.

    Unlike the plugin's factory, an App keeps its users in the default storage (the test's
    private user data directory) unless given a ``storage=``.
    """

    def make(**kwargs: Any) -> Awaitable[App]:
        kwargs.setdefault("storage", None)
        return appusers_app_factory(**kwargs)

    return make


@pytest.fixture
async def app(make_app: Callable[..., Awaitable[App]]) -> App:
    return await make_app()
