"""E2E fixtures: the local server with the e2e TOML config, and Apps with a FileStorage."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from _pg_testkit import server_database

from appusers import App
from appusers.adapters import FileStorage
from appusers.server import LocalServer, load_config

from ._helpers import write_config

StartServer = Callable[..., Awaitable[LocalServer]]


@pytest.fixture
def start_server(tmp_path: Path, appusers_server_factory: StartServer) -> StartServer:
    """Starts local servers with the e2e config (``write_config`` options); closed after the test."""
    count = 0

    async def start(**options: Any) -> LocalServer:
        nonlocal count
        where = tmp_path / f"server-{count}"
        count += 1
        config = server_database(load_config(write_config(where, **options)))
        return await appusers_server_factory(config, data_dir=where / "data")

    return start


@pytest.fixture
async def appusers_server(start_server: StartServer) -> LocalServer:
    """Overrides the suite's demo server: the e2e config (emailed confirmation)."""
    return await start_server()


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "client" / "users.json"


@pytest.fixture
async def app(make_app: Callable[..., Awaitable[App]], store_path: Path) -> App:
    """An App on the e2e server whose users live in a FileStorage at ``store_path``."""
    return await make_app(storage=FileStorage(store_path))
