"""Interop suite: the official ``realm-web`` 2.0.1 client, run in Node, against the local server.

Each test starts a :class:`~appusers.server.LocalServer` in this process (port 0, an
admin token) and runs one scenario script from this directory with ``node``. A script
prints one JSON line per step, ``{"step": name, "ok": bool, "detail": ...}``, and stops
at its first failing step; the test asserts that every expected step is present and ok
(the failing step's detail goes into the assertion message) and then checks the
server-side effects (outbox, request counters) where they say something.

Node is the only thing that may make this module skip. ``node_modules`` is installed
with ``npm ci`` on first use; under ``CI=true`` it must already be there
(``.ci/install-interop.sh``), so a CI run never depends on an install in the middle
of the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from _scenarios import (  # tests/interop is on sys.path (no __init__.py)
    EMAIL_PASSWORD_CONFIG,
    MONGODB_CONFIG,
    PROFILE_CONFIG,
    STEPS,
)

HERE = Path(__file__).resolve().parent
NODE = shutil.which("node")
#: realm-web needs the global fetch, TextDecoder and web streams of Node >= 18;
#: package.json pins the engine to the version we test with.
MIN_NODE_MAJOR = 20
#: Wall-clock budget for one scenario process (a step has its own 15 s budget).
SCENARIO_TIMEOUT = 90.0

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(
        NODE is None, reason="node is not installed; the realm-web interop suite needs Node >= 20"
    ),
]


# --------------------------------------------------------------------------- setup


@pytest.fixture(scope="session")
def realm_web() -> Path:
    """``tests/interop/node_modules``, installed from the lockfile if missing."""
    assert NODE is not None
    version = subprocess.run([NODE, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    major = int(re.match(r"v(\d+)", version).group(1))  # type: ignore[union-attr]
    if major < MIN_NODE_MAJOR:
        pytest.fail(f"node {version} is too old for the interop suite: need Node >= {MIN_NODE_MAJOR}")
    modules = HERE / "node_modules"
    if not (modules / "realm-web" / "package.json").is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(
                "tests/interop/node_modules is missing: CI must run .ci/install-interop.sh "
                "(npm ci --prefix tests/interop) before the tests"
            )
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("node is installed but npm is not: cannot install tests/interop/node_modules")
        done = subprocess.run(
            [npm, "ci", "--prefix", str(HERE), "--no-audit", "--no-fund"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"npm ci --prefix tests/interop failed ({done.returncode}):\n{done.stderr[-3000:]}")
    installed = json.loads((modules / "realm-web" / "package.json").read_text())["version"]
    if installed != "2.0.1":
        pytest.fail(f"tests/interop/node_modules has realm-web {installed}, expected 2.0.1: run npm ci again")
    return modules


@dataclass
class Running:
    """A started LocalServer, the admin token the scripts use, and where they put secrets."""

    server: Any
    admin_token: str = field(repr=False)
    secrets_file: Path = field(repr=False)

    @property
    def stats(self) -> Mapping[str, int]:
        """The server's request counters by route."""
        return self.server.stats  # type: ignore[no-any-return]

    def read_outbox(self) -> list[dict[str, Any]]:
        """The mails the server "sent"."""
        return list(self.server.read_outbox())


ServerFactory = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start_server(tmp_path: Path, realm_web: Path) -> AsyncIterator[ServerFactory]:
    """Start a LocalServer in this process: ``await start_server(config_toml=None, config=None)``.

    With ``config_toml`` (TOML text) the settings are read from a file in ``tmp_path``;
    ``config`` is used as it is; otherwise the demo settings apply. Servers are closed when the test ends.
    """
    # Imported here so a broken or unfinished server fails each test with its own
    # traceback instead of erroring the whole module at collection.
    from _pg_testkit import server_database

    from appusers.server import LocalServer, load_config

    async with contextlib.AsyncExitStack() as stack:
        started: list[Running] = []

        async def start(config_toml: str | None = None, config: Any = None) -> Running:
            n = len(started)
            if config_toml is not None:
                path = tmp_path / f"config-{n}.toml"
                path.write_text(textwrap.dedent(config_toml))
                config = load_config(path)
            admin_token = secrets.token_urlsafe(24)
            server = await stack.enter_async_context(
                LocalServer(
                    config=server_database(config),
                    data_dir=tmp_path / f"data-{n}",
                    host="127.0.0.1",
                    port=0,
                    admin_token=admin_token,
                )
            )
            started.append(Running(server, admin_token, tmp_path / f"secrets-{n}.jsonl"))
            return started[-1]

        yield start


# --------------------------------------------------------------------------- running


