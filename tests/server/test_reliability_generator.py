"""benchmarks/reliability.py: the page is generated from the recorded run, every server item is listed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("reliability", ROOT / "benchmarks" / "reliability.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_page_is_the_rendering_of_the_committed_results() -> None:
    gen = _generator()
    report = json.loads((ROOT / "benchmarks" / "results" / "reliability.json").read_text())
    assert (ROOT / "docs" / "reliability.md").read_text() == gen.render(report)
    ids = {r["id"] for r in report["rows"]}
    assert {f"S{n}" for n in range(7, 23)} <= ids


def test_unmeasured_items_are_listed_not_dropped() -> None:
    gen = _generator()
    measured = {"id": "S13", "attack": "a", "test": "t", "figure": "f", "verdict": "met", "module": "m"}
    rows = gen.complete([measured])
    assert [r["id"] for r in rows] == list(gen.ITEMS)
    assert [r["verdict"] for r in rows if r["id"] != "S13"] == ["not measured"] * (len(gen.ITEMS) - 1)


def test_a_module_that_fails_or_returns_bad_rows_is_reported(tmp_path: Path) -> None:
    gen = _generator()
    broken = tmp_path / "attacks_broken.py"
    broken.write_text("def run():\n    raise RuntimeError('boom')\n")
    rows, info = gen.run_module(broken, budget=60)
    assert rows == [] and "boom" in info["error"]
    bad = tmp_path / "attacks_bad.py"
    bad.write_text("def run():\n    return [{'id': 'S1'}]\n")
    rows, info = gen.run_module(bad, budget=60)
    assert rows == [] and "lacks" in info["error"]
    good = tmp_path / "attacks_good.py"
    good.write_text(
        "def run():\n    return [dict(id='S20', attack='a', test='t', figure='f', verdict='met')]\n"
    )
    rows, info = gen.run_module(good, budget=60)
    assert info["error"] is None and rows[0]["module"] == "attacks_good" and rows[0]["verdict"] == "met"
