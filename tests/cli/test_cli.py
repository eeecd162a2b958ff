"""The ``appusers`` command, run as a real subprocess against a real local server.

Every invocation is a separate process sharing one data directory, as a user or
a script would run it; the server runs in the test's event loop, so the
subprocesses are awaited, never waited for synchronously.
"""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import socket
import stat
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import attrs

from appusers import App, Credentials
from appusers.server import LocalServer

EMAIL = "ana@example.com"
PASSWORD = "correct-horse-battery-staple"


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


class Cli:
    """Runs ``python -m appusers`` with a private data directory and HOME; keeps a transcript."""

    def __init__(self, tmp_path: Path, *, base_url: str, app_id: str = "appusers-local") -> None:
        self.data_dir = tmp_path / "data"
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        self.env = {
            **os.environ,
            "HOME": str(home),
            "APPUSERS_HOME": str(self.data_dir),
            "APPUSERS_BASE_URL": base_url,
            "APPUSERS_APP_ID": app_id,
        }
        self.env.pop("XDG_DATA_HOME", None)
        self.runs: list[Run] = []

    @property
    def session_file(self) -> Path:
        return self.data_dir / "session.json"

    async def __call__(self, *args: str, stdin: str | None = None, expect: int | None = 0) -> Run:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "appusers", *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
            # No controlling terminal: getpass must never reach the developer's tty.
            start_new_session=True,
        )
        out, err = await asyncio.wait_for(
            proc.communicate(None if stdin is None else stdin.encode()), timeout=60
        )
        assert proc.returncode is not None
        run = Run(tuple(args), proc.returncode, out.decode(), err.decode())
        self.runs.append(run)
        if expect is not None:
            assert run.code == expect, str(run)
        return run

    def transcript(self) -> str:
        return "\n".join(f"{r.out}\n{r.err}" for r in self.runs)