@dataclass
class ScenarioRun:
    """What one scenario process printed and how it ended."""

    script: str
    returncode: int | None
    steps: list[dict[str, Any]] = field(default_factory=list)
    noise: list[str] = field(default_factory=list)  # stdout lines that are not step records
    stderr: str = ""
    timed_out: bool = False

    def detail(self, name: str) -> Any:
        """The detail of step ``name`` (which must have passed)."""
        for record in self.steps:
            if record["step"] == name:
                return record["detail"]
        raise KeyError(name)

    def report(self) -> str:
        """A readable account of the run, for assertion messages."""
        lines = [
            f"scenario {self.script}: exit code {self.returncode}{' (TIMED OUT)' if self.timed_out else ''}"
        ]
        for record in self.steps:
            mark = "ok  " if record.get("ok") else "FAIL"
            lines.append(f"  {mark} {record['step']}")
            if not record.get("ok"):
                lines.append(textwrap.indent(json.dumps(record.get("detail"), indent=2)[:4000], "         "))
        if self.noise:
            lines.append("  stdout (not step records):")
            lines.extend(f"    {line}" for line in self.noise[-20:])
        if self.stderr.strip():
            lines.append("  stderr (tail):")
            lines.append(textwrap.indent(self.stderr.strip()[-3000:], "    "))
        return "\n".join(lines)


