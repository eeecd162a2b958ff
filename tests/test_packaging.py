"""Packaging: the package list, the dependency floors, the wheel's metadata and a plain install.

The explicit package list in pyproject.toml must name every package of the source tree.

setuptools is given the packages by name (the top-level folders are mapped onto ``appusers``),
so a new sub-package that is not listed works in an editable install and is silently missing
from a wheel. This test catches that.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

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


# -- what a wheel carries and what a plain install does -------------------------------------


def test_the_wheel_carries_the_license_classifiers_urls_and_type_marker(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
        (license_name,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        shipped_license = archive.read(license_name).decode()
    assert shipped_license == (ROOT / "LICENSE").read_text()
    assert "Apache License" in shipped_license and "Version 2.0, January 2004" in shipped_license
    fields = [line.split(": ", 1) for line in metadata.splitlines() if ": " in line and not line[0].isspace()]
    values: dict[str, list[str]] = {}
    for key, value in fields:
        values.setdefault(key, []).append(value)
    assert values["License-Expression"] == ["Apache-2.0"]
    assert values["License-File"] == ["LICENSE"]
    classifiers = set(values["Classifier"])
    assert {"Typing :: Typed", "Framework :: Pytest", "Programming Language :: Python :: 3.11"} <= classifiers
    # PEP 639: a License-Expression excludes the legacy license classifiers.
    assert not any(c.startswith("License ::") for c in classifiers)
    urls = dict(url.split(", ", 1) for url in values["Project-URL"])
    assert {"Homepage", "Documentation", "Source", "Issues"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())
    # PEP 561: the marker types every sub-package (bindings, cli, server) of the installed package.
    assert "appusers/py.typed" in names


def test_python_classifiers_match_requires_python() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    versions = {c.rsplit(" :: ", 1)[1] for c in project["classifiers"]
                if c.startswith("Programming Language :: Python :: 3.")}
    floor = project["requires-python"].removeprefix(">=")
    assert versions and min(versions, key=lambda v: tuple(map(int, v.split(".")))) == floor


def test_a_plain_install_names_the_server_extra_instead_of_a_traceback(wheel: Path, tmp_path: Path) -> None:
    # A real venv with the wheel and its own dependencies only (no extra), as `pip install appusers`.
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    if not Path(uv).exists():
        if os.environ.get("CI") == "true":
            pytest.fail("uv is missing in CI: the dev extra installs it")
        pytest.skip("uv is not installed (pip install uv)")
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=120)
    subprocess.run([uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), str(wheel)],
                   check=True, timeout=600)
    check = subprocess.run([str(venv / "bin" / "python"), "-c", "import jwt"], capture_output=True)
    assert check.returncode != 0  # the server extra's PyJWT is really absent
    env = {**os.environ, "HOME": str(tmp_path / "home"), "APPUSERS_HOME": str(tmp_path / "session")}
    for args in (["serve", "--port", "0", "--data", str(tmp_path / "data")], ["demo"]):
        run = subprocess.run([str(venv / "bin" / "appusers"), *args], capture_output=True, text=True,
                             timeout=120, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL)
        assert run.returncode == 8, run
        assert 'pip install "appusers[server]"' in run.stderr
        assert "Traceback" not in run.stderr + run.stdout
    assert not (tmp_path / "data").exists()
    # The client commands need no extra.
    run = subprocess.run([str(venv / "bin" / "appusers"), "--help"], capture_output=True, text=True,
                         timeout=60, env=env, cwd=tmp_path)
    assert run.returncode == 0 and "serve" in run.stdout


def test_the_readme_lists_every_package_the_test_command_installs_with_apt() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("What `bash .ci/test` installs"):readme.index("## ")]
    gui = (ROOT / ".ci" / "install-gui.sh").read_text()
    packages = set()
    for block in re.findall(r"want\+=\(([^)]*)\)", gui):
        packages.update(word for line in block.splitlines() for word in line.split("#")[0].split())
    assert "postgresql" in (ROOT / ".ci" / "install-postgres.sh").read_text()
    packages.add("postgresql")
    missing = sorted(p for p in packages if f"`{p}`" not in section)
    assert missing == [], f"README does not list these apt packages: {missing}"
