"""Every example the documentation shows runs, and holds, against a real local server.

Each ``docs/examples/<topic>_<n>.py`` defines ``async def main(...)``; its parameters are
filled by name from what a reader running ``appusers serve`` would have:

* ``base_url``, ``app_id``: where the server listens and its app id;
* ``outbox``: the server's ``<data>/outbox.jsonl`` (confirmation and reset emails);
* ``workdir``: an empty directory the example may write to.

The example states its claims with ``assert``. A file that also defines ``Test*`` classes
(a storage or transport proving itself with a contract suite) is run by pytest as well.
"""

from __future__ import annotations

import importlib.util
import inspect
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from appusers.server import LocalServer

from ._pages import EXAMPLES, ROOT, examples

PARAMETERS = {"base_url", "app_id", "outbox", "workdir"}


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_example_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", examples(), ids=lambda p: p.stem)
async def test_example_runs_against_the_local_server(path: Path, server: LocalServer, tmp_path: Path) -> None:
    module = load(path)
    main = getattr(module, "main", None)
    assert inspect.iscoroutinefunction(main), f"{path.name} must define `async def main(...)`"
    wanted = set(inspect.signature(main).parameters)
    assert wanted <= PARAMETERS, f"{path.name}: main() asks for {sorted(wanted - PARAMETERS)}"
    workdir = tmp_path / "work"
    workdir.mkdir()
    available: dict[str, Any] = {
        "base_url": server.url,
        "app_id": server.app_id,
        "outbox": server.data_dir / "outbox.jsonl",
        "workdir": workdir,
    }
    await main(**{name: available[name] for name in wanted})


@pytest.mark.parametrize(
    "path", [p for p in examples() if "\nclass Test" in p.read_text(encoding="utf-8")], ids=lambda p: p.stem
)
def test_example_contract_suites_pass(path: Path, tmp_path: Path) -> None:
    # A separate process: the suite's own fixtures and event loops, as in the reader's project.
    result = subprocess.run(  # fixed argv, our own interpreter
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT),
         "-c", str(ROOT / "pyproject.toml"), str(path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


def test_there_are_examples() -> None:
    assert len(examples()) >= 20, f"examples went missing from {EXAMPLES}"
