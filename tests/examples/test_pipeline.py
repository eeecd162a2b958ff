"""examples/pipeline.py runs by itself against the local server and reacts to each log-out cause."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from appusers import LogoutCause

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pipeline.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("appusers_example_pipeline", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # attrs resolves the module of its classes
    spec.loader.exec_module(module)
    return module


def test_runs_as_a_script_and_finishes_by_itself() -> None:
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "local server at http://127.0.0.1:" in out
    assert "logged out (REFRESH_TOKEN_REJECTED): the session expired" in out
    assert "logged out (USER_REQUEST): signed out" in out
    assert out.count("background work stopped") == 2
    assert "done: log-outs ['REFRESH_TOKEN_REJECTED', 'USER_REQUEST']" in out
    assert "Traceback" not in done.stderr


async def test_pipeline_against_a_given_server(server: Any) -> None:
    pipeline = load_example()
    lines: list[str] = []
    report = await pipeline.run(server.url, say=lines.append)
    # Against a URL it uses an anonymous user and ends the first session by a plain log-out.
    assert report.logouts == [LogoutCause.USER_REQUEST, LogoutCause.USER_REQUEST]
    assert report.cache_cleared == 2
    assert report.work_stopped == 2
    assert report.custom_data == [{"plan": "pro", "theme": "dark"}]
    assert report.token_refreshes >= 2
    assert report.work_done >= 5
    assert any(line.startswith("done:") for line in lines)
