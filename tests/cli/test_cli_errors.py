"""``appusers`` fails with one clear line, never a traceback: a missing extra, a bad port, a data
directory in use, an unreadable or misspelt settings file; ``config example`` ships in the wheel."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import attrs

from appusers.server import LocalServer, load_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "server" / "example.toml"

# Run the command with the server extra's modules hidden, as after `pip install appusers`.
_WITHOUT_SERVER_EXTRA = (
    "import sys; sys.modules.update(jwt=None, mongomock=None, re2=None); "
    "from appusers.cli import main; sys.exit(main(sys.argv[1:]))"
)


@attrs.frozen
class Run:
    code: int
    out: str
    err: str


async def appusers(*args: str, tmp_path: Path, prelude: str | None = None, timeout: float = 60) -> Run:
    env = {**os.environ, "HOME": str(tmp_path / "home"), "APPUSERS_HOME": str(tmp_path / "session")}
    command = ["-c", prelude] if prelude else ["-m", "appusers"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *command, *args, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=tmp_path,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout)
    assert proc.returncode is not None
    run = Run(proc.returncode, out.decode(), err.decode())
    assert "Traceback" not in run.err, run
    return run


async def test_without_the_server_extra_the_server_commands_name_it(tmp_path: Path) -> None:
    demo, serve, check, example = await asyncio.gather(
        appusers("demo", tmp_path=tmp_path, prelude=_WITHOUT_SERVER_EXTRA),
        appusers("serve", "--port", "0", tmp_path=tmp_path, prelude=_WITHOUT_SERVER_EXTRA),
        appusers("config", "check", str(EXAMPLE), "--json", tmp_path=tmp_path, prelude=_WITHOUT_SERVER_EXTRA),
        appusers("config", "example", tmp_path=tmp_path, prelude=_WITHOUT_SERVER_EXTRA),
    )
    for run in (demo, serve, check):
        assert run.code == 8, run
        assert 'pip install "appusers[server]"' in run.err
    assert '"kind": "not_installed"' in check.out
    assert not (tmp_path / "appusers-data").exists()  # serve stopped before touching anything
    # The client side does not need the extra: the example settings still print.
    assert example.code == 0 and example.out == EXAMPLE.read_text()


async def test_with_the_server_extra_the_demo_runs(tmp_path: Path) -> None:
    run = await appusers("demo", "--quiet", tmp_path=tmp_path)
    assert run.code == 0, run
    assert "demo finished:" in run.out and "events observed" in run.out


async def test_serve_refuses_a_bad_port(tmp_path: Path) -> None:
    for port in ("99999", "-1", "http"):
        run = await appusers("serve", "--port", port, "--data", str(tmp_path / "data"), tmp_path=tmp_path)
        assert run.code == 2, run
        assert "--port" in run.err and "port" in run.err.splitlines()[-1]
    assert not (tmp_path / "data").exists()


async def test_serve_refuses_a_data_directory_in_use(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with LocalServer(data_dir=data) as server:
        run = await appusers("serve", "--port", "0", "--data", str(data), tmp_path=tmp_path)
        assert run.code == 1, run
        assert f"data directory {data} is in use by another server" in run.err
        # The server that has it goes on serving.
        assert server.url.startswith("http://127.0.0.1:")
        used = await appusers("--base-url", server.url, "login", "--anonymous", tmp_path=tmp_path)
        assert used.code == 0, used


async def test_serve_refuses_a_port_in_use(tmp_path: Path) -> None:
    async with LocalServer(data_dir=tmp_path / "first") as server:
        port = server.url.rsplit(":", 1)[1]
        run = await appusers("serve", "--port", port, "--data", str(tmp_path / "data"), tmp_path=tmp_path)
        assert run.code == 1, run
        assert f"port {port} on 127.0.0.1 is already in use" in run.err


async def test_serve_and_config_check_refuse_unreadable_and_misspelt_settings(tmp_path: Path) -> None:
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    misspelt = tmp_path / "misspelt.toml"
    misspelt.write_text("[tokens]\naccess_lifetme = 60\n")
    for config, says in (
        (tmp_path / "missing.toml", "No such file"),
        (tmp_path, "Is a directory"),
        (binary, "cannot read config"),
        (misspelt, "tokens.access_lifetme: unknown key; did you mean access_lifetime?"),
    ):
        serve = await appusers("serve", "--port", "0", "--config", str(config), "--data",
                               str(tmp_path / "data"), tmp_path=tmp_path)
        assert serve.code == 2 and says in serve.err, serve
        check = await appusers("config", "check", str(config), tmp_path=tmp_path)
        assert check.code == 2 and says in check.err, check
    good = await appusers("config", "check", str(EXAMPLE), tmp_path=tmp_path)
    assert good.code == 0 and "ok" in good.out


async def test_config_example_prints_the_complete_shipped_settings(tmp_path: Path) -> None:
    run = await appusers("config", "example", tmp_path=tmp_path)
    assert run.code == 0 and run.out == EXAMPLE.read_text()
    printed = tmp_path / "example.toml"
    printed.write_text(run.out)
    assert load_config(printed) == load_config(EXAMPLE)
    assert tomllib.loads(run.out)["app_id"] == "appusers-local"
    assert run.out.count("\n#") > 50  # commented: every setting is explained


def test_the_wheel_ships_the_cli_and_the_example_settings(wheel: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names if n.endswith("entry_points.txt"))
        metadata = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
        archive.extractall(tmp_path / "site")
    assert {"appusers/cli/__init__.py", "appusers/cli/_main.py", "appusers/server/example.toml"} <= names
    assert "appusers = appusers.cli:main" in entry_points
    # click is a dependency of the package itself, not of an extra: a plain install runs the CLI.
    assert any(line.startswith("Requires-Dist: click") and "extra ==" not in line
               for line in metadata.splitlines())
    # The installed files, without the server extra: config example prints the wheel's copy.
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "HOME": str(tmp_path)}
    code = ("import sys; sys.modules.update(jwt=None, mongomock=None, re2=None); import appusers.cli; "
            "print(appusers.cli.__file__, file=sys.stderr); "
            "sys.exit(appusers.cli.main(['config', 'example']))")
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stderr.startswith(str(tmp_path / "site"))  # the wheel's files, not the checkout's
    assert run.stdout == EXAMPLE.read_text()
