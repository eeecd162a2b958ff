"""Throughput of ``appusers serve --workers 2`` against ``--workers 1`` on the same machine (issue 10).

Each run starts a real server (``python -m appusers.server``, a fresh data directory), logs in
anonymously and drives ``POST functions/call`` (``sum``) with wrk, 1 thread x 64 connections
on loopback, for ``--seconds``; the load generator runs on the same cores as the server. The
two configurations alternate run by run, so a change in the machine's load hits both.
Prints requests/s per run, the median of each, their ratio, and ``uptime`` before and after;
also the server's CPU time per request (all its processes, from /proc), which a busy shared
machine does not change: it shows whether workers cost more per request than one process.

    python benchmarks/workers.py --runs 3 --seconds 10 [--write-docs]

``--write-docs`` rewrites the workers section of docs/performance.md from this run (and
writes benchmarks/results/workers.json either way).

Needs ``wrk`` on PATH (``apt-get install -y wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import _docpage

import server

RESULTS = Path(__file__).parent / "results"

LUA = """
wrk.method = "POST"
wrk.body = '{"name":"sum","arguments":[1,2]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
"""


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of ``pids`` so far (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / tick


def _preempted(pids: list[int]) -> int:
    """Times ``pids`` were switched out while runnable so far (Linux /proc): with 2 workers
    and wrk on 2 cores each response wakes wrk, which preempts a worker; each switch costs
    the worker CPU (caches refilled), which is the extra CPU per request of 2 workers."""
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("nonvoluntary_ctxt_switches:"):
                total += int(line.split()[1])
    return total


def one_run(workers: int, seconds: int, connections: int) -> tuple[float, float, float]:
    """Requests/s, server CPU microseconds per request and its preemptions per request."""
    tmp = Path(tempfile.mkdtemp(prefix="appusers-bench-"))
    errors = (tmp / "stderr").open("w+b")
    proc = subprocess.Popen(
        [sys.executable, "-m", "appusers.server", "--workers", str(workers), "--port", "0",
         "--data", str(tmp / "data")],
        stdout=subprocess.PIPE, stderr=errors, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        if not line.startswith("appusers server:"):
            # A start that failed: say why (the server's own stderr) instead of an IndexError.
            proc.wait(timeout=30)
            errors.seek(0)
            raise SystemExit(f"workers={workers}: the server did not start (exit {proc.returncode}):\n"
                             + errors.read().decode(errors="replace")[-3000:])
        url = line.split()[2]
        pids = [int(p) for p in line.split("(pids ")[1].rstrip(")\n").split()] if "(pids " in line else []
        pids.append(proc.pid)
        app = f"{url}/api/client/v2.0/app/appusers-local"
        req = urllib.request.Request(f"{app}/auth/providers/anon-user/login", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(req) as resp:
            token = json.load(resp)["access_token"]
        script = tmp / "call.lua"
        script.write_text(LUA % token)
        return _wrk(f"{app}/functions/call", script, seconds, connections, pids)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        errors.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _wrk(
    url: str, script: Path, seconds: int, connections: int, pids: list[int]
) -> tuple[float, float, float]:
    """Requests/s, CPU microseconds per request of ``pids`` and their preemptions per request."""
    cpu_before, preempted_before = _cpu_seconds(pids), _preempted(pids)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    if "Non-2xx" in out:
        raise SystemExit(f"errors during the run:\n{out}")
    cpu = _cpu_seconds(pids) - cpu_before
    preempted = _preempted(pids) - preempted_before
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    assert match and total, out
    return float(match.group(1)), cpu / int(total.group(1)) * 1e6, preempted / int(total.group(1))


def bare_run(processes: int, seconds: int, connections: int) -> tuple[float, float, float]:
    """The machine's own ceiling: ``processes`` bare aiohttp handlers on one SO_REUSEPORT port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    procs = [
        subprocess.Popen([sys.executable, __file__, "--bare-port", str(port)], stderr=subprocess.DEVNULL)
        for _ in range(processes)
    ]
    tmp = Path(tempfile.mkdtemp(prefix="appusers-bench-"))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the bare aiohttp baseline did not start") from None
                time.sleep(0.05)
        time.sleep(0.5)  # every process listening, not only the first
        script = tmp / "call.lua"
        script.write_text(LUA % "x")
        return _wrk(f"http://127.0.0.1:{port}/functions/call", script, seconds, connections,
                    [p.pid for p in procs])  # fmt: skip
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--bare-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--write-docs", action="store_true",
                        help="rewrite the workers section of docs/performance.md (3+ runs of 10 s)")
    args = parser.parse_args()
    if args.bare_port is not None:
        server.bare_main(args.bare_port, reuse_port=True)
        return
    if args.write_docs and (args.runs < 3 or args.seconds < 10 or args.connections != 64):
        parser.error("--write-docs needs --runs 3 or more, --seconds 10 or more and 64 connections")
    when = [time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())]
    load_before: list[float] = []
    print("before:", _uptime(), flush=True)
    results: dict[int, list[float]] = {1: [], 2: []}
    cpu: dict[int, list[float]] = {1: [], 2: []}
    preempted: dict[int, list[float]] = {1: [], 2: []}
    bare: dict[int, list[float]] = {1: [], 2: []}
    for run in range(args.runs):
        load_before.append(os.getloadavg()[0])
        for workers in (1, 2):
            rps, us, switches = one_run(workers, args.seconds, args.connections)
            results[workers].append(rps)
            cpu[workers].append(us)
            preempted[workers].append(switches)
            line = (f"run {run + 1} workers={workers}: {rps:,.0f} req/s, {us:,.0f} us server CPU/request,"
                    f" {switches:.2f} preemptions/request")  # fmt: skip
            print(line, flush=True)
        # The same scaling of a bare aiohttp handler, in the same run: what this machine allows.
        for processes in (1, 2):
            rps, us, _ = bare_run(processes, args.seconds, args.connections)
            bare[processes].append(rps)
            print(f"run {run + 1} bare aiohttp x{processes}: {rps:,.0f} req/s, {us:,.0f} us CPU/request",
                  flush=True)  # fmt: skip
    print("after:", _uptime(), flush=True)
    one, two = statistics.median(results[1]), statistics.median(results[2])
    ratios = [b / a for a, b in zip(results[1], results[2], strict=True)]
    print(f"workers=1: {' '.join(f'{r:,.0f}' for r in results[1])} req/s (median {one:,.0f})")
    print(f"workers=2: {' '.join(f'{r:,.0f}' for r in results[2])} req/s (median {two:,.0f})")
    for n in (1, 2):
        print(f"workers={n} server CPU per request: {' '.join(f'{u:,.0f}' for u in cpu[n])} us;"
              f" preemptions per request: {' '.join(f'{p:.2f}' for p in preempted[n])}")  # fmt: skip
    print(f"ratio 2/1 per run: {' '.join(f'{r:.2f}' for r in ratios)}; of medians {two / one:.2f}")
    bare_ratios = [b / a for a, b in zip(bare[1], bare[2], strict=True)]
    print(f"bare aiohttp 2 processes / 1 per run: {' '.join(f'{r:.2f}' for r in bare_ratios)}")
    when.append(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    out = {"when": when, "python": platform.python_version(), "cpus": os.cpu_count(),
           "seconds": args.seconds, "connections": args.connections, "rps": results, "cpu_us": cpu,
           "preempted": preempted, "ratios": ratios, "bare_rps": bare, "bare_ratios": bare_ratios,
           "load_before": load_before, "load_after": os.getloadavg()[0]}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "workers.json").write_text(json.dumps(out, indent=1))
    if args.write_docs:
        write_docs(out)
        print(f"wrote {_docpage.DOC}")


