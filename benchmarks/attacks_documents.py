"""Attacks on the MongoDB service and its document store (issue 9 items 1, 2, 3, 7), for docs/reliability.md.

Each attack runs against a real ``appusers serve`` process on loopback (its
RSS read from ``/proc``), next to a baseline measured in the same run:

* S13  4 clients send pathological queries (a catastrophic regex, a ``$in``
       scan that runs into the time limit, a ``$lookup`` cross product, deep
       ``$expr``) while a fifth times ``GET location``; p99 vs. the idle p99.
* S14  100 sockets open a watch and never read; 10,000 inserts of 2 KB:
       RSS growth, RSS 5 s after the sockets close, insert throughput vs. the
       same inserts on a fresh server without watchers.
* S15  ``$push`` of ~900 KB per request until the 16 MiB limit refuses it.
* S16  the inputs that gave 500 in issue 9 (deep nesting, NUL and ``$`` names,
       ``$pow``/``$divide``) plus random operator documents: 5xx count.

``run()`` returns rows for ``benchmarks/reliability.py``; run this file
directly to print them and write ``benchmarks/results/attacks_documents.json``.
Usage: python benchmarks/attacks_documents.py [--quick] [--only S13,S14]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

RESULTS = Path(__file__).parent / "results"
APP = "/api/client/v2.0/app/appusers-local"
MONGO = "mongodb-atlas"
NS = {"database": "bench", "collection": "docs"}
MIB = 1024 * 1024
_QUICK = False
_HTTP_TESTS = "tests/server/test_server_documents_limits.py::"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class Server:
    """One ``appusers serve`` process with its own data directory and TOML settings."""

    def __init__(self, url: str, proc: subprocess.Popen[bytes], http: aiohttp.ClientSession) -> None:
        self.url = url
        self.proc = proc
        self.http = http
        self.token = ""
        self.user_id = ""

    def rss(self) -> float:
        return _rss_mib(self.proc.pid)

    async def login(self) -> str:
        token, _ = await self.login_user()
        return token

    async def login_user(self) -> tuple[str, str]:
        """A new anonymous user: its access token and id."""
        async with self.http.post(f"{self.url}{APP}/auth/providers/anon-user/login", json={}) as resp:
            assert resp.status == 200, await resp.text()
            body = await resp.json()
            return str(body["access_token"]), str(body["user_id"])

    def owned(self, doc: dict[str, Any]) -> dict[str, Any]:
        """``doc`` owned by the benchmark's user: the shipped (demo) rules let only the owner use it."""
        return {**doc, "owner_id": self.user_id}

    async def function(self, name: str, args: list[Any], token: str | None = None) -> tuple[int, Any]:
        body = {"name": name, "arguments": args}
        headers = {"Authorization": f"Bearer {token or self.token}"}
        async with self.http.post(f"{self.url}{APP}/functions/call", json=body, headers=headers) as resp:
            return resp.status, await resp.read()

    async def call(self, action: str, arg: dict[str, Any], token: str | None = None) -> tuple[int, Any]:
        body = {"name": action, "service": MONGO, "arguments": [{**NS, **arg}]}
        headers = {"Authorization": f"Bearer {token or self.token}"}
        async with self.http.post(f"{self.url}{APP}/functions/call", json=body, headers=headers) as resp:
            return resp.status, await resp.read()

    async def raw_call(self, payload: bytes, token: str | None = None) -> int:
        headers = {"Authorization": f"Bearer {token or self.token}", "Content-Type": "application/json"}
        async with self.http.post(f"{self.url}{APP}/functions/call", data=payload, headers=headers) as resp:
            await resp.read()
            return resp.status


#: A function that runs as system (no rules: app users may not send $regex) with the caller's pattern,
#: as an app's search function would.
SEARCH_FUNCTION = f"""
async def search(context, pattern):
    coll = context.services.get({MONGO!r}).db({NS["database"]!r}).collection({NS["collection"]!r})
    return len(await coll.find({{"evil": {{"$regex": pattern}}}}))
"""
SEARCH_TOML = """[functions]
module = "search.py"
[[functions.config]]
name = "search"
run_as_system = true
"""


