"""Fixtures for the local server tests: a real LocalServer on 127.0.0.1 and an aiohttp client.

The server is the suite's ``server`` (appusers.testing's ``appusers_server``), here with the
settings of ``config`` (a module overrides that fixture for its own), a ``data`` directory and
the HTTP test hooks on (``admin-secret``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from _server_testkit import Api, fast

from appusers.server import LocalServer, ServerConfig, load_config


@pytest.fixture
def config() -> ServerConfig:
    return fast(load_config(None))


@pytest.fixture
def appusers_config(config: ServerConfig) -> ServerConfig:
    return config


@pytest.fixture
def appusers_data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def appusers_admin_token() -> str:
    return "admin-secret"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def api(server: LocalServer, http: aiohttp.ClientSession) -> Api:
    return Api(server, http)
