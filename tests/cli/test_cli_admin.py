"""``appusers admin``: real subprocesses against a real server's Admin API.

The server runs in the test's event loop (or, once, as ``appusers serve`` in its own
process); every command is a separate ``python -m appusers admin ...`` process.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import stat
import sys
from pathlib import Path
from typing import Any

import aiohttp
import attrs

from appusers.server import LocalServer, load_config
from appusers.server._config import AdminSettings, ScryptSettings, admin_key_from_file

EMAIL = "ana@example.com"
PASSWORD = "correct-horse-battery-staple"
CLIENT = "/api/client/v2.0"


@attrs.frozen
class Run:
    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.out.count("\n") == 1, f"expected one JSON line on stdout: {self.out!r}"
        return json.loads(self.out)

    def __str__(self) -> str:
        return f"appusers {' '.join(self.args)} -> {self.code}\nstdout: {self.out}\nstderr: {self.err}"


class AdminCli:
    """``python -m appusers admin`` with the key file and group id in the environment."""

    def __init__(self, tmp_path: Path, *, key_file: Path, base_url: str = "", group_id: str = "") -> None:
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        self.env = {**os.environ, "HOME": str(home), "APPUSERS_HOME": str(tmp_path / "appusers-home")}
        for name in ("APPUSERS_ADMIN_URL", "APPUSERS_BASE_URL", "APPUSERS_GROUP_ID", "APPUSERS_ADMIN_APP_ID"):
            self.env.pop(name, None)
        self.env["APPUSERS_ADMIN_KEY_FILE"] = str(key_file)
        if base_url:
            self.env["APPUSERS_ADMIN_URL"] = base_url
        if group_id:
            self.env["APPUSERS_GROUP_ID"] = group_id
        self.runs: list[Run] = []

    async def __call__(self, *args: str, expect: int | None = 0) -> Run:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "appusers",
            "admin",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
            start_new_session=True,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        assert proc.returncode is not None
        run = Run(tuple(args), proc.returncode, out.decode(), err.decode())
        self.runs.append(run)
        if expect is not None:
            assert run.code == expect, str(run)
        return run

    def transcript(self) -> str:
        return "\n".join(f"{r.out}\n{r.err}" for r in self.runs)


def cheap_config(key_file: Path | None) -> Any:
    config = attrs.evolve(load_config(None), scrypt=ScryptSettings(n=2**4, r=1, p=1))
    if key_file is not None:
        config = attrs.evolve(config, admin=AdminSettings(keys=(admin_key_from_file(key_file),)))
    return config


async def client_login(server: LocalServer, provider: str, **body: Any) -> dict[str, Any]:
    url = f"{server.url}{CLIENT}/app/{server.app_id}/auth/providers/{provider}/login"
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as resp:
        assert resp.status == 200, await resp.text()
        data: dict[str, Any] = await resp.json()
        return data


async def client_post(
    server: LocalServer, path: str, *, token: str | None = None, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.post(server.url + path, json=body, headers=headers) as resp,
    ):
        text = await resp.text()
        return resp.status, json.loads(text) if text else None


async def make_key(tmp_path: Path) -> Path:
    key_file = tmp_path / "admin-key.json"
    cli = AdminCli(tmp_path, key_file=key_file)
    made = (await cli("create-key", str(key_file), "--json")).json()
    assert made["key_file"] == str(key_file) and len(made["public_key"]) == 8
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = await cli("create-key", str(key_file), expect=2)
    assert "not overwriting" in again.err
    return key_file


async def test_users_through_the_admin_cli(tmp_path: Path) -> None:
    key_file = await make_key(tmp_path)
    private = json.loads(key_file.read_text())["private_key"]
    async with LocalServer(config=cheap_config(key_file), data_dir=tmp_path / "data") as server:
        cli = AdminCli(tmp_path, key_file=key_file, base_url=server.url, group_id=server.group_id)
        assert (await cli("users", "list", "--json")).json() == {"users": []}
        anon = [await client_login(server, "anon-user") for _ in range(3)]
        listed = (await cli("users", "list", "--json")).json()["users"]
        assert [u["_id"] for u in listed] == [a["user_id"] for a in anon]
        text = await cli("users", "list", "--desc")
        assert text.out.splitlines()[0].startswith(anon[-1]["user_id"]) and "anon-user" in text.out
        page = (await cli("users", "list", "--after", anon[0]["user_id"], "--json")).json()["users"]
        assert [u["_id"] for u in page] == [a["user_id"] for a in anon[1:]]
        victim = anon[0]["user_id"]
        got = (await cli("--app-id", server.app_object_id, "users", "get", victim, "--json")).json()["user"]
        assert got["_id"] == victim and got["disabled"] is False

        # disable: the user's refresh answers UserDisabled at once; enable; logout; delete.
        done = (await cli("users", "disable", victim, "--json")).json()
        assert done == {"user_id": victim, "action": "disable"}
        status, body = await client_post(server, f"{CLIENT}/auth/session", token=anon[0]["refresh_token"])
        assert status == 401 and body["error_code"] == "UserDisabled"
        assert "enabled user" in (await cli("users", "enable", victim)).out
        second = anon[1]
        await cli("users", "logout", second["user_id"])
        status, body = await client_post(server, f"{CLIENT}/auth/session", token=second["refresh_token"])
        assert status == 401 and body["error_code"] == "InvalidSession"
        await cli("users", "delete", victim)
        gone = await cli("users", "get", victim, "--json", expect=2)
        assert gone.json()["error"]["code"] == "UserNotFound" and gone.json()["error"]["exit_code"] == 2
        for action in ("disable", "enable", "delete", "logout"):
            await cli("users", action, "0" * 24, expect=2)
        await cli("users", "get", "../../etc/passwd", expect=2)

        # Pending users.
        async with aiohttp.ClientSession() as http:
            for email in (EMAIL, "bo@example.com"):
                url = f"{server.url}{CLIENT}/app/{server.app_id}/auth/providers/local-userpass/register"
                async with http.post(url, json={"email": email, "password": PASSWORD}) as resp:
                    assert resp.status == 201
        pending = (await cli("pending", "list", "--all", "--json")).json()["pending_users"]
        assert [p["login_ids"][0]["id"] for p in pending] == [EMAIL, "bo@example.com"]
        await cli("pending", "confirm", EMAIL)
        await client_login(server, "local-userpass", username=EMAIL, password=PASSWORD)
        await cli("pending", "delete", "bo@example.com")
        assert "(no pending users)" in (await cli("pending", "list")).out
        await cli("pending", "confirm", "bo@example.com", expect=2)
        await cli("pending", "delete", "a/../b@example.com", expect=2)

        # Nothing secret on any output.
        transcript = cli.transcript()
        assert private not in transcript and "eyJ" not in transcript


async def test_purge_anonymous_command_on_a_fake_clock(tmp_path: Path) -> None:
    key_file = await make_key(tmp_path)
    now = [1_800_000_000.0]
    config = cheap_config(key_file)
    config = attrs.evolve(config, anonymous_purge=attrs.evolve(config.anonymous_purge, interval=0))
    async with LocalServer(config=config, data_dir=tmp_path / "data", clock=lambda: now[0]) as server:
        cli = AdminCli(tmp_path, key_file=key_file, base_url=server.url, group_id=server.group_id)
        old = await client_login(server, "anon-user")
        now[0] += 40 * 86400
        recent = await client_login(server, "anon-user")
        now[0] += 55 * 86400
        assert (await cli("purge-anonymous", "--json")).json() == {"purged": 1, "user_ids": [old["user_id"]]}
        assert "purged 1 anonymous users" in (await cli("purge-anonymous", "--inactive-days", "30")).out
        listed = (await cli("users", "list", "--json")).json()["users"]
        assert recent["user_id"] not in [u["_id"] for u in listed]
        await cli("purge-anonymous", "--inactive-days", "-3", expect=2)


def closed_port_url() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def test_admin_cli_errors_and_exit_codes(tmp_path: Path) -> None:
    key_file = await make_key(tmp_path)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(
        json.dumps({"public_key": json.loads(key_file.read_text())["public_key"], "private_key": "nope"})
    )
    async with LocalServer(config=cheap_config(key_file), data_dir=tmp_path / "data") as server:
        cli = AdminCli(tmp_path, key_file=key_file, base_url=server.url, group_id=server.group_id)
        # Usage: no command, unknown command, no key file, no group id, bad URL, missing file.
        await cli(expect=2)
        await cli("users", "frobnicate", expect=2)
        no_key = AdminCli(tmp_path, key_file=key_file, base_url=server.url, group_id=server.group_id)
        no_key.env.pop("APPUSERS_ADMIN_KEY_FILE")
        assert "key file is required" in (await no_key("users", "list", expect=2)).err
        no_group = AdminCli(tmp_path, key_file=key_file, base_url=server.url)
        assert "group id is required" in (await no_group("users", "list", expect=2)).err
        await cli("--base-url", "ftp://x", "users", "list", expect=2)
        missing = await cli("--key-file", str(tmp_path / "none.json"), "users", "list", "--json", expect=2)
        assert missing.json()["error"]["kind"] == "usage"
        # Auth: a wrong private key (and the message never shows it).
        refused = await cli("--key-file", str(wrong), "users", "list", expect=3)
        assert "admin login refused" in refused.err and "nope" not in refused.err
        # Not found: another group.
        other = await cli("--group-id", "0" * 24, "users", "list", "--json", expect=2)
        assert other.json()["error"]["code"] == "GroupNotFound"
        # Network: nobody listening.
        await cli("--base-url", closed_port_url(), "users", "list", expect=4)
    # A server without admin keys has no Admin API.
    async with LocalServer(config=cheap_config(None), data_dir=tmp_path / "plain") as plain:
        cli = AdminCli(tmp_path, key_file=key_file, base_url=plain.url, group_id=plain.group_id)
        absent = await cli("users", "list", expect=5)
        assert "no Admin API" in absent.err


async def test_serve_prints_the_ids_the_admin_cli_needs(tmp_path: Path) -> None:
    key_file = await make_key(tmp_path)
    env = {**os.environ, "HOME": str(tmp_path)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "appusers",
        "serve",
        "--port",
        "0",
        "--data",
        str(tmp_path / "data"),
        "--admin-key-file",
        str(key_file),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any("admin api:" in line for line in lines):
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            assert line, f"serve ended early: {lines}"
            lines.append(line)
        admin_line = next(line for line in lines if "admin api:" in line)
        match = re.search(
            r"(http://\S+)/api/admin/v3\.0\s+group id: ([0-9a-f]{24})\s+app _id: ([0-9a-f]{24})", admin_line
        )
        assert match, admin_line
        url, group_id, app_oid = match.groups()
        cli = AdminCli(tmp_path, key_file=key_file, base_url=url, group_id=group_id)
        assert (await cli("--app-id", app_oid, "users", "list", "--json")).json() == {"users": []}
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
    # The ids are the data directory's: a second start prints the same.
    async with LocalServer(config=cheap_config(key_file), data_dir=tmp_path / "data") as server:
        assert (server.group_id, server.app_object_id) == (group_id, app_oid)
