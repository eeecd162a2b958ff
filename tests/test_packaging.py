"""Packaging: the package list and the dependency floors in pyproject.toml.

The explicit package list in pyproject.toml must name every package of the source tree.

setuptools is given the packages by name (the top-level folders are mapped onto ``appusers``),
so a new sub-package that is not listed works in an editable install and is silently missing
from a wheel. This test catches that.
"""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed_in_pyproject() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    mapping: dict[str, str] = setuptools["package-dir"]
    found = set()
    for package, folder in mapping.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            if any(part.startswith(".") or part in ("__pycache__", "node_modules") for part in init.parts):
                continue
            rel = init.parent.relative_to(base).parts
            found.add(".".join((package, *rel)))
    # Sub-packages of a mapped package that is itself mapped (appusers.adapters under appusers) count once.
    assert found - listed == set(), f"packages missing from pyproject.toml: {sorted(found - listed)}"
    assert listed - found == set(), f"listed packages that do not exist: {sorted(listed - found)}"


def test_every_direct_dependency_the_lowest_job_installs_has_one_floor() -> None:
    # .ci/test's lowest-versions job installs these with uv's lowest-direct resolution: a requirement
    # without a ">=" floor would install the oldest release ever published, so each must name one.
    spec = importlib.util.spec_from_file_location("check_floors", ROOT / ".ci" / "check-floors.py")
    assert spec is not None and spec.loader is not None
    check_floors = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check_floors)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = check_floors.direct_requirements(project, ["server", "test"])
    names = {r.name.lower() for r in requirements}
    # The self-reference appusers[secure] in the test extra is followed, not listed.
    assert {"aiohttp", "pyjwt", "cryptography", "keyring", "pytest-asyncio"} <= names
    assert "appusers" not in names
    without = [str(r) for r in requirements if [s.operator for s in r.specifier].count(">=") != 1]
    assert without == []
