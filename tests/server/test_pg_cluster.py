"""Two real ``appusers serve`` processes on one PostgreSQL database behave as one server.

Each test starts both servers as subprocesses (their own ports and data directories, the
database URL in ``APPUSERS_DATABASE_URL``), then drives them over HTTP: sessions, API keys
and throttles made through one hold on the other at once. Needs PostgreSQL
(``APPUSERS_TEST_POSTGRES``); skipped without it outside CI.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from _server_testkit import P, assert_error

#: Cheap password hashing, the demo providers and functions, and a throttle that trips fast.
CONFIG = """
[functions]
module = "demo"
[security]
scrypt_n = 1024
[throttle]
account_free_failures = 2
address_free_failures = 50
base_delay = 60
max_delay = 60
userpass_per_email = 3
userpass_email_rate = 0.0001
[providers.anon-user]
[providers.api-key]
[providers.local-userpass]
auto_confirm = true
"""


class Served:
    """One ``appusers serve`` subprocess: its base URLs."""

    def __init__(self, proc: asyncio.subprocess.Process, url: str, app_id: str):
        self.proc = proc
        self.url = url
        self.app = f"{url}{P}/app/{app_id}"
        self.auth = f"{url}{P}/auth"


@contextlib.asynccontextmanager
async def serve(tmp_path: Path, name: str, database: str) -> AsyncIterator[Served]:
    config = tmp_path / "server.toml"
    config.write_text(CONFIG)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "appusers.server",
        "--port",
        "0",
        "--data",
        str(tmp_path / name),
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "APPUSERS_DATABASE_URL": database},
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        if "appusers server: http://" not in line:
            err = (await proc.stderr.read()).decode()
            pytest.fail(f"server {name} did not start: {line!r} {err[-2000:]}")
        words = line.split()
        yield Served(proc, words[2], words[5])
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()[-2000:]


@pytest.fixture
async def pair(tmp_path: Path, postgres_url: str) -> AsyncIterator[tuple[Served, Served]]:
    async with serve(tmp_path, "a", postgres_url) as a, serve(tmp_path, "b", postgres_url) as b:
        yield a, b


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def request(
    http: aiohttp.ClientSession, method: str, url: str, token: str | None = None, body: Any = None
) -> tuple[int, Any]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with http.request(method, url, json=body, headers=headers) as resp:
        data = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, data


async def login(http: aiohttp.ClientSession, server: Served, provider: str, **body: Any) -> dict[str, Any]:
    status, data = await request(http, "POST", f"{server.app}/auth/providers/{provider}/login", body=body)
    assert status == 200, data
    return dict(data)


async def test_a_log_out_on_one_server_ends_the_session_on_the_other(
    pair: tuple[Served, Served], http: aiohttp.ClientSession
) -> None:
    a, b = pair
    tokens = await login(http, a, "anon-user")
    status, result = await request(
        http, "POST", f"{b.app}/functions/call", tokens["access_token"], {"name": "sum", "arguments": [1, 2]}
    )
    assert status == 200 and result == {"$numberInt": "3"}
    status, refreshed = await request(http, "POST", f"{b.auth}/session", tokens["refresh_token"])
    assert status == 201, refreshed
    status, _ = await request(http, "DELETE", f"{a.auth}/session", tokens["refresh_token"])
    assert status == 204
    # B refuses the refresh token at once, and the access tokens on their next request.
    status, body = await request(http, "POST", f"{b.auth}/session", tokens["refresh_token"])
    assert_error(status, body, 401, "InvalidSession")
    for access in (tokens["access_token"], refreshed["access_token"]):
        status, body = await request(http, "GET", f"{b.auth}/profile", access)
        assert_error(status, body, 401, "InvalidSession")


async def test_a_user_deleted_on_one_server_is_refused_by_the_other_at_once(
    pair: tuple[Served, Served], http: aiohttp.ClientSession
) -> None:
    a, b = pair
    tokens = await login(http, a, "anon-user")
    for _ in range(2):  # B has served the user: whatever it keeps of it is warm
        status, _ = await request(
            http, "POST", f"{b.app}/functions/call", tokens["access_token"], {"name": "sum", "arguments": [1]}
        )
        assert status == 200
    status, _ = await request(http, "DELETE", f"{a.auth}/delete", tokens["access_token"])
    assert status == 204
    status, body = await request(
        http, "POST", f"{b.app}/functions/call", tokens["access_token"], {"name": "sum", "arguments": [1]}
    )
    assert_error(status, body, 401, "InvalidSession")
    status, body = await request(http, "POST", f"{b.auth}/session", tokens["refresh_token"])
    assert_error(status, body, 401, "InvalidSession")


async def test_an_api_key_made_on_one_server_logs_in_on_the_other(
    pair: tuple[Served, Served], http: aiohttp.ClientSession
) -> None:
    a, b = pair
    status, _ = await request(
        http,
        "POST",
        f"{b.app}/auth/providers/local-userpass/register",
        body={"email": "kim@example.com", "password": "right-pass"},
    )
    assert status == 201
    owner = await login(http, a, "local-userpass", username="kim@example.com", password="right-pass")
    status, key = await request(http, "POST", f"{b.auth}/api_keys", owner["refresh_token"], {"name": "ci"})
    assert status == 201, key
    by_key = await login(http, a, "api-key", key=key["key"])
    assert by_key["user_id"] == owner["user_id"]
    # Disabling it on A ends the session it opened, seen by B.
    status, _ = await request(http, "PUT", f"{a.auth}/api_keys/{key['_id']}/disable", owner["refresh_token"])
    assert status == 204
    status, body = await request(http, "POST", f"{b.auth}/session", by_key["refresh_token"])
    assert_error(status, body, 401, "InvalidSession")
    status, body = await request(
        http, "POST", f"{b.app}/auth/providers/api-key/login", body={"key": key["key"]}
    )
    assert_error(status, body, 401, "InvalidPassword")


async def test_a_throttle_tripped_on_one_server_holds_on_the_other(
    pair: tuple[Served, Served], http: aiohttp.ClientSession
) -> None:
    a, b = pair
    url = "/auth/providers/local-userpass"
    status, _ = await request(
        http, "POST", f"{a.app}{url}/register", body={"email": "t@example.com", "password": "right-pass"}
    )
    assert status == 201
    wrong = {"username": "t@example.com", "password": "wrong-pass"}
    for server in (a, b, a):  # 3 failures, 2 free: split over both servers
        status, body = await request(http, "POST", f"{server.app}{url}/login", body=wrong)
        assert_error(status, body, 401, "InvalidPassword")
    for server in (b, a):
        status, body = await request(
            http, "POST", f"{server.app}{url}/login", body={**wrong, "password": "right-pass"}
        )
        assert_error(status, body, 429, "TooManyRequests")
    # The per-email rate limit of the account routes is shared too (3 at once, then 429).
    resend = {"email": "t@example.com"}
    statuses = [
        (await request(http, "POST", f"{server.app}{url}/reset/send", body=resend))[0]
        for server in (a, b, a, b)
    ]
    assert statuses == [204, 204, 429, 429], statuses  # the registration spent the first