async def run_scenario(
    running: Running, script: str, extra_env: Mapping[str, str] | None = None
) -> ScenarioRun:
    """Run ``node <script>`` against the server and collect its step records."""
    assert NODE is not None
    env = {
        **os.environ,
        "SERVER_URL": running.server.url,
        "APP_ID": running.server.app_id,
        "ADMIN_TOKEN": running.admin_token,
        "INTEROP_SECRETS_FILE": str(running.secrets_file),
        **(extra_env or {}),
    }
    env.pop("NODE_OPTIONS", None)  # a developer's --inspect or loader must not change the run
    proc = await asyncio.create_subprocess_exec(
        NODE,
        str(HERE / script),
        cwd=str(HERE),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    timed_out = False
    try:
        out, err = await asyncio.wait_for(proc.communicate(), SCENARIO_TIMEOUT)
    except TimeoutError:
        timed_out = True
        proc.kill()
        out, err = await proc.communicate()
    run = ScenarioRun(script=script, returncode=proc.returncode, stderr=err.decode(errors="replace"))
    run.timed_out = timed_out
    for line in out.decode(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict) and isinstance(record.get("step"), str):
            run.steps.append(record)
        elif line.strip():
            run.noise.append(line)
    return run


#: Every scenario ends with this step (``_harness.mjs``): content types of all responses.
WIRE_STEP = "wire.content_types"


def assert_steps(run: ScenarioRun, expected: list[str]) -> None:
    """Every expected step (and the closing wire check) ran and passed; the script exited 0."""
    expected = [*expected, WIRE_STEP]
    seen = {record["step"]: record for record in run.steps}
    failed = [r["step"] for r in run.steps if not r.get("ok")]
    missing = [name for name in expected if name not in seen]
    problems = []
    if failed:
        problems.append(f"failed steps: {failed}")
    if missing:
        problems.append(f"steps that never ran: {missing}")
    if run.returncode != 0:
        problems.append(f"exit code {run.returncode}")
    assert not problems, "; ".join(problems) + "\n" + run.report()
    unexpected = [r["step"] for r in run.steps if r["step"] not in expected]
    assert not unexpected, f"script reported steps this test does not know: {unexpected}\n{run.report()}"


def count(server: Running, route: str) -> int:
    """The server's request counter for ``route``."""
    return int(server.stats.get(route, 0))


def assert_no_plaintext_secrets(server: Running, expected_kinds: set[str]) -> None:
    """No secret a script recorded appears in clear in any file of the data directory.

    Reliability S7: passwords hashed, API keys and refresh tokens stored as digests.
    SQLite may keep pages in -wal/-journal files, so every file is scanned as bytes.
    """
    records = [json.loads(line) for line in server.secrets_file.read_text().splitlines() if line.strip()]
    assert {r["kind"] for r in records} == expected_kinds, "the script did not record the expected secrets"
    files = [p for p in Path(server.server.data_dir).rglob("*") if p.is_file()]
    assert files, "the data directory is empty"
    for path in files:
        data = path.read_bytes()
        for record in records:
            # The message names the kind and file, never the secret itself.
            assert record["value"].encode() not in data, (
                f"a {record['kind']} is stored in clear in {path.name}"
            )


def mails_for(server: Running, email: str) -> list[str]:
    """The kinds of the outbox mails sent to ``email``, oldest first."""
    return [m["kind"] for m in server.read_outbox() if m["email"] == email]


# --------------------------------------------------------------------------- scenarios


async def test_anonymous(start_server: ServerFactory) -> None:
    server = await start_server()
    run = await run_scenario(server, "anonymous.mjs")
    assert_steps(
        run,
        STEPS["anonymous"],
    )
    # Two distinct anonymous users logged in; realm-web reused the first one in between.
    assert count(server, "login") == 2, dict(server.stats)


async def test_email_password(start_server: ServerFactory) -> None:
    server = await start_server(EMAIL_PASSWORD_CONFIG)
    run = await run_scenario(server, "email_password.mjs")
    assert_steps(
        run,
        STEPS["email_password"],
    )
    email = run.detail("email.register")["email"]
    kinds = mails_for(server, email)
    # Registration and the resend mailed confirmations (the resend after confirming was
    # refused), reset/send mailed one reset; reset/call ran the function, no mail.
    assert kinds == ["confirm", "confirm", "reset"], kinds
    # The request that carried a stray access token (spec §2.3) was accepted.
    assert run.detail("email.send_reset_email")["sentWithAuthorization"] is True
    assert_no_plaintext_secrets(server, {"password"})


async def test_api_keys(start_server: ServerFactory) -> None:
    server = await start_server()
    run = await run_scenario(server, "api_keys.mjs")
    assert_steps(
        run,
        STEPS["api_keys"],
    )
    assert run.detail("keys.create")["status"] in (200, 201)
    # create x2, list, fetch, disable+fetch, enable+fetch, delete+list, fetch deleted,
    # the stranger's fetch: every user API-key request reached the server once.
    assert count(server, "api_keys") == 12, dict(server.stats)
    assert_no_plaintext_secrets(server, {"password", "refresh_token", "api_key"})


async def test_custom_token(start_server: ServerFactory) -> None:
    server = await start_server()
    # The demo settings' HS256 key (documented in server/example.toml); the script signs
    # its JWTs with it and never prints it.
    settings = server.server.config.providers.custom_token
    assert settings is not None and settings.algorithm == "HS256"
    run = await run_scenario(server, "custom_token.mjs", {"CUSTOM_TOKEN_SECRET": settings.key})
    assert_steps(
        run,
        STEPS["custom_token"],
    )


async def test_link_identity(start_server: ServerFactory) -> None:
    server = await start_server()
    run = await run_scenario(server, "link_identity.mjs")
    assert_steps(
        run,
        STEPS["link_identity"],
    )
    assert run.detail("link.link_email_password")["userId"] == run.detail("link.anonymous_login")["userId"]


async def test_refresh_after_forced_401(start_server: ServerFactory) -> None:
    server = await start_server()
    run = await run_scenario(server, "refresh.mjs")
    assert_steps(
        run,
        STEPS["refresh"],
    )
    detail = run.detail("refresh.revoke_then_call")
    assert detail["refreshStatAfter"] - detail["refreshStatBefore"] == 1
    # Refreshes seen by the server over the whole run: the forced one, the explicit
    # one, the concurrent storm, the injected 500, its successful retry and the refused
    # one at the end. Client and server counts agree.
    storm = run.detail("refresh.concurrent_calls_after_revoke")["refreshes"]
    assert count(server, "refresh") == 5 + storm, dict(server.stats)


async def test_delete_user(start_server: ServerFactory) -> None:
    server = await start_server()
    run = await run_scenario(server, "delete_user.mjs")
    assert_steps(
        run,
        STEPS["delete_user"],
    )


async def test_mongodb(start_server: ServerFactory) -> None:
    server = await start_server(MONGODB_CONFIG)
    run = await run_scenario(server, "mongodb.mjs")
    assert_steps(
        run,
        STEPS["mongodb"],
    )


async def test_profile_fields(start_server: ServerFactory) -> None:
    secret = secrets.token_urlsafe(32)
    server_key = secrets.token_urlsafe(32)
    audience = "interop-audience"
    server = await start_server(
        PROFILE_CONFIG.format(secret=secret, audience=audience, server_key=server_key)
    )
    assert server.server.app_id == "interop-profile"
    run = await run_scenario(
        server,
        "profile.mjs",
        {"CUSTOM_TOKEN_SECRET": secret, "CUSTOM_TOKEN_AUDIENCE": audience, "SERVER_API_KEY": server_key},
    )
    assert_steps(
        run,
        STEPS["profile"],
    )


async def test_custom_function(start_server: ServerFactory) -> None:
    server = await start_server()
    run = await run_scenario(server, "custom_function.mjs")
    assert_steps(
        run,
        STEPS["custom_function"],
    )


async def test_bson_types_through_echo(start_server: ServerFactory) -> None:
    server = await start_server()
    run = await run_scenario(server, "bson_types.mjs")
    assert_steps(
        run,
        STEPS["bson_types"],
    )


async def test_custom_user_data(start_server: ServerFactory) -> None:
    server = await start_server()
    run = await run_scenario(server, "custom_data.mjs")
    assert_steps(
        run,
        STEPS["custom_data"],
    )
    # Three explicit refreshes by the first user and one by the second.
    assert count(server, "refresh") == 4, dict(server.stats)


async def test_app_dir_export(start_server: ServerFactory) -> None:
    """An `appservices pull` export (tests/server/appdir_export) served to realm-web."""
    import attrs

    from appusers.server.appdir import load_app_dir

    export = HERE.parent / "server" / "appdir_export"
    secrets_ = {"jwtSigningKey": "tasktracker-test-signing-key-0123456789", "mailerTokenSecret": "mailer-Zq9"}
    config = load_app_dir(export, secrets=secrets_)
    config = attrs.evolve(config, limits=attrs.evolve(config.limits, function_timeout=2.0))
    server = await start_server(config=config)
    run = await run_scenario(server, "app_dir.mjs")
    assert_steps(run, STEPS["app_dir"])
