"""What the documentation cites exists, in this repository, and its commands install what they use.

* No file of the repository cites a document that lives outside it (the team's working notes
  and specs are not shipped: a reader of a clone cannot open them).
* Every test a page names as proof (``tests/<path>.py::test_name``) exists, and every
  repository path a page shows in backticks is there.
* The README's docs build command installs the extras the build imports.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

from ._pages import DOCS, ROOT

#: Folders that are not the project's own text (dependencies, build output, caches).
SKIPPED_DIRS = frozenset({
    ".git", ".venv", ".venv-lowest", "venv", "node_modules", "_build", "build", "dist",
    "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis", "results",
})
TEXT_SUFFIXES = frozenset({".md", ".rst", ".py", ".toml", ".txt", ".sh", ".js", ".mjs", ".json", ".cfg"})
# Built from pieces so that this file does not match itself.
OUTSIDE = re.compile("|".join([
    r"\bshared/(?:spec|reliability|STYLE)", "/" + "work/", r"\b(?:protocol|behavior|backend)\.md\b",
    r"\bSTYLE" + r"\.md\b",
]))
#: Pages whose citations are checked: the docs, the READMEs.
CITING_PAGES = [*sorted(DOCS.glob("*.md")), ROOT / "README.md", ROOT / "server" / "README.md"]
TEST_CITATION = re.compile(r"\b(tests/[\w/]+\.py)::(\w+)")
REPO_PATH = re.compile(
    r"`((?:core|adapters|bindings|server|cli|tests|docs|benchmarks|examples|\.ci)/[\w./-]*)`"
)


def project_files() -> list[Path]:
    found = []
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        if any(part in SKIPPED_DIRS or part.endswith(".egg-info") for part in rel.parts[:-1]):
            continue
        if path.is_file() and path.suffix in TEXT_SUFFIXES:
            found.append(path)
    return found


def test_nothing_cites_a_file_outside_the_repository() -> None:
    files = project_files()
    assert len(files) > 100 and ROOT / "README.md" in files
    hits = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert hits == []


def test_the_outside_pattern_catches_what_it_is_for() -> None:
    spec = "protocol" + ".md"
    for text in (f"see shared/{'spec'}/{spec} §12", "(behavior" + ".md §8)", "/" + "work/venv/bin/python"):
        assert OUTSIDE.search(text), text
    assert not OUTSIDE.search("docs/reliability.md and shared by every server")


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


@pytest.mark.parametrize("page", CITING_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_cited_tests_and_paths_exist(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    missing = []
    for file, name in TEST_CITATION.findall(text):
        if not (ROOT / file).is_file():
            missing.append(f"{file} (cited as {file}::{name})")
        elif name not in defined_tests(ROOT / file):
            missing.append(f"{file}::{name}")
    for path in REPO_PATH.findall(text):
        if not (ROOT / path.split("::")[0]).exists():
            missing.append(path)
    assert missing == []


def test_the_security_page_proves_its_claims_with_tests() -> None:
    cited = TEST_CITATION.findall((DOCS / "security.md").read_text(encoding="utf-8"))
    assert len(cited) >= 25


def _extra_requirements(extra: str, table: dict[str, list[str]], seen: set[str] | None = None) -> set[str]:
    """The distribution names an extra installs, self-references (appusers[x]) followed."""
    seen = set() if seen is None else seen
    names: set[str] = set()
    for requirement in table[extra]:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement)
        assert name is not None, requirement
        if name[0] == "appusers":
            for inner in re.findall(r"\[([^\]]+)\]", requirement)[0].split(","):
                if inner.strip() not in seen:
                    seen.add(inner.strip())
                    names |= _extra_requirements(inner.strip(), table, seen)
        else:
            names.add(name[0].lower())
    return names


def test_the_readme_docs_command_installs_what_the_build_imports() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = [line.strip() for line in readme.splitlines() if "-m sphinx" in line]
    assert len(lines) == 1, lines
    command = lines[0]
    # One line a reader pastes: make the venv, install, build, in that order.
    install = re.search(r'\.venv/bin/pip install -q -e "\.\[([\w,]+)\]"', command)
    assert install is not None, command
    build = command.index(".venv/bin/python -m sphinx")
    assert command.index("python3 -m venv .venv") < install.start() < build
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    table = pyproject["project"]["optional-dependencies"]
    installed: set[str] = set()
    for extra in install[1].split(","):
        installed |= _extra_requirements(extra, table)
    # Sphinx and MyST build the pages; autodoc imports appusers.server (PyJWT, mongomock, re2)
    # and appusers.testing and the contract suites (pytest, pytest-asyncio).
    needed = {"sphinx", "myst-parser", "pyjwt", "mongomock", "google-re2", "pytest", "pytest-asyncio"}
    assert needed <= installed, needed - installed
    assert "-W" in command.split()
