"""Slow and flooding clients, and the data directory's modes (issue 9 items 9 and 12).

The descriptor and umask tests run ``python -m appusers.server`` as a real child process
(raw sockets on loopback, bounded: 2,000 sockets, a 1-second read timeout).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
from _server_testkit import Api, fast

from appusers.server import LocalServer, load_config
from appusers.server._config import HttpSettings

HALF_REQUEST = b"POST /api/client/v2.0/app/appusers-local/functions/call HTTP/1.1\r\nHost: x\r\nContent-Le"


@contextmanager
def serve_process(
    tmp_path: Path, data: Path, toml: str = "", preexec: Callable[[], Any] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``python -m appusers.server`` on a free port with the demo settings plus ``toml``."""
    config = tmp_path / "server.toml"
    config.write_text('[functions]\nmodule = "demo"\n[custom_data]\n' + toml)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "appusers.server",
            "--port",
            "0",
            "--data",
            str(data),
            "--config",
            str(config),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=preexec,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "appusers server: http://" in line, (line, proc.stderr.read() if proc.stderr else "")
        yield proc, line.split()[2]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            data = resp.read()
            return resp.status, json.loads(data) if data else None
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="counts descriptors through /proc")
def test_two_thousand_half_sent_requests_are_closed_and_descriptors_return(tmp_path: Path) -> None:
    toml = "[http]\nread_timeout = 3.0\nmax_connections_per_address = 0\n"
    with serve_process(tmp_path, tmp_path / "data", toml) as (proc, url):
        port = int(url.rsplit(":", 1)[1])
        _post(f"{url}/api/client/v2.0/app/appusers-local/auth/providers/anon-user/login", {})
        baseline = _fds(proc.pid)
        socks: list[socket.socket] = []
        peak = 0
        try:
            started = time.monotonic()
            for i in range(2000):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                s.sendall(HALF_REQUEST)
                socks.append(s)
                if i % 100 == 99:
                    peak = max(peak, _fds(proc.pid))
            sent = time.monotonic()
            connecting = sent - started
            for s in socks:  # every one is closed by the server: EOF, no answer
                s.settimeout(10)
                assert s.recv(100) == b""
            closed_after = time.monotonic() - sent
            deadline = time.monotonic() + 10
            while _fds(proc.pid) > baseline + 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            after = _fds(proc.pid)
        finally:
            for s in socks:
                s.close()
        if connecting < 2.0:  # all 2,000 were open at once (unless connecting itself took longer)
            assert peak >= baseline + 1900, (peak, baseline, connecting)
        assert closed_after <= 3.0 + 4.0, closed_after  # the timeout, plus accept/close latency
        assert after <= baseline + 2, (baseline, after)
        status, _b = _post(f"{url}/api/client/v2.0/app/appusers-local/auth/providers/anon-user/login", {})
        assert status == 200


async def _until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def _raw_connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=5)


async def test_connections_per_address_are_capped(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    config = attrs.evolve(fast(load_config(None)), http=HttpSettings(max_connections_per_address=5))
    async with LocalServer(config=config, data_dir=tmp_path / "d") as srv:
        held = [_raw_connect(srv.url) for _ in range(5)]
        await _until(lambda: srv._limits.open["127.0.0.1"] == 5)  # all five accepted
        extra = _raw_connect(srv.url)
        extra.settimeout(5)
        assert await asyncio.to_thread(extra.recv, 10) == b""  # closed on arrival
        extra.close()
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with aiohttp.ClientSession(connector=connector) as other:
            await Api(srv, other).login()  # another address is not affected
        for s in held:
            s.close()
        await _until(lambda: srv._limits.open["127.0.0.1"] == 0)
        await Api(srv, http).login()  # and the address may connect again


async def test_a_trickled_body_times_out_with_408(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    config = attrs.evolve(fast(load_config(None)), http=HttpSettings(read_timeout=0.5))
    async with LocalServer(config=config, data_dir=tmp_path / "d") as srv:
        host, port = srv.url.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        started = time.monotonic()
        writer.write(
            f"POST /api/client/v2.0/app/{srv.app_id}/auth/providers/anon-user/login HTTP/1.1\r\n"
            "Host: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{".encode()
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
        elapsed = time.monotonic() - started
        writer.close()
        await writer.wait_closed()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), answer[:200]
        assert json.loads(body)["error_code"] == "RequestTimeout"
        assert elapsed < 5
        await Api(srv, http).login()


async def test_an_idle_connection_that_never_sends_is_closed(tmp_path: Path) -> None:
    config = attrs.evolve(fast(load_config(None)), http=HttpSettings(read_timeout=0.3))
    async with LocalServer(config=config, data_dir=tmp_path / "d") as srv:
        s = _raw_connect(srv.url)
        s.settimeout(5)
        started = time.monotonic()
        assert await asyncio.to_thread(s.recv, 10) == b""
        assert time.monotonic() - started < 3
        s.close()


# ---------------------------------------------------------------------- item 9: file modes
def _wider_entries(root: Path) -> list[str]:
    wide = []
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        want = 0o700 if path.is_dir() else 0o600
        if mode != want:
            wide.append(f"{path.relative_to(root)}: {mode:04o}")
    return wide


@pytest.mark.parametrize("existing_mode", [None, 0o755, 0o777])
def test_data_files_are_private_under_umask_000(tmp_path: Path, existing_mode: int | None) -> None:
    data = tmp_path / "data"
    if existing_mode is not None:
        data.mkdir()
        os.chmod(data, existing_mode)
    with serve_process(tmp_path, data, preexec=lambda: os.umask(0)) as (_proc, url):
        app = f"{url}/api/client/v2.0/app/appusers-local"
        status, _b = _post(
            f"{app}/auth/providers/local-userpass/register", {"email": "m@x.io", "password": "pw1234"}
        )
        assert status == 201  # writes the outbox
        status, tokens = _post(f"{app}/auth/providers/anon-user/login", {})
        request = urllib.request.Request(
            f"{app}/functions/call",
            data=json.dumps(
                {
                    "name": "insertOne",
                    "service": "mongodb-atlas",
                    "arguments": [
                        # The demo rules: a user's documents carry their id in owner_id.
                        {
                            "database": "db",
                            "collection": "c",
                            "document": {"owner_id": tokens["user_id"], "k": 1},
                        }
                    ],
                }
            ).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {tokens['access_token']}"},
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            assert resp.status == 200  # writes the document store
        assert _wider_entries(data) == []
    assert _wider_entries(data) == []
    assert (data / "outbox.jsonl").exists() and (data / "documents").is_dir()


def test_a_shared_world_writable_directory_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "shared"
    data.mkdir()
    (data / "someone-elses-file.txt").write_text("x")
    os.chmod(data, 0o777)
    config = tmp_path / "c.toml"
    config.write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "appusers.server", "--port", "0", "--data", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "writable by every user" in result.stderr
    assert stat.S_IMODE(data.stat().st_mode) == 0o777  # not the server's to change
    assert not (data / "users.sqlite3").exists()


async def test_a_directory_with_other_files_keeps_its_mode(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "project"
    data.mkdir()
    (data / "notes.txt").write_text("mine")
    os.chmod(data, 0o755)
    async with LocalServer(config=fast(load_config(None)), data_dir=data):
        pass
    assert stat.S_IMODE(data.stat().st_mode) == 0o755
    assert "holds other files" in caplog.text
    own = [p for p in data.rglob("*") if p.name != "notes.txt"]
    assert own and all(stat.S_IMODE(p.stat().st_mode) in (0o600, 0o700) for p in own)
