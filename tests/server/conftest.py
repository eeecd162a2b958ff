"""Fixtures for the local server tests: a real LocalServer on 127.0.0.1 and an aiohttp client."""

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
async def server(config: ServerConfig, tmp_path: Path) -> AsyncIterator[LocalServer]:
    async with LocalServer(config=config, data_dir=tmp_path / "data", admin_token="admin-secret") as srv:
        yield srv


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def api(server: LocalServer, http: aiohttp.ClientSession) -> Api:
    return Api(server, http)
