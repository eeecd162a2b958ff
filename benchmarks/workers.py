"""Throughput of ``appusers serve --workers 2`` against ``--workers 1`` on the same machine (issue 10).

Each run starts two real servers (``python -m appusers.server``, a fresh data directory each),
one with ``--workers 1`` and one with ``--workers 2``, logs in anonymously on each and drives
``POST functions/call`` (``sum``) with wrk, 1 thread x 64 connections on loopback; the load
generator runs on the same cores as the server. Each vCPU's speed varies by 15-25 % from one
second to the next, independently of the other (see benchmarks/server.py), so the two
configurations are not measured one after the other: each run cuts
``--seconds`` per configuration into ``--slice``-second slices and alternates them
(1, 2, 2, 1, 1, 2, ...), and the ratio is the requests of all slices of 2 workers over those of
1 worker. While one server is under load, the other is paused (SIGSTOP): an idle server's
timers cost nothing to the one measured. A 1 s unmeasured slice of each starts every run.

Every slice runs twice, with wrk scheduled two ways (see ``MODES``): "isolated", pinned to the
last CPU under SCHED_BATCH, so that it never preempts a server process mid-request (the
server's own scaling, as with remote clients); and "default", an ordinary process, whose
wake-ups on a busy core preempt a worker about 0.7 times per request (what this machine gives
with the load generator competing for the cores).

The same is done, in the same run and interleaved with the same slices, with 1 and 2 bare aiohttp
processes on one ``SO_REUSEPORT`` port: how far this machine lets any Python server scale with
the load generator on its cores. Prints requests/s per run, their ratio, and ``uptime`` before
and after; also the server's CPU time per request (all its processes, from /proc) and how often
its processes were preempted per request.

    python benchmarks/workers.py --runs 3 --seconds 10 [--slice 2] [--write-docs]

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
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
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


#: How wrk is scheduled, both measured in every run. "isolated": pinned to the last CPU and
#: under SCHED_BATCH, so that it runs when a server process on that CPU waits and never
#: preempts one mid-request, as a client on another machine would not: what the server's own
#: scaling is. "default": the kernel's default, where each response that wakes wrk on a busy
#: core preempts a worker (about 0.7 times per request with 2 workers), which costs the worker
#: CPU: what this machine gives with the load generator competing as an ordinary process.
MODES = ("isolated", "default")


def _schedule(mode: str) -> None:
    """Runs in the wrk child before exec (see MODES)."""
    if mode == "isolated":
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


class Totals:
    """What one server answered, summed over the slices of a run."""

    def __init__(self) -> None:
        self.requests = 0
        self.seconds = 0.0
        self.cpu = 0.0
        self.preempted = 0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.requests * 1e6

    @property
    def preempted_per_request(self) -> float:
        return self.preempted / self.requests


class Target:
    """A running server (its processes) and the URL and wrk script that load it."""

    def __init__(self, pids: list[int], url: str, script: Path) -> None:
        self.pids, self.url, self.script = pids, url, script

    def load(self, seconds: int, connections: int, mode: str, into: Totals | None) -> None:
        """Drive this target with wrk for ``seconds``; add what it answered to ``into``."""
        with server.awake(*self.pids):
            cpu_before, preempted_before = _cpu_seconds(self.pids), _preempted(self.pids)
            out = subprocess.run(
                ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(self.script), self.url],
                capture_output=True, text=True, check=True, preexec_fn=lambda: _schedule(mode),
            ).stdout  # fmt: skip
            cpu = _cpu_seconds(self.pids) - cpu_before
            preempted = _preempted(self.pids) - preempted_before
        if "Non-2xx" in out or "Socket errors" in out:
            raise SystemExit(f"errors during the run:\n{out}")
        total = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
        assert total, out
        if into is not None:
            into.requests += int(total.group(1))
            into.seconds += float(total.group(2)) / (1000 if total.group(3) == "ms" else 1)
            into.cpu += cpu
            into.preempted += preempted


def start_appusers(workers: int, tmp: Path, stack: ExitStack) -> Target:
    """``appusers serve --workers N`` on a fresh data directory, one anonymous user logged in."""
    errors = stack.enter_context((tmp / f"stderr-{workers}").open("w+b"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "appusers.server", "--workers", str(workers), "--port", "0",
         "--data", str(tmp / f"data-{workers}")],
        stdout=subprocess.PIPE, stderr=errors, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    stack.callback(_stop, proc)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line.startswith("appusers server:"):
        # A start that failed: say why (the server's own stderr) instead of an IndexError.
        proc.wait(timeout=30)
        errors.seek(0)
        raise SystemExit(f"workers={workers}: the server did not start (exit {proc.returncode}):\n"
                         + errors.read().decode(errors="replace")[-3000:])  # fmt: skip
    url = line.split()[2]
    pids = [int(p) for p in line.split("(pids ")[1].rstrip(")\n").split()] if "(pids " in line else []
    pids.append(proc.pid)
    app = f"{url}/api/client/v2.0/app/appusers-local"
    req = urllib.request.Request(f"{app}/auth/providers/anon-user/login", data=b"{}", method="POST",
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req) as resp:
        token = json.load(resp)["access_token"]
    script = tmp / f"call-{workers}.lua"
    script.write_text(LUA % token)
    return Target(pids, f"{app}/functions/call", script)


def start_bare(processes: int, tmp: Path, stack: ExitStack) -> Target:
    """The machine's own ceiling: ``processes`` bare aiohttp handlers on one SO_REUSEPORT port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    procs = [
        subprocess.Popen([sys.executable, __file__, "--bare-port", str(port)], stderr=subprocess.DEVNULL)
        for _ in range(processes)
    ]
    for p in procs:
        stack.callback(_stop, p)
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
    script = tmp / f"bare-{processes}.lua"
    script.write_text(LUA % "x")
    return Target([p.pid for p in procs], f"http://127.0.0.1:{port}/functions/call", script)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGCONT)  # a paused process cannot act on SIGTERM
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


