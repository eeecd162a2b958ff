"""E2E fixtures: the local server with the e2e TOML config, and Apps with a FileStorage."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
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
async def start_server(tmp_path: Path) -> AsyncIterator[StartServer]:
    """Starts local servers with the e2e config (``write_config`` options); closes them at the end."""
    servers: list[LocalServer] = []

    async def start(**options: Any) -> LocalServer:
        where = tmp_path / f"server-{len(servers)}"
        config = server_database(load_config(write_config(where, **options)))
        srv = LocalServer(config=config, data_dir=where / "data")
        await srv.start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        await srv.close()


@pytest.fixture
async def server(start_server: StartServer) -> LocalServer:
    """Overrides the suite's demo server: the e2e config (emailed confirmation)."""
    return await start_server()


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "client" / "users.json"


@pytest.fixture
async def app(make_app: Callable[..., Awaitable[App]], store_path: Path) -> App:
    """An App on the e2e server whose users live in a FileStorage at ``store_path``."""
    return await make_app(storage=FileStorage(store_path))
