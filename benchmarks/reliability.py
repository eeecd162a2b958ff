"""Regenerate docs/reliability.md from measured attacks on the local server.

Every ``benchmarks/attacks_*.py`` module defines ``run() -> list[dict]`` returning rows
``{"id": "S13", "attack": str, "test": "<pytest node id>", "figure": str, "verdict": str}``
(verdict: ``met``, ``missed`` or a short word such as ``reported``). This script runs each
module in its own child process (a crash or a hang costs that module only; ``--budget``
seconds each, loopback only), prints a table, writes benchmarks/results/reliability.json and
rewrites docs/reliability.md: one table attack -> test -> figure -> verdict covering the
server items S7-S22 of the reliability targets of issues 9 and 12 (a server item no
module measured is listed as ``not measured``, never left out), then the client items R1-R13
the modules measured.

Usage: python benchmarks/reliability.py [--only attacks_auth,...] [--budget 900]
``--only`` reruns the named modules and keeps the other modules' rows from the last JSON.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "reliability.json"
DOC = ROOT / "docs" / "reliability.md"

#: The server items of the reliability targets (S7-S22), in the order the page lists them.
ITEMS: dict[str, str] = {
    "S7": "Passwords hashed with a memory-hard KDF; secrets stored hashed; hashing cannot starve the server",
    "S8": "Login throttling per account and per client address, no lock-out of the real user",
    "S9": "JWT validation: algorithm allow-list, expiry, access/refresh not interchangeable",
    "S10": "Loopback bind; 5xx bodies and logs carry no stack trace, token or secret; no-store",
    "S11": "A second user reads or writes another user's documents or custom data",
    "S12": "Private functions and provider hooks called from a client",
    "S13": "Catastrophic regexes, deep $expr, huge $in, expensive pipelines",
    "S14": "Watch streams whose readers never read; thousands of streams",
    "S15": "Oversized documents, $push growth, custom data that bloats the access token",
    "S16": "Lone surrogates, deep nesting, NUL and $ in names, overflow; fuzzing every route",
    "S17": "Password guessing for one account from one address while its owner logs in from another",
    "S18": "Probing which emails are registered",
    "S19": "Disabled or deleted API keys and users, admin log-out",
    "S20": "Slow and half-sent requests; connection floods",
    "S21": "Files in the data directory under umask 000 or an existing 0755 directory",
    "S22": "CORS from any origin",
}
#: The client items of the reliability targets (R1-R13): the SDK facing a failing network or server.
CLIENT_ITEMS: dict[str, str] = {
    "R1": "Server down / refused at each step: location, login, profile, function, API keys, refresh, logout",
    "R2": "Timeouts: black-holed connect, headers never sent, trickled body",
    "R3": "5xx with and without an error body; 429 with Retry-After; back-off and jitter",
    "R4": "Malformed, truncated or deeply nested response bodies; malformed JWTs",
    "R5": "Connection reset before or mid response; stale pooled connection",
    "R6": "Redirects: same origin, cross origin, https to http, loops",
    "R7": "401 storms: N concurrent calls with a revoked access token",
    "R8": "Client clock skewed by minutes to days",
    "R9": "Process killed mid-write of the session store; corrupt stores",
    "R10": "Several processes sharing one store",
    "R11": "Logout while offline",
    "R12": "App closed while requests are in flight",
    "R13": "Logout during an in-flight refresh",
}
FIELDS = ("id", "attack", "test", "figure", "verdict")


def modules() -> list[Path]:
    """Every attacks module, in name order."""
    return sorted(HERE.glob("attacks_*.py"))


def _child(path: Path) -> None:
    """Run one module's ``run()`` and print its rows as JSON on the last line of stdout."""
    sys.path.insert(0, str(HERE))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.run()
    print("\n" + json.dumps(rows), flush=True)


def _validate(rows: Any, name: str) -> list[dict[str, str]]:
    if not isinstance(rows, list):
        raise ValueError(f"{name}.run() returned {type(rows).__name__}, not a list")
    out = []
    for row in rows:
        if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in FIELDS):
            raise ValueError(f"{name}: row {row!r} lacks one of {FIELDS}")
        out.append({**{k: row[k] for k in FIELDS}, "module": name})
    return out


