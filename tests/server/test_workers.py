"""``appusers serve --workers 2``: two real worker processes on one port and one data directory.

The kernel picks the worker of each new connection (SO_REUSEPORT hashes the client's address
and port), so a test reaches a given worker by opening connections until one is answered by it
(every response names its worker in ``X-Appusers-Worker``) and then keeping that connection:
a keep-alive connection stays with the worker that accepted it. Everything done through one
worker must hold on the other on its next request: log-outs (through any cache the server
keeps), custom data and documents, change streams, throttles.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from _server_testkit import P, assert_error, jwt_payload

pytestmark = pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="needs SO_REUSEPORT")

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
[custom_data]
enabled = true
database = "appusers"
collection = "custom_data"
user_id_field = "user_id"
[providers.anon-user]
[providers.local-userpass]
auto_confirm = true
"""


class Group:
    """A running ``appusers serve --workers 2``: its URL, supervisor and worker pids."""

    def __init__(self, proc: subprocess.Popen[bytes], banner: str):
        self.proc = proc
        words = banner.split()
        self.url = words[2]
        self.app = f"{self.url}{P}/app/{words[5]}"
        self.auth = f"{self.url}{P}/auth"
        self.pids = [int(p) for p in banner.split("(pids ")[1].rstrip(")\n").split()]