NAMES = ("1", "2", "bare1", "bare2")


def one_run(seconds: int, slice_s: int, connections: int) -> dict[tuple[str, str], Totals]:
    """One run: the four servers, their slices interleaved under each of MODES; the totals."""
    tmp = Path(tempfile.mkdtemp(prefix="appusers-bench-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, True)
        targets = {
            "1": start_appusers(1, tmp, stack), "2": start_appusers(2, tmp, stack),
            "bare1": start_bare(1, tmp, stack), "bare2": start_bare(2, tmp, stack),
        }  # fmt: skip
        server.pause(*(pid for t in targets.values() for pid in t.pids))
        for t in targets.values():
            t.load(1, connections, "default", None)
        totals = {(mode, name): Totals() for mode in MODES for name in NAMES}
        for i in range(max(1, seconds // slice_s)):
            # 1, 2, 2, 1, 1, 2, ...: a steady drift of the machine's speed hits both alike.
            order = ("1", "2", "bare1", "bare2") if i % 2 == 0 else ("2", "1", "bare2", "bare1")
            for mode in MODES:
                for name in order:
                    targets[name].load(slice_s, connections, mode, totals[mode, name])
        return totals


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10, help="of load per configuration and run")
    parser.add_argument("--slice", type=int, default=2, help="seconds of one slice (whole seconds)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--bare-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--write-docs", action="store_true",
                        help="rewrite the workers section of docs/performance.md")  # fmt: skip
    args = parser.parse_args()
    if args.bare_port is not None:
        server.bare_main(args.bare_port, reuse_port=True)
        return
    if args.write_docs and (args.runs < 3 or args.seconds < 10 or args.connections != 64):
        parser.error("--write-docs needs --runs 3 or more, --seconds 10 or more and 64 connections")
    when = [time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())]
    load_before: list[float] = []
    print("before:", _uptime(), flush=True)
    figures: dict[str, dict[str, list[float]]] = {mode: {} for mode in MODES}  # one value per run
    for run in range(args.runs):
        load_before.append(os.getloadavg()[0])
        totals = one_run(args.seconds, args.slice, args.connections)
        for mode, got in figures.items():
            for name in NAMES:
                t = totals[mode, name]
                got.setdefault(f"rps{name}", []).append(t.rps)
                got.setdefault(f"cpu_us{name}", []).append(t.cpu_us)
                got.setdefault(f"preempted{name}", []).append(t.preempted_per_request)
            got.setdefault("ratio", []).append(got["rps2"][-1] / got["rps1"][-1])
            got.setdefault("bare_ratio", []).append(got["rpsbare2"][-1] / got["rpsbare1"][-1])
            print(
                f"run {run + 1} wrk {mode:>8}: 1 worker {got['rps1'][-1]:,.0f} req/s"
                f" ({got['cpu_us1'][-1]:,.0f} us CPU/req, {got['preempted1'][-1]:.2f} preempted/req);"
                f" 2 workers {got['rps2'][-1]:,.0f}"
                f" ({got['cpu_us2'][-1]:,.0f} us, {got['preempted2'][-1]:.2f}); ratio {got['ratio'][-1]:.2f};"
                f" bare x1 {got['rpsbare1'][-1]:,.0f}, x2 {got['rpsbare2'][-1]:,.0f},"
                f" ratio {got['bare_ratio'][-1]:.2f}",
                flush=True,
            )
    print("after:", _uptime(), flush=True)
    for mode, got in figures.items():
        print(f"wrk {mode}: ratio 2/1 per run: {' '.join(f'{r:.2f}' for r in got['ratio'])};"
              f" bare aiohttp 2/1: {' '.join(f'{r:.2f}' for r in got['bare_ratio'])}")  # fmt: skip
    when.append(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    out = {"when": when, "python": platform.python_version(), "cpus": os.cpu_count(),
           "seconds": args.seconds, "slice_s": args.slice, "connections": args.connections,
           "figures": figures, "load_before": load_before, "load_after": os.getloadavg()[0]}  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "workers.json").write_text(json.dumps(out, indent=1))
    if args.write_docs:
        write_docs(out)
        print(f"wrote {_docpage.DOC}")


def _verdict(ratios: list[float]) -> str:
    missed = sum(r < 1.5 for r in ratios)
    if not missed:
        return f"met in {len(ratios)} of {len(ratios)} runs"
    return f"**missed** in {missed} of {len(ratios)} runs, by up to {1.5 - min(ratios):.2f}"


def write_docs(out: dict[str, Any]) -> None:
    """The workers section of docs/performance.md: every figure from ``out``."""
    iso, dflt = out["figures"]["isolated"], out["figures"]["default"]

    def row(label: str, key: str, fmt: str = "{:,.0f}") -> str:
        return f"| {label} | {_docpage.spread(iso[key], fmt)} | {_docpage.spread(dflt[key], fmt)} |"

    _docpage.write_section("workers.py", [
        "## Worker processes (issue 10)",
        "",
        f"`python benchmarks/workers.py --runs {len(iso['ratio'])} --seconds {out['seconds']} --write-docs` "
        f"wrote this section ({out['when'][0]} \u2013 {out['when'][-1]}, CPython {out['python']}, "
        f"{out['cpus']} CPUs; load average (1 min) at the start of the runs: "
        f"{_docpage.loads(out['load_before'])}). "
        "`appusers serve --workers 2` against `--workers 1`, both driven with `POST functions/call` "
        f"(`sum`) by wrk, 1 thread \u00d7 {out['connections']} connections on loopback, on the same 2 "
        f"cores as the server. Each run gives each configuration {out['seconds']} s of load in "
        f"{out['slice_s']} s slices that alternate (1, 2, 2, 1, ...), the server not under load paused "
        "(SIGSTOP), so that the machine's drift over seconds hits both alike. Every slice runs twice: "
        "**wrk isolated** (pinned to the last CPU and under `SCHED_BATCH`: it runs when the server process "
        "on that CPU waits and never preempts one mid-request, as a client on another machine would not) "
        "and **wrk default** (an ordinary process: each response that wakes it on a busy core preempts a "
        "worker, which costs the worker CPU). The same slices drive 1 and 2 bare aiohttp processes on "
        "one `SO_REUSEPORT` port: how far this machine lets a Python server scale under each.",
        "",
        "| Figure (spread of the runs) | wrk isolated | wrk default |",
        "|---|---|---|",
        row("**2 workers / 1 worker, throughput**", "ratio", "{:.2f}"),
        f"| ≥ 1.5 | {_verdict(iso['ratio'])} | {_verdict(dflt['ratio'])} |",
        row("1 worker, req/s", "rps1"),
        row("2 workers, req/s", "rps2"),
        row("the same slices: 2 bare aiohttp processes / 1", "bare_ratio", "{:.2f}"),
        row("server CPU µs per request, 1 worker", "cpu_us1"),
        row("server CPU µs per request, 2 workers", "cpu_us2"),
        row("server preemptions per request (involuntary context switches), 2 workers", "preempted2",
            "{:.2f}"),
    ])  # fmt: skip


if __name__ == "__main__":
    main()
