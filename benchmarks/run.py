"""appusers benchmarks: prints a table and writes benchmarks/results/latest.json.

Each figure is measured next to a baseline run in the same process, so the
ratio means something on any machine:

* restore: ``App.open()`` of N cached users vs. merely ``json.loads`` of the same users kept
  as one JSON object each (the obvious format); memory per restored user from tracemalloc.
* call_function: ``user.call_function`` vs. a raw aiohttp POST of the same body to the same
  loopback server; the difference per call is the SDK's overhead.
* call_function at 64 concurrent calls: throughput of the SDK vs. the same raw aiohttp POSTs.
* state latency: a log-out's state change reaching a subscriber vs. a bare reactivex
  ``Subject.on_next`` reaching its subscriber.
* storage read: a cold storage instance's ``items(prefix)`` of N users (what ``App.open()``
  reads; open, lock and parse included) for FileStorage and SQLiteStorage, 3 runs each, every
  run next to ``json.loads`` of the same items in FileStorage's old format 1 (one JSON
  document). The load average before and after is recorded: the machine may be shared.
* import: ``import appusers`` in 10 fresh processes vs. importing only its dependencies.
* RSS: the growth of a fresh process's resident memory per restored user (Linux /proc).

Usage: python benchmarks/run.py [--users 100000] [--calls 2000] [--quick] [--storage-only]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from reactivex.subject import Subject

from appusers import App, Credentials, UserState
from appusers._records import Index, Keys, UserRecord, dump_index, dump_user
from appusers.adapters import FileStorage, MemoryStorage, SQLiteStorage

RESULTS = Path(__file__).parent / "results"
_FIELD_NAMES = ("v", "id", "state", "access_token", "refresh_token", "device_id", "provider_type",
                "last_used", "profile_type", "identities", "profile")
APP_ID = "bench-app"


def _fake_jwt(payload: dict[str, Any], size: int) -> str:
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    head = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    pad = max(0, size - len(head) - len(body) - 2)
    return f"{head}.{body}.{'s' * pad}"


def _records(n: int) -> dict[str, str]:
    now = int(time.time())
    keys = Keys.for_app(APP_ID)
    items: dict[str, str] = {}
    ids = []
    for i in range(n):
        uid = f"{i:024x}"
        ids.append(uid)
        access = _fake_jwt({"sub": uid, "typ": "access", "iat": now, "exp": now + 1800}, 300)
        refresh = _fake_jwt({"sub": uid, "typ": "refresh", "iat": now, "exp": now + 5_184_000}, 260)
        from appusers import Identity, Profile

        record = UserRecord(
            id=uid, state=UserState.LOGGED_IN if i % 10 else UserState.LOGGED_OUT,
            access_token=access if i % 10 else None, refresh_token=refresh if i % 10 else None,
            device_id=f"{i:024x}", identities=(Identity(f"id-{i}", "local-userpass"),),
            profile=Profile({"email": f"user{i}@example.com"}), provider_type="local-userpass",
            last_used=float(now),
        )
        items[keys.user(uid)] = dump_user(record)
    items[keys.index] = dump_index(Index(tuple(ids), ids[0]))
    return items


async def bench_restore(n: int, storage_kind: str) -> dict[str, Any]:
    items = _records(n)
    tmp = tempfile.TemporaryDirectory()
    if storage_kind in _STORAGES:
        cls = _STORAGES[storage_kind]
        storage: Any = cls(Path(tmp.name) / "store")
        await storage.update(items)
        storage = cls(Path(tmp.name) / "store")  # a cold instance, as at a new start
    else:
        storage = MemoryStorage()
        await storage.update(items)
    raw_bytes = sum(len(v) for v in items.values())

    # Baseline: only parsing the same users stored as one JSON object each (the obvious format),
    # creating nothing else. Below 1.0x, restoring whole users costs less than that.
    naive = [json.dumps(dict(zip(_FIELD_NAMES, v.split("\t"), strict=True))) for v in items.values()
             if "\t" in v]
    gc.collect()
    t0 = time.perf_counter()
    _ = [json.loads(v) for v in naive]
    baseline = time.perf_counter() - t0
    del _, naive
    gc.collect()

    # Timed run: exactly what an app does at start-up.
    app = App(APP_ID, base_url="http://127.0.0.1:9", storage=storage)
    t0 = time.perf_counter()
    await app.open()
    elapsed = time.perf_counter() - t0
    assert len(app.all_users) == n, len(app.all_users)
    assert app.current_user is not None
    await app.aclose()
    del app
    gc.collect()

    # Memory run: tracemalloc slows allocation down, so it gets its own App.
    app = App(APP_ID, base_url="http://127.0.0.1:9", storage=storage)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    await app.open()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    await app.aclose()
    tmp.cleanup()
    per_user = (after - before) / n
    return {
        "name": f"restore {n:,} users ({storage_kind})",
        "users": n,
        "seconds": elapsed,
        "baseline_naive_json_parse_seconds": baseline,
        "ratio_vs_naive_json_parse": elapsed / baseline,
        "bytes_per_user": per_user,
        "stored_bytes_per_user": raw_bytes / n,
        "target": "<= 1 s and <= 3072 B/user",
        "met": elapsed <= 1.0 and per_user <= 3072,
    }


_STORAGES: dict[str, Any] = {"file": FileStorage, "sqlite": SQLiteStorage}
_STORAGE_TARGETS = {"file": 0.6, "sqlite": 0.4}


async def bench_storage_read(items: dict[str, str], kind: str, runs: int = 3) -> dict[str, Any]:
    """A cold instance's items() of every user (the storage's share of App.open()), ``runs``
    times, each next to the baseline: json.loads of the same items in FileStorage's format 1."""
    n = sum(1 for k in items if ":user:" in k)
    prefix = Keys.for_app(APP_ID).prefix
    v1 = json.dumps({"format": "appusers-storage", "version": 1, "items": items}).encode()
    times, baselines = [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store"
        await _STORAGES[kind](path).update(items)
        size = await asyncio.to_thread(lambda: sum(os.path.getsize(f) for f in os.scandir(tmp)))
        for _ in range(runs):
            gc.collect()
            t0 = time.perf_counter()
            parsed = json.loads(v1.decode("utf-8"))
            baselines.append(time.perf_counter() - t0)
            del parsed
            gc.collect()
            storage = _STORAGES[kind](path)  # cold: open, lock, read and parse are all timed
            t0 = time.perf_counter()
            found = await storage.items(prefix)
            times.append(time.perf_counter() - t0)
            assert len(found) == len(items)
            del found, storage
    target = _STORAGE_TARGETS[kind]
    ratios = [t / b for t, b in zip(times, baselines, strict=True)]
    return {
        "name": f"storage read {n:,} users ({kind}), {runs} runs",
        "users": n,
        "read_seconds": statistics.median(times),
        "read_seconds_runs": times,
        "baseline_v1_json_parse_seconds_runs": baselines,
        "ratio_vs_v1_json_parse": statistics.median(ratios),
        "ratio_runs": ratios,
        "bytes_on_disk": size,
        "target": f"<= {target} s",
        "met": max(times) <= target,
    }


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_for_server(url: str) -> None:
    import aiohttp

    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(f"{url}/api/client/v2.0/app/appusers-local/location") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the benchmark server did not start")
            await asyncio.sleep(0.1)


async def bench_call_function(calls: int) -> dict[str, Any]:
    """The server runs in its own process, so this process's CPU time is the client's alone."""
    import subprocess

    import aiohttp

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data:
        server = subprocess.Popen(  # noqa: ASYNC220 - started once, before any timing
            [sys.executable, "-m", "appusers", "serve", "--port", str(port), "--data", data],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            await _wait_for_server(url)
            async with App("appusers-local", base_url=url) as app:
                user = await app.log_in(Credentials.anonymous())
                call_url = f"{url}/api/client/v2.0/app/appusers-local/functions/call"
                headers = {"Accept": "application/json", "Content-Type": "application/json",
                           "Authorization": f"Bearer {user.access_token}"}
                async with aiohttp.ClientSession() as session:
                    async def raw() -> None:
                        # What a hand-written client does: JSON in, JSON out, one prepared header set.
                        body = json.dumps({"name": "sum", "arguments": [1, 2]}).encode()
                        async with session.post(call_url, data=body, headers=headers) as resp:
                            assert resp.status == 200
                            json.loads(await resp.read())

                    async def sdk() -> None:
                        assert await user.call_function("sum", 1, 2) == 3

                    for _ in range(200):  # warm both paths up
                        await raw()
                        await sdk()
                    concurrent = await _throughput(raw, sdk, calls)
                    wall: dict[str, list[float]] = {"raw": [], "sdk": []}
                    cpu: dict[str, list[float]] = {"raw": [], "sdk": []}
                    per_round = max(1, calls // 10)
                    # Interleaved rounds, so drift in the machine's load hits both alike.
                    for _ in range(10):
                        for name, fn in (("raw", raw), ("sdk", sdk)):
                            c0, t0 = time.process_time(), time.perf_counter()
                            for _ in range(per_round):
                                await fn()
                            wall[name].append((time.perf_counter() - t0) / per_round)
                            cpu[name].append((time.process_time() - c0) / per_round)
        finally:
            server.terminate()
            server.wait(timeout=30)
    raw_wall, sdk_wall = statistics.median(wall["raw"]), statistics.median(wall["sdk"])
    raw_cpu, sdk_cpu = statistics.median(cpu["raw"]), statistics.median(cpu["sdk"])
    overhead = (sdk_cpu - raw_cpu) * 1e6
    return {
        "name": "call_function vs raw aiohttp (loopback)",
        "calls": calls,
        "raw_us_per_call": raw_wall * 1e6,
        "sdk_us_per_call": sdk_wall * 1e6,
        "wall_overhead_us_per_call": (sdk_wall - raw_wall) * 1e6,
        "raw_client_cpu_us_per_call": raw_cpu * 1e6,
        "sdk_client_cpu_us_per_call": sdk_cpu * 1e6,
        "overhead_us_per_call": overhead,
        "ratio_vs_raw": sdk_cpu / raw_cpu,
        "target": "<= 25 us client CPU overhead per call",
        "met": overhead <= 25,
        "concurrent": concurrent,
    }


async def _throughput(raw: Any, sdk: Any, calls: int, width: int = 64) -> dict[str, Any]:
    """Calls per second with ``width`` calls in flight, SDK vs raw, in interleaved rounds."""

    async def run(fn: Any, n: int) -> float:
        left = n

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await fn()

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(width)))
        return n / (time.perf_counter() - t0)

    rates: dict[str, list[float]] = {"raw": [], "sdk": []}
    per_round = max(width, calls // 5)
    for _ in range(5):
        for name, fn in (("raw", raw), ("sdk", sdk)):
            rates[name].append(await run(fn, per_round))
    raw_rate, sdk_rate = statistics.median(rates["raw"]), statistics.median(rates["sdk"])
    return {
        "name": f"call_function throughput, {width} concurrent",
        "raw_calls_per_s": raw_rate,
        "sdk_calls_per_s": sdk_rate,
        "ratio_vs_raw": sdk_rate / raw_rate,
        "target": ">= 0.95x raw aiohttp",
        "met": sdk_rate / raw_rate >= 0.95,
    }


async def bench_state_latency(rounds: int) -> dict[str, Any]:
    from appusers._app import App as _App
    from appusers._machine import fire

    app = _App(APP_ID, base_url="http://127.0.0.1:9")
    from appusers._user import User

    lat: list[float] = []
    base: list[float] = []
    for _ in range(rounds):
        user = User(app, "u", state=UserState.LOGGED_IN, access_token=None, refresh_token=None,
                    provider_type="local-userpass")
        stamp: list[float] = []
        user.state_changes.subscribe(lambda s, stamp=stamp: stamp.append(time.perf_counter_ns()))
        t0 = time.perf_counter_ns()
        before = user.state
        fire(user, "log_out")
        user._publish(None, before)
        lat.append(stamp[-1] - t0)

        subject: Subject[int] = Subject()
        got: list[float] = []
        subject.subscribe(lambda _v, got=got: got.append(time.perf_counter_ns()))
        t0 = time.perf_counter_ns()
        subject.on_next(1)
        base.append(got[-1] - t0)
    await app.aclose()
    med, med_base = statistics.median(lat), statistics.median(base)
    return {
        "name": "state change -> subscriber",
        "rounds": rounds,
        "median_us": med / 1000,
        "p99_us": sorted(lat)[int(len(lat) * 0.99)] / 1000,
        "baseline_subject_median_us": med_base / 1000,
        "ratio_vs_bare_subject": med / med_base,
        "target": "<= 10 us median",
        "met": med / 1000 <= 10,
    }


_IMPORT_SNIPPET = "import time; t = time.perf_counter(); import {}; print(time.perf_counter() - t)"


def bench_import(runs: int = 10) -> dict[str, Any]:
    """``import appusers`` in fresh processes; the baseline imports only its dependencies."""
    import subprocess

    def timed(modules: str) -> float:
        out = subprocess.run([sys.executable, "-c", _IMPORT_SNIPPET.format(modules)],
                             capture_output=True, text=True, check=True).stdout
        return float(out.strip())

    sdk, deps = [], []
    for _ in range(runs):  # interleaved, so load drift hits both alike
        sdk.append(timed("appusers"))
        deps.append(timed("asyncio, json, attrs, reactivex, transitions, bson.json_util"))
    med, med_deps = statistics.median(sdk), statistics.median(deps)
    return {
        "name": f"import appusers (median of {runs} processes)",
        "median_ms": med * 1000,
        "min_ms": min(sdk) * 1000,
        "max_ms": max(sdk) * 1000,
        "baseline_dependencies_median_ms": med_deps * 1000,
        "ratio_vs_dependencies": med / med_deps,
        "target": "<= 100 ms median",
        "met": med <= 0.1,
    }


_RSS_SNIPPET = """
import asyncio, gc, json, os, sys
sys.path.insert(0, {bench!r})
from run import APP_ID, _records
from appusers import App
from appusers.adapters import MemoryStorage

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

async def main():
    storage = MemoryStorage()
    await storage.update(_records({n}))
    app = App(APP_ID, base_url="http://127.0.0.1:9", storage=storage)
    gc.collect()
    before = rss()
    await app.open()
    gc.collect()
    after = rss()
    assert len(app.all_users) == {n}
    await app.aclose()
    print(json.dumps({{"before": before, "after": after}}))

asyncio.run(main())
"""


def bench_rss(n: int) -> dict[str, Any]:
    """Resident memory a fresh process gains by restoring ``n`` users (records already loaded)."""
    import subprocess

    if not Path("/proc/self/statm").exists():
        return {"name": "RSS per restored user", "skipped": "needs Linux /proc", "met": True,
                "target": "<= 2048 B/user"}
    code = _RSS_SNIPPET.format(bench=str(Path(__file__).parent), n=n)
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    check=True).stdout)
    per_user = (out["after"] - out["before"]) / n
    return {
        "name": f"RSS growth restoring {n:,} users",
        "users": n,
        "rss_bytes_per_user": per_user,
        "target": "<= 2048 B/user",
        "met": per_user <= 2048,
    }


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI smoke runs")
    parser.add_argument("--storage-only", action="store_true", help="only the storage read rows")
    args = parser.parse_args(argv)
    if args.quick:
        args.users, args.calls = 2000, 200
    load_start = load_before = os.getloadavg()
    records = _records(args.users)
    storage_rows = [
        await bench_storage_read(records, "file"),
        await bench_storage_read(records, "sqlite"),
    ]
    del records
    results: list[dict[str, Any]] = []
    if not args.storage_only:
        call = await bench_call_function(args.calls)
        results = [
            await bench_restore(args.users, "memory"),
            await bench_restore(args.users, "file"),
            await bench_restore(args.users, "sqlite"),
            call,
            call.pop("concurrent"),
            await bench_state_latency(2000),
            bench_import(),
            bench_rss(args.users),
        ]
    results += storage_rows
    print(f"{'benchmark':<44} {'figure':>30} {'baseline ratio':>16} {'target met':>11}")
    for r in results:
        if "read_seconds" in r:
            spread = r["read_seconds_runs"]
            figure = f"{min(spread):.3f}-{max(spread):.3f} s, {r['bytes_on_disk'] >> 20} MiB"
            ratio = r["ratio_vs_v1_json_parse"]
        elif "seconds" in r:
            figure = f"{r['seconds']:.3f} s, {r['bytes_per_user']:.0f} B/user"
            ratio = r["ratio_vs_naive_json_parse"]
        elif "overhead_us_per_call" in r:
            figure = f"+{r['overhead_us_per_call']:.1f} us CPU (wall {r['raw_us_per_call']:.0f} us)"
            ratio = r["ratio_vs_raw"]
        elif "sdk_calls_per_s" in r:
            figure = f"{r['sdk_calls_per_s']:.0f} vs {r['raw_calls_per_s']:.0f} calls/s"
            ratio = r["ratio_vs_raw"]
        elif "median_ms" in r:
            figure = f"{r['median_ms']:.0f} ms median ({r['min_ms']:.0f}-{r['max_ms']:.0f})"
            ratio = r["ratio_vs_dependencies"]
        elif "rss_bytes_per_user" in r:
            figure = f"{r['rss_bytes_per_user']:.0f} B/user"
            ratio = float("nan")
        elif "skipped" in r:
            figure, ratio = r["skipped"], float("nan")
        else:
            figure = f"{r['median_us']:.1f} us median, p99 {r['p99_us']:.1f}"
            ratio = r["ratio_vs_bare_subject"]
        print(f"{r['name']:<44} {figure:>30} {ratio:>15.2f}x {('yes' if r['met'] else 'NO'):>11}")
    RESULTS.mkdir(exist_ok=True)
    out = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "python": sys.version.split()[0],
        "machine": f"{platform.machine()} {os.cpu_count()} cpu",
        "quick": args.quick,
        # The machine may be shared: the load average (1, 5, 15 min) before and after the run.
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "results": results,
    }
    name = "quick" if args.quick else "storage" if args.storage_only else "latest"
    target = RESULTS / f"{name}.json"
    target.write_text(json.dumps(out, indent=2) + "\n")
    print(f"load average before {load_before}, after {os.getloadavg()}")
    print(f"written {target}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
