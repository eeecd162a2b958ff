"""Configuration loading and the ``appusers serve`` entry point (a real child process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from appusers.server import ConfigError, ServerConfig, load_config
from appusers.server._config import DEMO_FUNCTIONS_MODULE

EXAMPLE = Path(__file__).resolve().parents[2] / "server" / "example.toml"


def test_demo_settings() -> None:
    config = load_config(None)
    assert config.app_id == "appusers-local"
    for provider in (
        "anon-user",
        "local-userpass",
        "api-key",
        "custom-token",
        "custom-function",
        "oauth2-google",
        "oauth2-facebook",
        "oauth2-apple",
    ):
        assert config.providers.enabled(provider)
    assert config.providers.local_userpass is not None and not config.providers.local_userpass.auto_confirm
    assert config.functions_module == DEMO_FUNCTIONS_MODULE
    assert config.custom_data.enabled and config.custom_data.collection == "custom_data"
    assert config.access_token_lifetime == 1800 and config.refresh_token_lifetime == 5184000
    assert config.scrypt.n == 2**15


def test_example_file_matches_the_demo_settings() -> None:
    example = load_config(EXAMPLE)
    demo = ServerConfig.demo()
    assert example == demo


def test_bad_config_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    for text in [
        "app_id = 5",
        "not toml [",
        "[providers.custom-token]\nalgorithm = 'HS256'\n",
        "[providers.custom-token]\nkey='k'\nalgorithm = 'none'\n",
        "[throttle]\nbase_delay = 'x'\n",
    ]:
        bad.write_text(text)
        with pytest.raises(ConfigError):
            load_config(bad)
    with pytest.raises(ConfigError):
        load_config(tmp_path / "missing.toml")


def test_serve_cli_runs_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "appusers.server", "--port", "0", "--data", str(tmp_path / "data")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "appusers server: http://127.0.0.1:" in line and "app id: appusers-local" in line
        url = line.split()[2]
        with urllib.request.urlopen(f"{url}/api/client/v2.0/app/appusers-local/location", timeout=10) as resp:
            assert json.load(resp)["hostname"] == url
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert (tmp_path / "data" / "users.sqlite3").exists()


def test_serve_shortens_the_gil_switch_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The store's worker computes in pure Python; the event loop must not wait 5 ms for the GIL.
    from appusers.server import _cli

    asked: list[float] = []
    monkeypatch.setattr(sys, "setswitchinterval", asked.append)
    monkeypatch.setattr(sys, "getswitchinterval", lambda: 0.005)
    bad = tmp_path / "bad.toml"
    bad.write_text("app_id = 5")
    assert _cli.serve_main(["--config", str(bad), "--data", str(tmp_path / "d")]) == 2
    assert asked == [_cli.SWITCH_INTERVAL] and _cli.SWITCH_INTERVAL <= 0.001