def closed_port_url() -> str:
    """A loopback URL nothing listens on (the port was just free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def register_confirmed(server: LocalServer, email: str, password: str) -> None:
    async with App(server.app_id, base_url=server.url) as app:
        await app.email_password_auth.register_user(email, password)
        mail = [m for m in server.read_outbox() if m["email"] == email and m["kind"] == "confirm"][-1]
        await app.email_password_auth.confirm_user(mail["token"], mail["tokenId"])


def stored_tokens(session_file: Path) -> set[str]:
    from appusers._records import load_user
    from appusers.adapters._file import _parse

    items = _parse(session_file.read_bytes())
    tokens = set()
    for key, value in items.items():
        if ":user:" in key:
            record = load_user(value)
            tokens |= {t for t in (record.access_token, record.refresh_token) if t}
    return tokens


async def test_a_whole_session_across_separate_runs(server: LocalServer, tmp_path: Path) -> None:
    await register_confirmed(server, EMAIL, PASSWORD)
    cli = Cli(tmp_path, base_url=server.url)

    # -- log in with the password on stdin, as a script would
    login = (await cli("login", "--email", EMAIL, "--password-stdin", "--json", stdin=PASSWORD + "\n")).json()
    ana = login["user"]
    assert ana["email"] == EMAIL and ana["state"] == "LoggedIn" and ana["current"] is True
    assert ana["providers"] == ["local-userpass"] and ana["anonymous"] is False
    assert set(ana) == {"id", "state", "current", "anonymous", "providers", "identities", "email", "name",
                        "profile"}
    ana_id = ana["id"]

    # The session file: private, tokens only.
    mode = stat.S_IMODE(cli.session_file.stat().st_mode)
    assert mode == 0o600, oct(mode)
    assert stat.S_IMODE(cli.data_dir.stat().st_mode) == 0o700
    assert PASSWORD not in cli.session_file.read_text()
    tokens = stored_tokens(cli.session_file)
    assert len(tokens) == 2

    # -- whoami and functions, each read back by new processes (run side by side: they only read)
    ejson_args = ('{"$oid": "5f1b2c3d4e5f6a7b8c9d0e1f"}', '{"$numberLong": "5"}',
                  '{"$date": "2024-01-02T03:04:05Z"}', '"text"', "-1.5")
    whoami, whoami_json, summed, summed_json, echo, echo_canonical = await asyncio.gather(
        cli("whoami"),
        cli("whoami", "--json"),
        cli("call", "sum", "2", "3"),
        cli("--json", "call", "sum", "2", "3"),
        cli("call", "echo", *ejson_args, "--json"),
        cli("call", "echo", *ejson_args[:3], "--canonical", "--json"),
    )
    assert ana_id in whoami.out and EMAIL in whoami.out
    assert whoami_json.json()["user"]["id"] == ana_id
    # Arguments are Extended JSON (relaxed or canonical); results are printed as JSON.
    assert summed.out == "5\n"
    assert summed_json.json() == {"function": "sum", "result": 5}
    echoed = echo.json()["result"]
    assert echoed == [{"$oid": "5f1b2c3d4e5f6a7b8c9d0e1f"}, 5, {"$date": "2024-01-02T03:04:05Z"}, "text",
                      -1.5]
    canonical = echo_canonical.json()["result"]
    assert canonical == [{"$oid": "5f1b2c3d4e5f6a7b8c9d0e1f"}, {"$numberLong": "5"},
                         {"$date": {"$numberLong": "1704164645000"}}]

    # -- custom data: visible in the token only after a refresh, and the refreshed token is kept
    await cli("call", "set_custom_data", '{"plan": "pro"}')
    assert (await cli("custom-data", "--json")).json() == {"user_id": ana_id, "custom_data": {}}
    refreshed = (await cli("custom-data", "--refresh", "--json")).json()
    assert refreshed["user_id"] == ana_id and refreshed["custom_data"]["plan"] == "pro"
    assert '"plan": "pro"' in (await cli("custom-data")).out
    tokens |= stored_tokens(cli.session_file)

    # -- API keys
    created_run, human = await asyncio.gather(
        cli("api-keys", "create", "ci", "--json"), cli("api-keys", "create", "laptop"))
    created = created_run.json()["api_key"]
    assert set(created) == {"id", "name", "disabled", "key"}
    assert created["name"] == "ci" and created["disabled"] is False
    secret, key_id = created["key"], created["id"]
    other_secret = human.out.strip()  # the key alone on stdout: KEY=$(appusers api-keys create x)
    assert len(other_secret) >= 32 and "\n" not in other_secret
    assert "only this once" in human.err and other_secret not in human.err
    listed_run, listing, taken = await asyncio.gather(
        cli("api-keys", "list", "--json"),
        cli("api-keys", "list"),
        cli("api-keys", "create", "ci", "--json", expect=2),  # the name is taken: bad input
    )
    assert taken.json()["error"]["code"] == "APIKeyAlreadyExists"
    listed = listed_run.json()
    assert listed["user_id"] == ana_id
    assert sorted(k["name"] for k in listed["api_keys"]) == ["ci", "laptop"]
    assert all(set(k) == {"id", "name", "disabled"} for k in listed["api_keys"])
    other_id = next(k["id"] for k in listed["api_keys"] if k["name"] == "laptop")
    assert key_id in listing.out and secret not in listing.out

    assert (await cli("api-keys", "disable", key_id, "--json")).json() == {
        "user_id": ana_id, "api_key_id": key_id, "action": "disabled"}
    assert {k["id"]: k["disabled"] for k in (await cli("api-keys", "list", "--json")).json()["api_keys"]} == {
        key_id: True, other_id: False}
    refused = await cli("login", "--api-key-stdin", stdin=secret + "\n", expect=3)
    assert "login failed" in refused.err
    await cli("api-keys", "enable", key_id)
    by_key = (await cli("login", "--api-key-stdin", "--json", stdin=secret + "\n")).json()["user"]
    assert by_key["id"] == ana_id and "api-key" in by_key["providers"]
    tokens |= stored_tokens(cli.session_file)
    await cli("api-keys", "delete", other_id)
    # The key this session logged in with: deleting it ends the session too (issue 9 item 6).
    await cli("api-keys", "delete", key_id)
    ended = await cli("api-keys", "list", expect=3)
    assert "the session expired or was revoked" in ended.err
    await cli("login", "--email", EMAIL, "--password-stdin", stdin=PASSWORD + "\n")
    tokens |= stored_tokens(cli.session_file)
    remaining, _, _ = await asyncio.gather(
        cli("api-keys", "list", "--json"),
        cli("api-keys", "delete", key_id, expect=2),  # gone: bad input
        cli("api-keys", "enable", "not-an-object-id", expect=2),
    )
    assert remaining.json()["api_keys"] == []

    # -- a second user; users; switch
    guest = (await cli("login", "--anonymous", "--json")).json()["user"]
    guest_id = guest["id"]
    assert guest_id != ana_id and guest["anonymous"] is True
    users_run, table_run = await asyncio.gather(cli("users", "--json"), cli("users"))
    users = users_run.json()
    assert users["current"] == guest_id
    assert [(u["id"], u["current"], u["state"]) for u in users["users"]] == [
        (ana_id, False, "LoggedIn"), (guest_id, True, "LoggedIn")]
    table = table_run.out.splitlines()
    assert [line.startswith("*") for line in table] == [False, True]

    switched = (await cli("switch", ana_id, "--json")).json()["user"]
    assert switched["id"] == ana_id and switched["current"] is True
    saved, _, as_guest = await asyncio.gather(
        cli("whoami", "--json"),
        cli("switch", "0123456789abcdef01234567", expect=2),
        cli("call", "whoami", "--user", guest_id, "--json"),
    )
    assert saved.json()["user"]["id"] == ana_id  # the switch was saved
    assert as_guest.json()["result"]["id"] == guest_id

    # -- log out, remove
    assert (await cli("logout", "--json")).json() == {"user_id": ana_id, "state": "LoggedOut"}
    users_run, _, _ = await asyncio.gather(
        cli("users", "--json"),
        cli("call", "sum", "1", "--user", ana_id, expect=3),
        cli("switch", ana_id, expect=3),
    )
    users = users_run.json()
    assert users["current"] == guest_id
    assert {u["id"]: u["state"] for u in users["users"]} == {ana_id: "LoggedOut", guest_id: "LoggedIn"}
    assert (await cli("remove", ana_id, "--json")).json() == {"user_id": ana_id, "state": "Removed"}
    await cli("remove", ana_id, expect=2)
    assert (await cli("logout", "--json")).json() == {"user_id": guest_id, "state": "Removed"}
    no_users, not_logged_in, no_logout = await asyncio.gather(
        cli("users", "--json"), cli("whoami", "--json", expect=3), cli("logout", "--json"))
    assert no_users.json() == {"current": None, "users": []}
    assert not_logged_in.json()["error"]["kind"] == "auth"
    assert no_logout.json() == {"user_id": None, "state": None}

    # -- nothing secret was ever printed, except each new API key by the command that created it
    transcript = cli.transcript()
    assert PASSWORD not in transcript
    for token in tokens:
        assert token not in transcript
    for key in (secret, other_secret):
        printed_by = [r.args[:2] for r in cli.runs if key in r.out or key in r.err]
        assert printed_by == [("api-keys", "create")]
    assert PASSWORD not in cli.session_file.read_text()


async def test_exit_codes(server: LocalServer, tmp_path: Path) -> None:
    await register_confirmed(server, EMAIL, PASSWORD)
    cli = Cli(tmp_path, base_url=server.url)
    unreachable = closed_port_url()

    bad_option, bad_json, no_command, wrong_password, offline, bad_url = await asyncio.gather(
        cli("login", "--anonymous", "--bogus", "--json", expect=2),
        cli("call", "sum", "{not json", expect=2),
        cli(expect=2),
        cli("login", "--email", EMAIL, "--password-stdin", "--json", stdin="wrong-password\n", expect=3),
        cli("--base-url", unreachable, "login", "--anonymous", "--json", expect=4),
        cli("--base-url", "ftp://example.invalid", "login", "--anonymous", expect=2),
    )
    assert bad_option.json()["error"]["kind"] == "usage" and "--bogus" in bad_option.err
    assert "argument 1" in bad_json.err
    assert "usage:" in no_command.err
    error = wrong_password.json()["error"]
    assert error == {"exit_code": 3, "kind": "auth", "type": "InvalidPasswordError",
                     "code": "InvalidPassword", "message": error["message"]}
    assert "wrong-password" not in wrong_password.out + wrong_password.err
    assert offline.json()["error"]["kind"] == "network"
    assert unreachable in offline.err and "Traceback" not in offline.err
    assert "base_url" in bad_url.err

    # Bad input is refused before anything reaches the server.
    await cli("login", "--email", EMAIL, "--password-stdin", stdin="\n", expect=2)
    await cli("login", "--anonymous", "--password-stdin", expect=2)
    await cli("login", "--email", EMAIL, "--anonymous", expect=2)
    await cli("--timeout", "0", "users", expect=2)

    # Without a terminal the password is never read with echo: a clear usage error instead.
    no_tty = await cli("login", "--email", EMAIL, expect=2)
    assert "--password-stdin" in no_tty.err

    # A server error is 5; the next call works again.
    await cli("login", "--anonymous")
    server.inject_fault("function_call", 503, {"error": "down for a moment",
                                               "error_code": "MaintenanceInProgress"})
    maintenance = await cli("call", "sum", "1", "--json", expect=5)
    assert maintenance.json()["error"]["kind"] == "server"
    assert "down for a moment" in maintenance.err
    await cli("call", "sum", "1")
    await cli("call", "no_such_function", expect=2)  # unknown function name: bad input
    # A revoked session: the refresh is rejected, the user is logged out, exit 3.
    guest_id = (await cli("whoami", "--json")).json()["user"]["id"]
    await server.revoke_sessions(guest_id)
    revoked = await cli("custom-data", "--refresh", expect=3)
    assert "log in again" in revoked.err
    assert PASSWORD not in cli.transcript()


async def test_network_failures_keep_the_local_state_and_say_so(server: LocalServer, tmp_path: Path) -> None:
    await register_confirmed(server, EMAIL, PASSWORD)
    cli = Cli(tmp_path, base_url=server.url)
    user_id = (await cli("login", "--email", EMAIL, "--password-stdin", "--json", stdin=PASSWORD)).json()[
        "user"]["id"]
    # The server goes away (same URL: sessions are kept per server URL and app id).
    await server.stop()
    # Local commands work offline.
    assert (await cli("whoami", "--json")).json()["user"]["id"] == user_id
    # With --debug a traceback is shown (and still no secret).
    debugged = await cli("--debug", "call", "sum", "1", expect=4)
    assert "Traceback" in debugged.err and "TransportError" in debugged.err
    # A log-out the server cannot hear of still logs out here, and says so with exit 4.
    offline = await cli("logout", expect=4)
    assert "logged out on this device, but the server could not be told" in offline.err
    users = (await cli("users", "--json")).json()
    assert users == {"current": None, "users": [users["users"][0]]}
    assert users["users"][0]["state"] == "LoggedOut"
    assert PASSWORD not in cli.transcript()
    for token in stored_tokens(cli.session_file):
        assert token not in cli.transcript()


async def test_login_with_a_custom_jwt(server: LocalServer, tmp_path: Path) -> None:
    import jwt

    # The demo settings' published custom-token secret (server/example.toml).
    token = jwt.encode({"sub": "cli-jwt-user", "exp": int(time.time()) + 600},
                       "appusers-local-demo-secret-NOT-FOR-PRODUCTION", algorithm="HS256")
    cli = Cli(tmp_path, base_url=server.url)
    user = (await cli("login", "--jwt-stdin", "--json", stdin=token + "\n")).json()["user"]
    assert user["providers"] == ["custom-token"]
    again = (await cli("login", "--jwt", token, "--json")).json()["user"]
    assert again["id"] == user["id"]
    forged = jwt.encode({"sub": "cli-jwt-user", "exp": int(time.time()) + 600},
                        "a-different-secret-of-forty-characters!!", algorithm="HS256")
    await cli("login", "--jwt-stdin", stdin=forged, expect=3)
    assert token not in "".join(r.out + r.err for r in cli.runs)


async def test_a_corrupt_session_file_is_set_aside_with_a_warning(tmp_path: Path) -> None:
    cli = Cli(tmp_path, base_url=closed_port_url())
    cli.data_dir.mkdir(mode=0o700)
    cli.session_file.write_text("{ not json")
    run = await cli("users", "--json")
    assert run.json() == {"current": None, "users": []}
    assert "warning: session file repaired: quarantined" in run.err
    assert list(cli.data_dir.glob("session.json.corrupt-*"))


async def test_session_settings_from_flags_and_environment(server: LocalServer, tmp_path: Path) -> None:
    # Everything on the command line: no environment needed, and flags win over it.
    cli = Cli(tmp_path, base_url=closed_port_url(), app_id="not-this-app")
    other_dir = tmp_path / "elsewhere"
    common = ("--data-dir", str(other_dir), "--base-url", server.url, "--app-id", server.app_id)
    user_id = (await cli("login", "--anonymous", *common, "--json")).json()["user"]["id"]
    assert (other_dir / "session.json").exists() and not cli.session_file.exists()
    # Options may also come before the command name.
    assert (await cli(*common, "--json", "whoami")).json()["user"]["id"] == user_id
    # The session is per app id: the same file knows nobody under another app id.
    await cli("--data-dir", str(other_dir), "whoami", expect=3)

    # XDG_DATA_HOME, then ~/.local/share, when APPUSERS_HOME is unset.
    cli.env.pop("APPUSERS_HOME")
    cli.env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    await cli("login", "--anonymous", "--base-url", server.url, "--app-id", server.app_id)
    assert (tmp_path / "xdg" / "appusers" / "session.json").exists()
    cli.env.pop("XDG_DATA_HOME")
    await cli("login", "--anonymous", "--base-url", server.url, "--app-id", server.app_id)
    assert (tmp_path / "home" / ".local" / "share" / "appusers" / "session.json").exists()


async def test_help_documents_the_exit_codes_and_serve_still_delegates(tmp_path: Path) -> None:
    cli = Cli(tmp_path, base_url=closed_port_url())
    helped, serve_help, version = await asyncio.gather(
        cli("--help"), cli("serve", "--help"), cli("--version"))
    for line in ("0 ", "1 ", "2 ", "3 ", "4 ", "5 "):
        assert f"\n  {line}" in helped.out
    assert "exit codes" in helped.out and "APPUSERS_HOME" in helped.out
    assert "--admin-token" in serve_help.out  # the server's own parser answered
    assert version.out.startswith("appusers ")


# -- the password prompt, on a real pseudo-terminal ------------------------------------------------


def _run_on_pty(argv: list[str], answer: bytes, prompt: bytes, env: dict[str, str]) -> tuple[bytes, int]:
    """Run ``argv`` on a new pty, type ``answer`` after ``prompt`` appears; return (output, exit code)."""
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() with threads alive; the child only calls execve.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid, fd = pty.fork()
    if pid == 0:  # the child: exec at once (no Python-level work after a fork)
        try:
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    output = b""
    answered = False
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if not answered and prompt in output:
                os.write(fd, answer)
                answered = True
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    assert answered, f"no prompt seen: {output!r}"
    return output, os.waitstatus_to_exitcode(status)


def test_the_password_prompt_does_not_echo(tmp_path: Path) -> None:
    secret = b"typed-on-a-tty-7431"
    env = {**os.environ, "HOME": str(tmp_path), "APPUSERS_HOME": str(tmp_path / "data")}
    # Control: the same terminal echoes what an ordinary input() reads, so the check below can fail.
    echoed, _ = _run_on_pty(
        [sys.executable, "-c", "print('Password:', flush=True); input()"], secret + b"\n", b"Password:", env)
    assert secret in echoed

    argv = [sys.executable, "-m", "appusers", "--base-url", closed_port_url(),
            "login", "--email", EMAIL]
    output, code = _run_on_pty(argv, secret + b"\n", b"Password:", env)
    assert secret not in output
    # The password was read (the login went on to the network, which is closed): exit 4.
    assert code == 4, output
    assert b"cannot reach the server" in output


# -- accounts from the shell: register, confirm, resend, reset, link, profile ----------------------


def outbox(server: LocalServer, email: str, kind: str) -> list[dict[str, Any]]:
    return [m for m in server.read_outbox() if m["email"] == email and m["kind"] == kind]


async def test_register_confirm_and_log_in_from_the_shell(server: LocalServer, tmp_path: Path) -> None:
    cli = Cli(tmp_path, base_url=server.url)
    registered = (await cli("register", "--email", EMAIL, "--password-stdin", "--json",
                            stdin=PASSWORD + "\n")).json()
    assert registered == {"email": EMAIL, "registered": True}
    # Not confirmed yet: the log-in is refused, naming the cause.
    await cli("login", "--email", EMAIL, "--password-stdin", stdin=PASSWORD, expect=3)
    # --from-outbox takes the token of the newest confirmation email from the server's outbox.
    confirmed = await cli("confirm", "--email", EMAIL, "--from-outbox", str(server.data_dir))
    assert "confirmed" in confirmed.out
    user = (await cli("login", "--email", EMAIL, "--password-stdin", "--json", stdin=PASSWORD)).json()["user"]
    assert user["email"] == EMAIL and user["providers"] == ["local-userpass"]

    # TOKEN TOKEN_ID as the email gives them.
    other = "bo@example.com"
    await cli("register", "--email", other, "--password-stdin", stdin=PASSWORD)
    mail = outbox(server, other, "confirm")[-1]
    await cli("confirm", mail["token"], mail["tokenId"])
    await cli("login", "--email", other, "--password-stdin", stdin=PASSWORD)
    assert PASSWORD not in cli.transcript()
    assert mail["token"] not in "".join(r.out + r.err for r in cli.runs[-1:])


async def test_register_and_confirm_refuse_bad_input(server: LocalServer, tmp_path: Path) -> None:
    cli = Cli(tmp_path, base_url=server.url)
    short, no_email, _empty_email = await asyncio.gather(
        cli("register", "--email", EMAIL, "--password-stdin", "--json", stdin="abc\n", expect=2),
        cli("register", "--password-stdin", stdin=PASSWORD, expect=2),
        cli("register", "--email", "", "--password-stdin", stdin=PASSWORD, expect=2),
    )
    assert short.json()["error"]["kind"] == "usage" and "password" in short.err
    assert "--email" in no_email.err
    assert outbox(server, EMAIL, "confirm") == []
    await cli("register", "--email", EMAIL, "--password-stdin", stdin=PASSWORD)
    mail = outbox(server, EMAIL, "confirm")[-1]
    # A wrong token, half a token, both ways at once, an outbox that is not there: exit 2, nothing confirmed.
    wrong = await cli("confirm", "0" * 64, mail["tokenId"], "--json", expect=2)
    assert wrong.json()["error"]["code"] == "UserpassTokenInvalid"
    await cli("confirm", mail["token"], expect=2)
    # Tokens are base64url: one may start with "-" (and hold an "h"); it is still a token.
    dashed = await cli("confirm", "-Uh7" + "x" * 40, mail["tokenId"], "--json", expect=2)
    assert dashed.json()["error"]["code"] == "UserpassTokenInvalid"
    dashed = await cli("reset-password", "confirm", "-Uh7" + "x" * 40, mail["tokenId"], "--password-stdin",
                       "--json", stdin=PASSWORD, expect=2)
    assert dashed.json()["error"]["code"] == "UserpassTokenInvalid"
    both = await cli("confirm", mail["token"], mail["tokenId"], "--from-outbox", str(server.data_dir),
                     "--email", EMAIL, expect=2)
    assert "not both" in both.err
    assert "--email" in (await cli("confirm", "--from-outbox", str(server.data_dir), expect=2)).err
    missing = await cli("confirm", "--email", EMAIL, "--from-outbox", str(tmp_path / "nowhere"), expect=2)
    assert "no outbox" in missing.err and "Traceback" not in missing.err
    nobody = await cli("confirm", "--email", "ghost@example.com", "--from-outbox", str(server.data_dir),
                       expect=2)
    assert "no confirm email to ghost@example.com" in nobody.err
    await cli("login", "--email", EMAIL, "--password-stdin", stdin=PASSWORD, expect=3)
    assert mail["token"] not in cli.transcript()


async def test_resend_confirmation(server: LocalServer, tmp_path: Path) -> None:
    cli = Cli(tmp_path, base_url=server.url)
    await cli("register", "--email", EMAIL, "--password-stdin", stdin=PASSWORD)
    resent = await cli("resend-confirmation", "--email", EMAIL, "--json")
    assert resent.json() == {"email": EMAIL, "sent": True}
    first, second = outbox(server, EMAIL, "confirm")
    assert first["tokenId"] != second["tokenId"]
    await cli("confirm", "--email", EMAIL, "--from-outbox", str(server.data_dir))  # the newest one works
    await cli("login", "--email", EMAIL, "--password-stdin", stdin=PASSWORD)
    # Bad input: no address, or an address that is not one.
    await cli("resend-confirmation", expect=2)
    await cli("resend-confirmation", "--email", "", expect=2)


async def test_reset_password_send_and_confirm(server: LocalServer, tmp_path: Path) -> None:
    await register_confirmed(server, EMAIL, PASSWORD)
    cli = Cli(tmp_path, base_url=server.url)
    new_password = "another-horse-battery-staple"
    assert (await cli("reset-password", "send", "--email", EMAIL, "--json")).json()["sent"] is True
    mail = outbox(server, EMAIL, "reset")[-1]
    # Bad input first: a wrong token, no token, no new password; the old password still works.
    wrong = await cli("reset-password", "confirm", "0" * 64, mail["tokenId"], "--password-stdin",
                      "--json", stdin=new_password, expect=2)
    assert wrong.json()["error"]["code"] == "UserpassTokenInvalid"
    await cli("reset-password", "confirm", "--password-stdin", stdin=new_password, expect=2)
    await cli("reset-password", "confirm", mail["token"], mail["tokenId"], "--password-stdin", stdin="\n",
              expect=2)
    await cli("reset-password", "bogus", expect=2)
    await cli("login", "--email", EMAIL, "--password-stdin", stdin=PASSWORD)
    # The real thing, through the outbox.
    await cli("reset-password", "confirm", "--email", EMAIL, "--from-outbox", str(server.data_dir),
              "--password-stdin", stdin=new_password + "\n")
    refused = await cli("login", "--email", EMAIL, "--password-stdin", stdin=PASSWORD, expect=3)
    assert "invalid username/password" in refused.err
    await cli("login", "--email", EMAIL, "--password-stdin", stdin=new_password)
    assert new_password not in cli.transcript() and PASSWORD not in cli.transcript()


async def test_link_and_profile(server: LocalServer, tmp_path: Path) -> None:
    cli = Cli(tmp_path, base_url=server.url)
    # An anonymous user keeps their id when they link an email/password identity.
    guest = (await cli("login", "--anonymous", "--json")).json()["user"]
    async with App(server.app_id, base_url=server.url) as app:
        await app.email_password_auth.register_user(EMAIL, PASSWORD)
        mail = outbox(server, EMAIL, "confirm")[-1]
        await app.email_password_auth.confirm_user(mail["token"], mail["tokenId"])
    # Bad input: a wrong password, no way given, two ways at once; nothing is linked.
    refused = await cli("link", "--email", EMAIL, "--password-stdin", stdin="wrong-password", expect=3)
    assert "linking failed: invalid username/password" in refused.err
    await cli("link", expect=2)
    await cli("link", "--email", EMAIL, "--jwt-stdin", stdin=PASSWORD, expect=2)
    await cli("link", "--anonymous", expect=2)  # anonymous is not an identity to link
    assert (await cli("profile", "--json")).json()["identities"][0]["provider_type"] == "anon-user"
    linked = (await cli("link", "--email", EMAIL, "--password-stdin", "--json",
                        stdin=PASSWORD)).json()["user"]
    assert linked["id"] == guest["id"] and sorted(linked["providers"]) == ["anon-user", "local-userpass"]
    profile = (await cli("profile", "--json")).json()
    assert profile["user_id"] == guest["id"] and profile["profile"]["email"] == EMAIL
    assert sorted(i["provider_type"] for i in profile["identities"]) == ["anon-user", "local-userpass"]
    assert EMAIL in (await cli("profile")).out
    # profile of a user nobody knows, or with nobody logged in.
    await cli("profile", "--user", "ffffffffffffffffffffffff", expect=2)
    await cli("logout")
    await cli("profile", expect=3)
    assert PASSWORD not in cli.transcript()


async def test_custom_data_refresh(server: LocalServer, tmp_path: Path) -> None:
    cli = Cli(tmp_path, base_url=server.url)
    await cli("login", "--anonymous")
    assert (await cli("custom-data", "--json")).json()["custom_data"] == {}
    await cli("call", "set_custom_data", '{"plan": "pro"}')
    # The access token still carries the old data until it is refreshed.
    assert "plan" not in (await cli("custom-data", "--json")).json()["custom_data"]
    assert (await cli("custom-data", "--refresh", "--json")).json()["custom_data"]["plan"] == "pro"
    assert (await cli("custom-data", "--json")).json()["custom_data"]["plan"] == "pro"  # kept in the session
    # Bad input: an option it does not take; nobody logged in.
    await cli("custom-data", "--refreshh", expect=2)
    await cli("logout")
    await cli("custom-data", "--refresh", expect=3)


# -- which user: sessions per server, switch by prefix or email ------------------------------------


async def test_sessions_are_kept_per_server_url_and_app_id(server: LocalServer, tmp_path: Path) -> None:
    from appusers.server import LocalServer as Server

    cli = Cli(tmp_path, base_url=server.url)
    here = (await cli("login", "--anonymous", "--json")).json()["user"]["id"]
    async with Server(config=server.config, data_dir=tmp_path / "second") as second:
        assert second.url != server.url
        # The same session file, another server: nobody is logged in there.
        nobody = {"current": None, "users": []}
        assert (await cli("--base-url", second.url, "users", "--json")).json() == nobody
        await cli("--base-url", second.url, "whoami", expect=3)
        there = (await cli("--base-url", second.url, "login", "--anonymous", "--json")).json()["user"]["id"]
        listed = (await cli("--base-url", second.url, "users", "--json")).json()
        assert [u["id"] for u in listed["users"]] == [there]
    assert [u["id"] for u in (await cli("users", "--json")).json()["users"]] == [here]
    # A trailing slash is the same server.
    assert (await cli("--base-url", server.url + "/", "whoami", "--json")).json()["user"]["id"] == here


async def test_a_session_file_of_the_earlier_unscoped_format_is_adopted_by_the_first_server(
    server: LocalServer, tmp_path: Path
) -> None:
    from appusers.adapters import FileStorage
    from appusers.adapters._file import _parse

    cli = Cli(tmp_path, base_url=server.url)
    cli.data_dir.mkdir(mode=0o700)
    # What the CLI wrote before sessions were keyed by server: the App's own keys, unscoped.
    async with App(server.app_id, base_url=server.url, storage=FileStorage(cli.session_file)) as old:
        user = await old.log_in(Credentials.anonymous())
    before = _parse(cli.session_file.read_bytes())
    assert before and not any(key.startswith("cli:") for key in before)

    first = await cli("whoami", "--json")
    assert first.json()["user"]["id"] == user.id
    assert "now belong to " + server.url in first.err
    after = _parse(cli.session_file.read_bytes())
    # Moved, not copied: the same records under this server's scope, nothing unscoped left.
    assert {key.split("|", 1)[1]: value for key, value in after.items()} == before
    assert all(key.startswith(f"cli:{server.url}|") for key in after)
    # Adopted once: the next run says nothing, and another server does not see the user.
    again = await cli("whoami", "--json")
    assert again.json()["user"]["id"] == user.id and "now belong" not in again.err
    elsewhere = await cli("--base-url", closed_port_url(), "users", "--json")
    assert elsewhere.json() == {"current": None, "users": []}
    # The adopted session is alive on its server: a call refreshes and answers.
    assert (await cli("call", "sum", "2", "3", "--json")).json()["result"] == 5


async def test_switch_by_id_prefix_or_email(server: LocalServer, tmp_path: Path) -> None:
    await register_confirmed(server, EMAIL, PASSWORD)
    cli = Cli(tmp_path, base_url=server.url)
    ana = (await cli("login", "--email", EMAIL, "--password-stdin", "--json", stdin=PASSWORD)).json()["user"]
    guests = [(await cli("login", "--anonymous", "--json")).json()["user"]["id"]]
    assert guests[0] != ana["id"]
    # Ids are ObjectIds minted one after another: they share a long prefix.
    length = next(i for i, (a, b) in enumerate(zip(ana["id"], guests[0], strict=True)) if a != b)
    common = ana["id"][:length]
    ambiguous = await cli("switch", common, "--json", expect=2)
    assert "ambiguous" in ambiguous.err and ana["id"] in ambiguous.err and guests[0] in ambiguous.err
    unique = ana["id"][: len(common) + 1]
    assert (await cli("switch", unique, "--json")).json()["user"]["id"] == ana["id"]
    await cli("switch", guests[0])
    assert (await cli("switch", EMAIL.upper(), "--json")).json()["user"]["id"] == ana["id"]
    acting = await cli("whoami", "--user", guests[0][:len(common) + 1], "--json")
    assert acting.json()["user"]["id"] == guests[0]
    # Unknown prefix, unknown email, an empty id: exit 2, nothing switched.
    for wanted in ("ffff", "ghost@example.com", ""):
        run = await cli("switch", wanted, expect=2)
        assert "unknown" in run.err
    assert (await cli("whoami", "--json")).json()["user"]["id"] == ana["id"]


# -- the causes: throttled, unknown app id, insecure http ------------------------------------------


async def test_throttled_and_unknown_app_id_have_their_own_exit_codes(tmp_path: Path) -> None:
    from appusers.server._config import ScryptSettings, ThrottleSettings, load_config

    config = attrs.evolve(load_config(None), scrypt=ScryptSettings(n=2**10, r=8, p=1),
                          throttle=ThrottleSettings(account_free_failures=0, base_delay=120, max_delay=120))
    async with LocalServer(config=config, data_dir=tmp_path / "server") as server:
        await register_confirmed(server, EMAIL, PASSWORD)
        cli = Cli(tmp_path, base_url=server.url)
        await cli("login", "--email", EMAIL, "--password-stdin", stdin="wrong-password", expect=3)
        throttled = await cli("login", "--email", EMAIL, "--password-stdin", "--json", stdin=PASSWORD,
                              expect=6)
        error = throttled.json()["error"]
        assert error["kind"] == "throttled" and 0 < error["retry_after"] <= 120
        assert f"wait {error['retry_after']} s before trying again" in throttled.err

        unknown = await cli("--app-id", "no-such-app", "login", "--anonymous", "--json", expect=7)
        assert unknown.json()["error"]["kind"] == "unknown_app"
        assert "unknown app id 'no-such-app'" in unknown.err and server.url in unknown.err


async def test_plain_http_to_another_host_needs_allow_insecure_http(tmp_path: Path) -> None:
    # A host that is not loopback (and does not resolve: .invalid is reserved, RFC 6761).
    cli = Cli(tmp_path, base_url="http://appusers-test.invalid:9090")
    refused = await cli("login", "--anonymous", "--json", expect=2)
    assert "plain http" in refused.err and "--allow-insecure-http" in refused.err
    allowed = await cli("login", "--anonymous", "--allow-insecure-http", "--timeout", "10", "--json",
                        expect=4)
    assert allowed.json()["error"]["kind"] == "network"  # it went on to the network
    await cli("--allow-insecure-http", "login", "--anonymous", "--timeout", "10", expect=4)


async def test_shell_completion(tmp_path: Path) -> None:
    cli = Cli(tmp_path, base_url=closed_port_url())
    cli.env.update({"_APPUSERS_COMPLETE": "bash_complete", "COMP_WORDS": "appusers re", "COMP_CWORD": "1"})
    words = {line.split(",", 1)[1] for line in (await cli()).out.splitlines()}
    assert words == {"register", "remove", "resend-confirmation", "reset-password"}
    cli.env.update({"COMP_WORDS": "appusers reset-password ", "COMP_CWORD": "2"})
    assert {line.split(",", 1)[1] for line in (await cli()).out.splitlines()} == {"send", "confirm"}
    cli.env.update({"COMP_WORDS": "appusers login --pass", "COMP_CWORD": "2"})
    assert (await cli()).out.splitlines() == ["plain,--password-stdin"]
    cli.env.update({"COMP_WORDS": "appusers admin users di", "COMP_CWORD": "3"})
    assert (await cli()).out.splitlines() == ["plain,disable"]
    cli.env["_APPUSERS_COMPLETE"] = "bash_source"
    assert "_appusers_completion" in (await cli()).out