def _start(tmp_path: Path, *extra: str, data: str = "data") -> subprocess.Popen[bytes]:
    config = tmp_path / "server.toml"
    config.write_text(CONFIG)
    return subprocess.Popen(
        [sys.executable, "-m", "appusers.server", "--workers", "2", "--port", "0", "--data",
         str(tmp_path / data), "--config", str(config), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


def _banner(proc: subprocess.Popen[bytes]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if "appusers server: http://" not in line:
        proc.kill()
        _out, err = proc.communicate(timeout=30)
        pytest.fail(f"server did not start: {line!r} {err.decode()[-3000:]}")
    return line


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) no longer serves.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return False
    return True


def _gone(pids: list[int], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def group(tmp_path: Path) -> Iterator[Group]:
    proc = _start(tmp_path)
    try:
        served = Group(proc, _banner(proc))
        yield served
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert _gone(served.pids), "a worker outlived its supervisor"


@contextlib.asynccontextmanager
async def on_worker(group: Group, worker: int) -> AsyncIterator[aiohttp.ClientSession]:
    """A session whose one keep-alive connection is served by ``worker`` (waits while it restarts)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
        async with session.get(f"{group.app}/location") as resp:
            await resp.read()
            answered = resp.headers["X-Appusers-Worker"]
        if answered == str(worker):
            try:
                yield session
            finally:
                await session.close()
            return
        await session.close()
    pytest.fail(f"no connection reached worker {worker} within 60 s")


async def request(
    http: aiohttp.ClientSession, method: str, url: str, token: str | None = None, body: Any = None
) -> tuple[int, Any, str]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with http.request(method, url, json=body, headers=headers) as resp:
        data = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, data, resp.headers["X-Appusers-Worker"]


async def call(
    http: aiohttp.ClientSession, group: Group, token: str, name: str, *args: Any, **kw: Any
) -> Any:
    body = {"name": name, "arguments": list(args), **kw}
    status, data, _ = await request(http, "POST", f"{group.app}/functions/call", token, body)
    assert status == 200, data
    return data


async def test_a_log_out_through_one_worker_is_refused_by_the_other_on_its_next_request(group: Group) -> None:
    async with on_worker(group, 0) as w0, on_worker(group, 1) as w1:
        status, tokens, by = await request(w0, "POST", f"{group.app}/auth/providers/anon-user/login")
        assert status == 200 and by == "0"
        # Worker 1 serves the session (and caches whatever it caches about it).
        for _ in range(3):
            status, profile, by = await request(w1, "GET", f"{group.auth}/profile", tokens["access_token"])
            assert status == 200 and by == "1", profile
        status, refreshed, by = await request(w1, "POST", f"{group.auth}/session", tokens["refresh_token"])
        assert status == 201 and by == "1"
        status, _, by = await request(w0, "DELETE", f"{group.auth}/session", tokens["refresh_token"])
        assert status == 204 and by == "0"
        for access in (tokens["access_token"], refreshed["access_token"]):
            status, body, by = await request(w1, "GET", f"{group.auth}/profile", access)
            assert by == "1"
            assert_error(status, body, 401, "InvalidSession")
        status, body, by = await request(w1, "POST", f"{group.auth}/session", tokens["refresh_token"])
        assert_error(status, body, 401, "InvalidSession")


async def test_custom_data_and_documents_written_through_one_worker_are_read_by_the_other(
    group: Group,
) -> None:
    async with on_worker(group, 0) as w0, on_worker(group, 1) as w1:
        _s, tokens, _ = await request(w0, "POST", f"{group.app}/auth/providers/anon-user/login")
        user = tokens["user_id"]
        # Worker 1 reads the (absent) custom data first, so a stale copy would show below.
        _s, refreshed, by = await request(w1, "POST", f"{group.auth}/session", tokens["refresh_token"])
        assert by == "1" and "plan" not in jwt_payload(refreshed["access_token"]).get("user_data", {})
        await call(w0, group, tokens["access_token"], "set_custom_data", {"plan": "gold"})
        _s, refreshed, by = await request(w1, "POST", f"{group.auth}/session", tokens["refresh_token"])
        assert by == "1" and jwt_payload(refreshed["access_token"])["user_data"]["plan"] == "gold"
        # Documents through the MongoDB service: a counter incremented through both workers at once.
        ns = {"database": "shop", "collection": "counters"}
        doc = {"_id": "c", "owner_id": user, "n": 0}
        token = tokens["access_token"]
        await call(w0, group, token, "insertOne", {**ns, "document": doc}, service="mongodb-atlas")
        inc = {**ns, "query": {"_id": "c"}, "update": {"$inc": {"n": 1}}}
        await asyncio.gather(
            *(
                call(w, group, tokens["access_token"], "updateOne", inc, service="mongodb-atlas")
                for w in (w0, w1) * 10
            )
        )
        for w in (w0, w1):
            doc = await call(w, group, tokens["access_token"], "findOne", {**ns, "query": {"_id": "c"}},
                             service="mongodb-atlas")  # fmt: skip
            assert doc["n"] == {"$numberInt": "20"}, doc


async def test_a_watch_on_one_worker_receives_writes_made_through_the_other(group: Group) -> None:
    async with on_worker(group, 0) as w0, on_worker(group, 1) as w1:
        _s, tokens, _ = await request(w0, "POST", f"{group.app}/auth/providers/anon-user/login")
        ns = {"database": "shop", "collection": "notes"}
        watch = {"name": "watch", "service": "mongodb-atlas", "arguments": [ns]}
        query = quote(base64.b64encode(json.dumps(watch).encode()).decode(), safe="")
        url = f"{group.app}/functions/call?baas_request={query}&baas_at={tokens['access_token']}"
        async with w1.get(url) as stream:
            assert stream.status == 200 and stream.headers["X-Appusers-Worker"] == "1"
            assert (await asyncio.wait_for(stream.content.readline(), 10)).startswith(b":")  # registered
            async with on_worker(group, 0) as writer:
                for i in range(3):
                    await call(writer, group, tokens["access_token"], "insertOne",
                               {**ns, "document": {"_id": i, "owner_id": tokens["user_id"]}},
                               service="mongodb-atlas")  # fmt: skip
            seen: list[int] = []
            while len(seen) < 3:
                line = (await asyncio.wait_for(stream.content.readline(), 10)).decode()
                if line.startswith("data:"):
                    event = json.loads(line[5:])
                    assert event["operationType"] == "insert"
                    seen.append(int(event["fullDocument"]["_id"]["$numberInt"]))
            assert seen == [0, 1, 2]


async def test_a_throttle_tripped_through_one_worker_holds_on_the_other(group: Group) -> None:
    url = f"{group.app}/auth/providers/local-userpass"
    async with on_worker(group, 0) as w0, on_worker(group, 1) as w1:
        body = {"email": "t@example.com", "password": "right-pass"}
        status, _b, _w = await request(w0, "POST", f"{url}/register", body=body)
        assert status == 201
        wrong = {"username": "t@example.com", "password": "wrong-pass"}
        for w in (w0, w1, w0):  # 3 failures, 2 free: each worker saw fewer than would trip it alone
            status, data, _w = await request(w, "POST", f"{url}/login", body=wrong)
            assert_error(status, data, 401, "InvalidPassword")
        for w in (w1, w0):
            status, data, _w = await request(
                w, "POST", f"{url}/login", body={**wrong, "password": "right-pass"}
            )
            assert_error(status, data, 429, "TooManyRequests")


def test_a_second_server_on_the_data_directory_of_a_worker_group_is_refused(
    tmp_path: Path, group: Group
) -> None:
    for workers in ("1", "2"):
        second = subprocess.run(
            [sys.executable, "-m", "appusers.server", "--workers", workers, "--port", "0",
             "--data", str(tmp_path / "data")],
            capture_output=True, timeout=60,
        )  # fmt: skip
        assert second.returncode == 1
        err = second.stderr.decode()
        assert "is in use by another server" in err and "Traceback" not in err, err


def test_the_port_of_a_worker_group_is_refused_to_another_server(tmp_path: Path, group: Group) -> None:
    port = group.url.rsplit(":", 1)[1]
    for workers in ("1", "2"):
        other = subprocess.run(
            [sys.executable, "-m", "appusers.server", "--workers", workers, "--port", port,
             "--data", str(tmp_path / f"other{workers}")],
            capture_output=True, timeout=60,
        )  # fmt: skip
        err = other.stderr.decode()
        assert other.returncode == 1 and "already in use" in err and "Traceback" not in err, err


def test_sigint_stops_every_worker(tmp_path: Path) -> None:
    proc = _start(tmp_path)
    served = Group(proc, _banner(proc))
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert b"stopping" in out and b"Traceback" not in err
    assert _gone(served.pids)


def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    proc = _start(tmp_path)
    served = Group(proc, _banner(proc))
    proc.kill()  # no chance to clean up: the workers notice on their own
    proc.communicate(timeout=60)
    assert _gone(served.pids), "workers kept running without their supervisor"
    # And the directory is free again.
    again = _start(tmp_path)
    try:
        Group(again, _banner(again))
    finally:
        again.send_signal(signal.SIGTERM)
        again.communicate(timeout=60)
    assert again.returncode == 0


async def test_a_crashed_worker_is_restarted(group: Group) -> None:
    os.kill(group.pids[1], signal.SIGKILL)
    assert _gone([group.pids[1]], 10)
    # The replacement serves worker 1's share again.
    async with on_worker(group, 1) as w1:
        status, _d, by = await request(w1, "POST", f"{group.app}/auth/providers/anon-user/login")
        assert status == 200 and by == "1"


def test_a_worker_group_that_cannot_start_fails_loudly(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("[functions]\nmodule = 'no_such_module_here'\n")
    proc = subprocess.run(
        [sys.executable, "-m", "appusers.server", "--workers", "2", "--port", "0",
         "--data", str(tmp_path / "data"), "--config", str(tmp_path / "bad.toml")],
        capture_output=True, timeout=120,
    )  # fmt: skip
    err = proc.stderr.decode()
    assert proc.returncode != 0 and "error:" in err, err


@pytest.mark.parametrize("value", ["0", "-1", "65", "two", ""])
def test_a_bad_worker_count_is_refused(tmp_path: Path, value: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "appusers.server", "--workers", value, "--data", str(tmp_path / "d")],
        capture_output=True,
        timeout=60,
    )
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "--workers" in err and "Traceback" not in err, err


def test_a_forged_worker_option_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d" / "documents").mkdir(parents=True)
    lock = os.open(tmp_path / "d" / "documents" / "LOCK", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        for link in ("nonsense", f"0:{lock}:1:0"):
            proc = subprocess.run(
                [sys.executable, "-m", "appusers.server", "--worker", link, "--port", "0",
                 "--data", str(tmp_path / "d")],
                capture_output=True, timeout=60,
            )  # fmt: skip
            err = proc.stderr.decode()
            assert proc.returncode != 0 and "Traceback" not in err, err
    finally:
        os.close(lock)