@asynccontextmanager
async def serve(toml: str = "") -> AsyncIterator[Server]:
    """A server with the shipped rules (the demo rules: users use the documents they own)."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp, "server.toml")
        config.write_text(toml)  # noqa: ASYNC240 - before the server starts, nothing to block
        Path(tmp, "search.py").write_text(SEARCH_FUNCTION)  # noqa: ASYNC240 - likewise
        proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before any timing
            [sys.executable, "-m", "appusers", "serve", "--port", str(port), "--data", str(Path(tmp, "data"))]
            + (["--config", str(config)] if toml else []),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            connector = aiohttp.TCPConnector(limit=64)
            async with aiohttp.ClientSession(connector=connector) as http:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        async with http.get(f"{url}{APP}/location") as resp:
                            if resp.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError("the server did not start")
                    await asyncio.sleep(0.1)
                server = Server(url, proc, http)
                server.token, server.user_id = await server.login_user()
                yield server
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _location_latencies(server: Server, seconds: float) -> list[float]:
    out: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        async with server.http.get(f"{server.url}{APP}/location") as resp:
            await resp.read()
            assert resp.status == 200
        out.append((time.perf_counter() - t0) * 1000)
        await asyncio.sleep(0.01)
    return out


def _nest(depth: int, make: Callable[[Any], Any], leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = make(value)
    return value


async def attack_s13() -> dict[str, Any]:
    """GET location p99 while 4 clients send pathological queries."""
    seconds = 6.0 if _QUICK else 20.0
    async with serve(SEARCH_TOML) as server:
        evil = server.owned({"evil": "a" * 5000 + "!", "a": list(range(300))})
        for _ in range(3):
            status, _ = await server.call("insertMany", {"documents": [evil] * 100})
            assert status == 200
        idle = await _location_latencies(server, 3.0)
        # The rules refuse $regex, $expr and $lookup to application users at once (400); the
        # catastrophic patterns reach the store through a system function and $regexMatch.
        attacks: list[tuple[str, dict[str, Any]]] = [
            ("find", {"query": {"evil": {"$regex": "^(a+)+$"}}}),
            ("function:search", {"args": ["^(a+)+$"]}),
            ("function:search", {"args": ["^(a|aa)+$"]}),
            ("find", {"query": {"a": {"$in": list(range(1000, 4000))}}}),  # runs into the time limit
            (
                "aggregate",
                {
                    "pipeline": [
                        {"$lookup": {"from": "docs", "localField": "a", "foreignField": "a", "as": "x"}},
                        {"$count": "n"},
                    ]
                },
            ),
            ("find", {"query": {"$expr": _nest(400, lambda v: {"$not": [v]}, True)}}),
            (
                "aggregate",
                {"pipeline": [{"$project": {"m": {"$regexMatch": {"input": "$evil", "regex": "^(a+)+$"}}}}]},
            ),
        ]
        statuses: dict[int, int] = {}
        stop = time.monotonic() + seconds
        sent = 0

        async def attacker(k: int) -> None:
            nonlocal sent
            token = server.token  # 4 clients of the user who owns the documents
            i = k
            while time.monotonic() < stop:
                action, arg = attacks[i % len(attacks)]
                if action.startswith("function:"):
                    status, _ = await server.function(action.split(":", 1)[1], arg["args"], token)
                else:
                    status, _ = await server.call(action, arg, token)
                statuses[status] = statuses.get(status, 0) + 1
                sent += 1
                i += 1

        tasks = [asyncio.create_task(attacker(k)) for k in range(4)]
        await asyncio.sleep(0.5)
        busy = await _location_latencies(server, seconds - 1.0)
        await asyncio.gather(*tasks)
    p99, p99_idle = _percentile(busy, 0.99), _percentile(idle, 0.99)
    return {
        "id": "S13",
        "attack": "4 clients under the shipped rules: catastrophic $regex (refused by the rules; through a "
        "system function), $regexMatch, $in scan past the time limit, $lookup, 400-deep $expr",
        "test": _HTTP_TESTS + "test_catastrophic_regex_answers_at_once_and_location_stays_live",
        "figure": f"GET location p99 {p99:.1f} ms under attack (idle p99 {p99_idle:.1f} ms, "
        f"median {statistics.median(busy):.1f} ms, n={len(busy)}); "
        f"{sent} attack requests, statuses {statuses}",
        "verdict": "met" if p99 <= 50 and not any(s >= 500 for s in statuses) else "missed",
        "p99_ms": p99,
        "p99_idle_ms": p99_idle,
    }


def _watch_request(server: Server, token: str) -> bytes:
    call = {"name": "watch", "service": MONGO, "arguments": [NS]}
    req = quote(base64.b64encode(json.dumps(call).encode()).decode(), safe="")
    port = server.url.rsplit(":", 1)[1]
    path = f"{APP}/functions/call?baas_request={req}&baas_at={token}"
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()


async def _insert_run(server: Server, count: int, clients: int = 4) -> float:
    """Seconds for ``count`` insertOne calls of 2 KB from ``clients`` concurrent clients."""
    pad = "p" * 2000
    per = count // clients

    async def client(k: int) -> None:
        for i in range(per):
            doc = server.owned({"k": k, "i": i, "pad": pad})
            status, _ = await server.call("insertOne", {"document": doc})
            assert status == 200

    t0 = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    return time.perf_counter() - t0


async def attack_s14() -> dict[str, Any]:
    """100 stalled watchers + 10,000 inserts of 2 KB."""
    watchers, inserts = (100, 2000) if _QUICK else (100, 10_000)
    toml = "[limits]\nwatch_streams_per_user = 1000\n"
    async with serve(toml) as server:
        await _insert_run(server, 200)  # warm up
        base_start = server.rss()
        base_seconds = await _insert_run(server, inserts)
        # The store keeps every document in memory: this much growth is the data, not the watchers.
        base_growth = server.rss() - base_start
    async with serve(toml) as server:
        await _insert_run(server, 200)
        start = server.rss()
        socks = []
        request = _watch_request(server, server.token)
        for _ in range(watchers):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
            sock.sendall(request)
            socks.append(sock)
        await asyncio.sleep(1.0)
        peak = server.rss()
        sampling = True

        async def sample() -> None:
            nonlocal peak
            while sampling:
                peak = max(peak, server.rss())
                await asyncio.sleep(0.1)

        sampler = asyncio.create_task(sample())
        seconds = await _insert_run(server, inserts)
        sampling = False
        await sampler
        peak = max(peak, server.rss())
        for sock in socks:
            sock.close()
        await asyncio.sleep(5.0)
        after = server.rss()
    growth, residue = peak - start, after - start
    ratio = base_seconds / seconds
    return {
        "id": "S14",
        "attack": f"{watchers} watch sockets that never read, then {inserts:,} inserts of 2 KB",
        "test": _HTTP_TESTS + "test_stalled_watcher_is_cut_and_a_leaving_client_is_one_info_line",
        "figure": f"RSS {start:.0f} -> peak {peak:.0f} MiB (+{growth:.0f}), {after:.0f} MiB 5 s after close "
        f"(+{residue:.0f}; {residue - base_growth:+.0f} MiB against the same inserts without watchers, which "
        f"grow RSS by {base_growth:.0f} MiB: the stored documents); "
        f"inserts {inserts / seconds:.0f}/s vs {inserts / base_seconds:.0f}/s without watchers ({ratio:.0%})",
        # "Back within 50 MiB of the start" is read against the same inserts without watchers:
        # the embedded store keeps every document in memory, so the data alone stays (58 MiB
        # for 10,000 x 2 KB); what must go when the sockets close is what the watchers held.
        "verdict": "met" if growth <= 150 and residue - base_growth <= 50 and ratio >= 0.8 else "missed",
        "rss_growth_mib": growth,
        "rss_growth_without_watchers_mib": base_growth,
        "rss_after_close_mib": residue,
        "throughput_ratio": ratio,
    }


async def attack_s15() -> dict[str, Any]:
    """Grow one array by ~900 KB a request until the 16 MiB limit answers."""
    async with serve() as server:
        await server.call("insertOne", {"document": server.owned({"_id": 1, "arr": []})})
        start = server.rss()
        push = {"$push": {"arr": {"$each": ["y" * 100_000] * 9}}}
        accepted, last = 0, (0, b"")
        for _ in range(40):
            last = await server.call("updateOne", {"query": {"_id": 1}, "update": push})
            if last[0] != 200:
                break
            accepted += 1
        rss = server.rss()
    body = json.loads(last[1]) if last[1] else {}
    refused = last[0] == 400 and "larger than 16777216" in body.get("error", "")
    return {
        "id": "S15",
        "attack": "$push of ~900 KB per request into one document, 40 times",
        "test": "tests/documents/test_documents_limits.py::test_documents_over_16_mib_are_refused_everywhere",
        "figure": f"{accepted} pushes accepted ({accepted * 0.9:.1f} MB), the next refused with "
        f"{last[0]} {body.get('error_code')}: {body.get('error', '')[:60]!r}; "
        f"server RSS {start:.0f} -> {rss:.0f} MiB",
        "verdict": "met" if refused and accepted == 18 else "missed",
    }


def _random_operator_query(rng: random.Random, depth: int = 0) -> Any:
    ops = [
        "$eq",
        "$ne",
        "$gt",
        "$in",
        "$nin",
        "$regex",
        "$not",
        "$and",
        "$or",
        "$expr",
        "$exists",
        "$type",
        "$size",
        "$all",
        "$elemMatch",
        "$mod",
        "$where",
        "$text",
        "$pow",
        "$divide",
        "$add",
        "$concat",
    ]
    leaves: list[Any] = [0, -1, 10**30, 1.5e308, "a\x00", "\ud800", "$a", "", None, True, [], {}, "(a)\\1"]
    if depth > 3 or rng.random() < 0.3:
        return rng.choice(leaves)
    if rng.random() < 0.3:
        return [_random_operator_query(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {
        rng.choice([*ops, "a", "a.b", "$"]): _random_operator_query(rng, depth + 1)
        for _ in range(rng.randint(1, 3))
    }


async def attack_s16() -> dict[str, Any]:
    """The issue-9 inputs that gave 500, plus random operator documents: count 5xx."""
    n_random = 300 if _QUICK else 2000
    fixed: list[tuple[str, dict[str, Any]]] = [
        ("find", {"query": _nest(450, lambda v: {"$and": [v]}, {"a": 1})}),
        ("find", {"query": {"$expr": _nest(400, lambda v: {"$not": [v]}, True)}}),
        ("find", {"query": {"a": _nest(400, lambda v: {"$not": v}, {"$eq": 1})}}),
        ("insertOne", {"document": _nest(900, lambda v: {"a": v}, 1)}),
        ("updateOne", {"query": {}, "update": {"$set": {".".join(["a"] * 900): 1}}, "upsert": True}),
        ("updateOne", {"query": {}, "update": {"$set": {".".join(["a"] * 5000): 1}}, "upsert": True}),
        ("find", {"database": "a\x00", "query": {}}),
        ("insertOne", {"collection": "$cmd", "document": {}}),
        ("aggregate", {"pipeline": [{"$project": {"x": {"$pow": [10, 100000]}}}]}),
        ("aggregate", {"pipeline": [{"$project": {"x": {"$divide": [1, 0]}}}]}),
        ("find", {"query": {"a": {"$in": list(range(200_000))}}}),
    ]
    rng = random.Random(9)
    statuses: dict[int, int] = {}
    async with serve() as server:
        seed = [server.owned({"a": i, "s": "x" * i}) for i in range(50)]
        await server.call("insertMany", {"documents": seed})
        for action, arg in fixed:
            status, _ = await server.call(action, arg)
            statuses[status] = statuses.get(status, 0) + 1
        actions = ["find", "count", "aggregate", "updateOne", "updateMany", "insertOne", "deleteMany"]
        for _ in range(n_random):
            action = rng.choice(actions)
            arg: dict[str, Any] = {"query": _random_operator_query(rng)}
            if action == "aggregate":
                arg = {
                    "pipeline": [
                        {
                            rng.choice(
                                ["$match", "$project", "$group", "$addFields"]
                            ): _random_operator_query(rng)
                        }
                    ]
                }
            elif action.startswith("update"):
                arg["update"] = {
                    rng.choice(["$set", "$inc", "$push", "$pow", "$rename"]): _random_operator_query(rng)
                }
            elif action == "insertOne":
                arg = {"document": _random_operator_query(rng)}
            # json.dumps keeps a lone surrogate as \\ud800: the server must cope with it too.
            payload = json.dumps({"name": action, "service": MONGO, "arguments": [{**NS, **arg}]}).encode()
            status = await server.raw_call(payload)
            statuses[status] = statuses.get(status, 0) + 1
        alive = (await server.call("count", {"query": {}}))[0] == 200
    total = sum(statuses.values())
    fives = sum(v for k, v in statuses.items() if k >= 500)
    return {
        "id": "S16",
        "attack": "issue 9's 500-inducing MongoDB inputs (900-deep query/document, 400-deep $expr/$not, "
        "900/5,000-segment $set paths, NUL/$cmd names, $pow, $divide, 200k-element $in) "
        "+ random operator documents",
        "test": "tests/server/test_server_documents_fuzz.py::test_fuzzed_mongodb_actions_never_5xx",
        "figure": f"{fives} x 5xx in {total} requests (statuses {dict(sorted(statuses.items()))}); "
        f"server {'alive' if alive else 'DEAD'} afterwards",
        "verdict": "met" if fives == 0 and alive else "missed",
    }


ATTACKS: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
    "S13": attack_s13,
    "S14": attack_s14,
    "S15": attack_s15,
    "S16": attack_s16,
}


async def _run_all(only: list[str] | None = None) -> list[dict[str, Any]]:
    rows = []
    for key, attack in ATTACKS.items():
        if only and key not in only:
            continue
        rows.append(await attack())
    return rows


def run(quick: bool = False, only: list[str] | None = None) -> list[dict[str, Any]]:
    """The rows for ``benchmarks/reliability.py`` (each attack on its own server process)."""
    global _QUICK
    _QUICK = quick
    return asyncio.run(_run_all(only))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="shorter attacks, for smoke runs")
    parser.add_argument("--only", help="comma-separated attack ids, e.g. S13,S14")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    rows = run(args.quick, args.only.split(",") if args.only else None)
    for row in rows:
        print(f"{row['id']:<5} {row['verdict']:<7} {row['figure']}")
    RESULTS.mkdir(exist_ok=True)
    out = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_before": load,
        "load_after": os.getloadavg(),
        "cpus": os.cpu_count(),
        "quick": args.quick,
        "rows": rows,
    }
    target = RESULTS / "attacks_documents.json"
    target.write_text(json.dumps(out, indent=2) + "\n")
    print(f"written {target} (load average before {load[0]:.1f}, after {out['load_after'][0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
