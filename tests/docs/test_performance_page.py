"""docs/performance.md: three benchmark scripts each own a marked section, none drops another's."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _docpage() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_docpage", ROOT / "benchmarks" / "_docpage.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PAGE = "# Performance\n\n## Targets\n\n| a |\n\n## How the figures are reached\n\n* why\n"


def test_a_section_is_added_before_the_closing_part_then_replaced_in_place(tmp_path: Path) -> None:
    page = _docpage()
    path = tmp_path / "performance.md"
    path.write_text(PAGE)
    page.write_section("server.py", ["## Server", "", "| old |"], path)
    page.write_section("workers.py", ["## Workers"], path)
    page.write_section("server.py", ["## Server", "", "| new |"], path)
    text = path.read_text()
    assert "| old |" not in text and text.count("| new |") == 1
    assert text.index("## Targets") < text.index("## Server") < text.index("## Workers")
    assert text.index("## Workers") < text.index("## How the figures are reached")
    assert list(page.sections(text)) == ["server.py", "workers.py"]


def test_a_page_rewrite_keeps_the_other_owners_sections(tmp_path: Path) -> None:
    page = _docpage()
    path = tmp_path / "performance.md"
    path.write_text(PAGE)
    page.write_section("server.py", ["## Server", "| s |"], path)
    page.write_section("run.py", ["## Mine"], path)
    kept = page.kept_sections(path, owner="run.py")
    assert "| s |" in kept and "## Mine" not in kept
    assert kept[0] == "<!-- begin server.py -->" and "<!-- end server.py -->" in kept


def test_text_that_only_looks_like_a_marker_is_not_a_section() -> None:
    page = _docpage()
    text = (
        "<!-- begin server.py -->\nno end\n<!-- end workers.py -->\n"
        "<!-- begin a b -->\nx\n<!-- end a b -->\n"
    )
    assert page.sections(text) == {}


def test_a_missing_page_is_created(tmp_path: Path) -> None:
    page = _docpage()
    path = tmp_path / "performance.md"
    assert page.kept_sections(path, owner="run.py") == []
    page.write_section("workers.py", ["## Workers"], path)
    assert path.read_text().startswith("# Performance\n")
    assert page.sections(path.read_text())["workers.py"].endswith("<!-- end workers.py -->\n")



def test_the_page_carries_the_server_and_workers_figures() -> None:
    owners = _docpage().sections((ROOT / "docs" / "performance.md").read_text())
    assert {"server.py", "workers.py"} <= set(owners)
    assert "benchmarks/server.py --runs" in owners["server.py"]
    assert "benchmarks/workers.py --runs" in owners["workers.py"]