def run_module(path: Path, budget: float) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Rows of one module run in a child process, and how the run went."""
    started = time.monotonic()
    info: dict[str, Any] = {"error": None}
    try:
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", str(path)],
            capture_output=True,
            text=True,
            timeout=budget,
            cwd=ROOT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        info["error"] = f"did not finish within {budget:.0f} s"
        rows: list[dict[str, str]] = []
    else:
        rows = []
        last = proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []
        if proc.returncode != 0 or not last:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            info["error"] = f"exit {proc.returncode}: " + " | ".join(tail)
        else:
            try:
                rows = _validate(json.loads(last[0]), path.stem)
            except ValueError as exc:
                info["error"] = str(exc)
    info["seconds"] = round(time.monotonic() - started, 1)
    return rows, info


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _ordered(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    order = {key: i for i, key in enumerate([*ITEMS, *CLIENT_ITEMS])}
    return sorted(rows, key=lambda r: (order.get(r["id"], len(order)), r["module"]))


def complete(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """``rows`` plus a ``not measured`` row for every server item nobody measured. Client items
    (R...) are listed only when a module measured them: most of them are proven by tests that
    count (see docs/network.md), not by a figure this script takes."""
    seen = {r["id"] for r in rows}
    missing = [
        {"id": key, "attack": text, "test": "—", "figure": "—", "verdict": "not measured", "module": "—"}
        for key, text in ITEMS.items()
        if key not in seen
    ]
    return _ordered(rows + missing)


def render(report: dict[str, Any]) -> str:
    """docs/reliability.md."""
    rows = report["rows"]
    load = report["load_average"]
    lines = [
        "# Reliability: the server under attack",
        "",
        "This page is generated by `python benchmarks/reliability.py` from a real run (do not edit it by",
        "hand). Each row is one attack on a local server on loopback, the test that proves the behaviour",
        "(it fails if the behaviour breaks), the figure measured by the script, and whether the target of",
        "the reliability targets of issues 9 and 12 is met. Figures from bounded runs say how they were",
        "extrapolated.",
        "",
        f"Run: {report['generated']} UTC, CPython {report['python']}, {report['machine']}, "
        f"{report['cpus']} CPUs shared with other work; load average (1 min) {load['before']:.2f} before, "
        f"{load['after']:.2f} after; {report['seconds']:.0f} s in all.",
        "",
    ]
    server = [r for r in rows if r["id"] not in CLIENT_ITEMS]
    client = [r for r in rows if r["id"] in CLIENT_ITEMS]
    lines += ["## The server (S7-S22)", "", *_rows_table(server)]
    if client:
        lines += [
            "",
            "## The SDK through a failing network (R items)",
            "",
            "Real faults from the local server (fault sequences, resets, hangs, a server stopped and",
            "started again) against the SDK's default retry policy. R items not listed here are proven",
            "by tests only (see docs/network.md and docs/storage.md).",
            "",
            *_rows_table(client),
        ]
    problems = [f"- `{name}`: {info['error']}" for name, info in report["modules"].items() if info["error"]]
    if problems:
        lines += ["", "Modules that did not report:", "", *problems]
    lines += [
        "",
        "Modules run: " + ", ".join(
            f"`{name}` ({info['seconds']} s)" for name, info in report["modules"].items()
        ) + ".",
        "",
    ]
    return "\n".join(lines)


def _rows_table(rows: list[dict[str, str]]) -> list[str]:
    lines = ["| ID | Attack | Test | Figure | Verdict |", "|---|---|---|---|---|"]
    for row in rows:
        test = row["test"] if row["test"] in ("", "—") else f"`{row['test']}`"
        lines.append(
            f"| {row['id']} | {_cell(row['attack'])} | {_cell(test)} | {_cell(row['figure'])} "
            f"| {_cell(row['verdict'])} |"
        )
    return lines


def table(rows: list[dict[str, str]]) -> str:
    """A plain-text table for the terminal."""
    widths = {"id": 4, "figure": 70, "verdict": 12}
    out = []
    for row in rows:
        out.append(
            f"{row['id']:<{widths['id']}} {row['verdict']:<{widths['verdict']}} "
            f"{row['figure'][:200]}"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated module names to rerun")
    parser.add_argument("--budget", type=float, default=900.0, help="seconds per module")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        _child(args.child)
        return 0
    only = {name.strip().removesuffix(".py") for name in args.only.split(",") if name.strip()}
    previous: dict[str, Any] = {}
    if only and RESULTS.exists():
        previous = json.loads(RESULTS.read_text())
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    rows: list[dict[str, str]] = []
    infos: dict[str, Any] = {}
    for path in modules():
        if only and path.stem not in only:
            rows += [r for r in previous.get("rows", []) if r.get("module") == path.stem]
            if path.stem in previous.get("modules", {}):
                infos[path.stem] = previous["modules"][path.stem]
            continue
        print(f"running {path.stem} ...", flush=True)
        module_rows, info = run_module(path, args.budget)
        rows += module_rows
        infos[path.stem] = info
        if info["error"]:
            print(f"  {path.stem}: {info['error']}", file=sys.stderr)
    report = {
        "generated": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": {"before": load_before, "after": os.getloadavg()[0]},
        "seconds": time.monotonic() - started,
        "modules": infos,
        "rows": complete(rows),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    DOC.write_text(render(report))
    print(table(report["rows"]))
    print(f"wrote {RESULTS.relative_to(ROOT)} and {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
