"""The verdicts benchmarks/server.py and workers.py write: every run counts, a miss says by how much.

The scripts measure on a shared machine; what is tested here is the arithmetic between their
measurements and the page (which runs are paired, how a verdict is counted), with the load
generator replaced by recorded answers.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def scripts(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModuleType, ModuleType, list[list[str]]]]:
    """benchmarks/server.py and workers.py, their page writes captured instead of written."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    for name in ("_docpage", "server", "workers"):
        sys.modules.pop(name, None)
    import _docpage  # type: ignore[import-not-found]
    import workers  # type: ignore[import-not-found]

    import server  # type: ignore[import-not-found]

    written: list[list[str]] = []
    monkeypatch.setattr(_docpage, "write_section", lambda name, body, path=None: written.append(body))
    yield server, workers, written
    for name in ("_docpage", "server", "workers"):
        sys.modules.pop(name, None)


def _workers_out(isolated: list[float], default: list[float]) -> dict[str, Any]:
    def figures(ratios: list[float]) -> dict[str, list[float]]:
        runs = len(ratios)
        return {
            "ratio": ratios, "bare_ratio": [1.5] * runs,
            **{f"{k}{n}": [100.0] * runs
               for k in ("rps", "cpu_us", "preempted") for n in ("1", "2", "bare1", "bare2")},
        }  # fmt: skip

    return {
        "when": ["t0", "t1"], "python": "3.11", "cpus": 2, "seconds": 10, "slice_s": 2, "connections": 64,
        "figures": {"isolated": figures(isolated), "default": figures(default)},
        "load_before": [0.5, 1.0, 1.5],
    }  # fmt: skip


def test_workers_verdict_counts_every_run_under_each_scheduling(scripts: Any) -> None:
    _, workers, written = scripts
    workers.write_docs(_workers_out([1.62, 1.7, 1.81], [1.42, 1.6, 1.55]))
    (body,) = written
    verdict = next(line for line in body if line.startswith("| ≥ 1.5 |"))
    assert verdict == "| ≥ 1.5 | met in 3 of 3 runs | **missed** in 1 of 3 runs, by up to 0.08 |"
    assert "| **2 workers / 1 worker, throughput** | 1.62 \u2013 1.81 | 1.42 \u2013 1.60 |" in body


def test_workers_a_run_exactly_at_the_target_meets_it(scripts: Any) -> None:
    _, workers, written = scripts
    workers.write_docs(_workers_out([1.5, 1.5, 1.5], [1.49, 1.5, 1.5]))
    verdict = next(line for line in written[0] if line.startswith("| ≥ 1.5 |"))
    assert verdict == "| ≥ 1.5 | met in 3 of 3 runs | **missed** in 1 of 3 runs, by up to 0.01 |"


def test_server_pairs_alternate_one_second_slices_and_sum_them(
    scripts: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _, _ = scripts
    order: list[str] = []
    answers = {"one": [(1000, 100.0), (1200, 100.0), (800, 100.0), (1000, 100.0)],
               "many": [(900, 90.0), (900, 90.0), (1100, 110.0), (700, 70.0)]}  # fmt: skip

    def fake_load(
        generator: str, base: str, *rest: Any, cpu_pid: int, connections: int | None
    ) -> dict[str, Any]:
        assert rest[-1].duration == 1  # one-second slices
        order.append(base)
        requests, cpu_ms = answers[base].pop(0)
        return {"requests": requests + 5, "failures": 5, "seconds": 1.0, "cpu_s": cpu_ms / 1000}

    monkeypatch.setattr(server, "_run_load", fake_load)
    awake: list[int] = []
    monkeypatch.setattr(server, "_awake", lambda pid: contextlib.nullcontext(awake.append(pid)))
    targets = [(1, "one", ("POST", "/p", "{}", []), 1), (100, "many", ("POST", "/p", "{}", []), 2)]
    paired = server._paired("wrk", targets, argparse.Namespace(duration=4), None)
    assert order == ["one", "many", "many", "one", "one", "many", "many", "one"]
    assert awake == [1, 2, 2, 1, 1, 2, 2, 1]  # each server runs only for its own slices
    assert paired[1]["rps"] == 1000.0  # 4,000 answered (failures not counted) in 4 s
    assert paired[1]["failures"] == 20
    assert paired[100]["rps"] == 900.0
    assert paired[1]["cpu_us_per_ok"] == pytest.approx(100.0)
    assert paired[100]["cpu_us_per_ok"] == pytest.approx(100.0)


def _server_results(server: ModuleType, pairs: list[float]) -> dict[str, Any]:
    rows = []
    for run, pair in enumerate(pairs):
        for users in (1, 100_000):
            answer = {"rps": 600.0, "p50_ms": 10.0, "p99_ms": 15.0, "failures": 0, "cpu_us_per_ok": 150.0}
            rows.append({
                "users": users, "workload": "call", "run": run, "load_before": [0.5], "load_after": [0.5],
                "bare": {**answer, "rps": 1000.0, "cpu_us_per_ok": 100.0}, "appusers": answer,
                "ratio": 0.6, "cpu_ratio": 0.66, "cpu_vs_1_user": 1.0,
                "vs_1_user": 1.0 if users == 1 else pair,
            })  # fmt: skip
    results = {"when": ["t0", "t1"], "python": "3.11", "cpus": 2, "generator": "wrk", "connections": 64,
               "duration_s": 5, "warmup_s": 2, "runs": len(pairs), "users": 100_000, "active": 1000,
               "kdf_ms": 120.0, "rows": rows}  # fmt: skip
    results["summary"] = server.summarize(results)
    return results


def test_server_vs_1_user_is_judged_run_by_run(scripts: Any) -> None:
    server, _, written = scripts
    server.write_docs(_server_results(server, [0.95, 0.86, 0.97]))
    many = next(line for line in written[0] if line.startswith("| function call (`sum`) | 100,000 |"))
    assert "vs 1 user in the same run 0.86 \u2013 0.97 (≥ 0.9: **missed** in 1 of 3, by up to 0.04)" in many
    one = next(line for line in written[0] if line.startswith("| function call (`sum`) | 1 |"))
    assert "vs 1 user" not in one
    written.clear()
    server.write_docs(_server_results(server, [0.95, 0.9, 0.97]))
    many = next(line for line in written[0] if line.startswith("| function call (`sum`) | 100,000 |"))
    assert "vs 1 user in the same run 0.90 \u2013 0.97 (≥ 0.9: met in 3 of 3)" in many
