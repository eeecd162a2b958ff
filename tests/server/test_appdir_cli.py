"""``appusers serve --app-dir``: a real child process serving the fixture export."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from appusers.server import serve_main

EXPORT = Path(__file__).with_name("appdir_export")
SECRETS = {"jwtSigningKey": "tasktracker-test-signing-key-0123456789", "mailerTokenSecret": "mailer-Zq9"}


def serve(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "appusers", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_serve_app_dir(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps(SECRETS))
    proc = serve("--app-dir", str(EXPORT), "--secrets", str(secrets), "--data", str(tmp_path / "data"))
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "app id: tasktracker-qwxyz" in line, line
        assert proc.stdout.readline().strip() == f"app directory: {EXPORT}"
        url = line.split()[2]
        location = f"{url}/api/client/v2.0/app/tasktracker-qwxyz/location"
        with urllib.request.urlopen(location, timeout=10) as resp:
            assert json.load(resp)["hostname"] == url
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    # Every part that is not served is said out loud, naming its file.
    assert "warning: functions/legacyReport.js: JavaScript is not run by this server" in err
    assert "warning: triggers/nightlyCleanup.json: SCHEDULED triggers are not run" in err
    assert "warning: data_sources/mongodb-atlas/tracker/tasks/schema.json: schema validation" in err
    assert SECRETS["jwtSigningKey"] not in out + err and SECRETS["mailerTokenSecret"] not in out + err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "error: auth/providers.json: custom-token.secret_config.signingKeys: secret 'jwtSigningKey'"),
        (["--secrets", "{missing}"], "error: cannot read secrets file"),
        (["--secrets", "{bad}"], "must hold a JSON object of secret name -> string value"),
    ],
)
def test_serve_app_dir_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"jwtSigningKey": 5}')
    args = [a.format(missing=tmp_path / "none.json", bad=bad) for a in args]
    assert serve_main(["--app-dir", str(EXPORT), *args, "--data", str(tmp_path / "data")]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "data").exists()  # nothing was started


def test_app_dir_options_need_app_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert serve_main(["--secrets", "x.json", "--data", str(tmp_path / "data")]) == 2
    assert "--app-id, --environment and --secrets go with --app-dir" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        serve_main(["--app-dir", str(EXPORT), "--config", "server/example.toml"])
    assert exited.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
