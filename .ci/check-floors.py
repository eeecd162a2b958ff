"""Check that the running environment holds every direct dependency at its declared floor.

Run by .ci/test with the lowest-versions venv's Python after ``uv pip install --resolution
lowest-direct``: a floor that uv could not install as written (a version that does not exist, a
floor that another floor forces up) would otherwise go untested while pyproject.toml still
promises it. Usage: ``python .ci/check-floors.py EXTRA...`` (the extras that were installed).
"""

from __future__ import annotations

import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def direct_requirements(project: dict[str, object], extras: list[str]) -> list[Requirement]:
    """[project] dependencies plus the named extras, following ``appusers[...]`` self-references."""
    name = str(project["name"])
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})  # type: ignore[assignment]
    pending = list(project["dependencies"])  # type: ignore[call-overload]
    for extra in extras:
        pending += optional[extra]
    seen: set[str] = set()
    found: list[Requirement] = []
    while pending:
        requirement = Requirement(pending.pop(0))
        if requirement.name == name:
            for extra in sorted(requirement.extras - seen):
                seen.add(extra)
                pending += optional[extra]
            continue
        found.append(requirement)
    return found


def main(extras: list[str]) -> int:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    failures = 0
    for requirement in direct_requirements(project, extras):
        floors = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
        try:
            installed = Version(version(requirement.name))
        except PackageNotFoundError:
            installed = None
        ok = len(floors) == 1 and installed == floors[0]
        failures += not ok
        floor = str(floors[0]) if len(floors) == 1 else "no single >= floor"
        print(f"{'ok ' if ok else 'BAD'} {requirement.name:<20} floor {floor:<12} installed {installed}")
    if failures:
        print(f"{failures} direct dependencies are not installed at their declared floor", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