def write_docs(out: dict[str, Any]) -> None:
    """The workers section of docs/performance.md: every figure from ``out``."""
    ratios, rps, cpu = out["ratios"], out["rps"], out["cpu_us"]
    met = sum(r >= 1.5 for r in ratios)
    verdict = (f"met in {met} of {len(ratios)} runs" if met == len(ratios) else
               f"**missed** in {len(ratios) - met} of {len(ratios)} runs, by up to {1.5 - min(ratios):.2f}")
    _docpage.write_section("workers.py", [
        "## Worker processes (issue 10)",
        "",
        f"`python benchmarks/workers.py --runs {len(ratios)} --seconds {out['seconds']} --write-docs` wrote "
        f"this section ({out['when'][0]} \u2013 {out['when'][-1]}, CPython {out['python']}, "
        f"{out['cpus']} CPUs). "
        f"`appusers serve --workers 2` against `--workers 1`, the configurations alternating run by run, "
        f"each driving `POST functions/call` (`sum`) with wrk, 1 thread \u00d7 {out['connections']} "
        "connections "
        f"on loopback for {out['seconds']} s; wrk runs on the same cores as the server. Load average (1 min) "
        f"at the start of the runs: {_docpage.loads(out['load_before'])}.",
        "",
        "| Figure | Spread of the runs | Verdict |",
        "|---|---|---|",
        f"| 2 workers / 1 worker, throughput (per run) | **{_docpage.spread(ratios)}** | ≥ 1.5: {verdict} |",
        f"| 1 worker, req/s | {_docpage.spread(rps[1], '{:,.0f}')} | — |",
        f"| 2 workers, req/s | {_docpage.spread(rps[2], '{:,.0f}')} | — |",
        f"| the same-run baseline: 2 bare aiohttp processes / 1 on one `SO_REUSEPORT` port (what this "
        f"machine allows, wrk included) | {_docpage.spread(out['bare_ratios'])} | — |",
        f"| server CPU µs per request, 1 / 2 workers | "
        f"{_docpage.spread(cpu[1], '{:,.0f}')} / "
        f"{_docpage.spread(cpu[2], '{:,.0f}')} | — |",
        f"| server preemptions per request (involuntary context switches: wrk waking on a busy core), "
        f"1 / 2 workers | {_docpage.spread(out['preempted'][1], '{:.2f}')} / "
        f"{_docpage.spread(out['preempted'][2], '{:.2f}')} | — |",
    ])


if __name__ == "__main__":
    main()
