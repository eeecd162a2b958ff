"""The explicit package list in pyproject.toml must name every package of the source tree.

setuptools is given the packages by name (the top-level folders are mapped onto ``appusers``),
so a new sub-package that is not listed works in an editable install and is silently missing
from a wheel. This test catches that.
"""

from __future__ import annotations

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
