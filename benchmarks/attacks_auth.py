"""Attacks on the server's authentication, request handling and files (issue 9 items 4-13).

Each attack runs against a real LocalServer on 127.0.0.1 (or an ``appusers serve`` child
process where descriptors are counted) and returns one row for docs/reliability.md.
Run through ``python benchmarks/reliability.py``.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import hmac
import json
import os
import signal
import socket
import stat
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from _attack_kit import Client, demo, row, serve

from appusers.server import load_config

ROOT = Path(__file__).resolve().parents[1]

T = "tests/server"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _payload(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    result: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return result


def _forge(payload: dict[str, Any], alg: str, key: bytes = b"") -> str:
    head = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = _b64(json.dumps(payload).encode())
    if alg == "none":
        return f"{head}.{body}."
    return f"{head}.{body}.{_b64(hmac.new(key, f'{head}.{body}'.encode(), hashlib.sha256).digest())}"


async def crafted_tokens() -> dict[str, str]:
    """S9: forged, tampered, expired-looking and wrong-kind tokens on profile and session."""
    async with serve() as c:
        tokens = await c.login()
        claims, rclaims = _payload(tokens["access_token"]), _payload(tokens["refresh_token"])
        bad_access = [
            _forge(claims, "none"),
            _forge(claims, "none").rstrip("."),
            _forge({**claims, "exp": int(time.time()) + 10**6}, "HS256", b"guess"),
            _forge({**claims, "exp": 1}, "HS256", b"guess"),
            tokens["access_token"][:-4] + "AAAA",
            tokens["refresh_token"],
            _forge({**claims, "typ": "refresh"}, "HS512", b"guess"),
            "",
            "a.b.c",
        ]
        bad_refresh = [_forge(rclaims, "none"), tokens["access_token"], tokens["refresh_token"][:-3] + "xyz"]
        refused = 0
        for token in bad_access:
            status, _h, _b = await c.request("GET", f"{c.auth}/profile", token=token)
            refused += status == 401
        for token in bad_refresh:
            status, _h, _b = await c.request("POST", f"{c.auth}/session", token=token)
            refused += status == 401
        total = len(bad_access) + len(bad_refresh)
    return row(
        "S9",
        "Forged (alg none, guessed key), tampered, truncated and wrong-kind tokens",
        f"{T}/test_server_security.py::test_crafted_tokens_are_rejected",
        f"{refused}/{total} crafted tokens rejected with 401",
        refused == total,
    )


async def custom_data_lockout() -> dict[str, str]:
    """S15: custom data of 9,000 characters and of 100 KB must not lock its user out."""
    locked = 0
    details = []
    async with serve() as c:
        for size in (9_000, 100_000):
            tokens = await c.login()
            status, _data = await c.call(tokens["access_token"], "set_custom_data", {"blob": "x" * size})
            status, _h, body = await c.request("POST", f"{c.auth}/session", token=tokens["refresh_token"])
            if status != 201:
                locked += 1
                details.append(f"{size:,} chars: refresh {status}")
                continue
            access = body["access_token"]
            status, _h, _b = await c.request("GET", f"{c.auth}/profile", token=access)
            status2, _r = await c.call(access, "sum", 1, 2)
            ok = status == 200 and status2 == 200
            locked += not ok
            details.append(f"{size:,} chars: token {len(access):,} B, profile {status}, call {status2}")
    return row(
        "S15",
        "Custom data of 9,000 characters / 100 KB bloats the access token",
        f"{T}/test_server_hostile.py::test_large_custom_data_never_locks_its_user_out",
        f"users locked out: {locked}/2 ({'; '.join(details)})",
        locked == 0,
    )


async def cors_reflection() -> dict[str, str]:
    """S22: does any origin come back reflected together with credentials?"""
    origins = ["https://evil.example", "null", "http://localhost:3000"]
    reflected = 0
    async with serve() as c:
        for origin in origins:
            for method in ("GET", "OPTIONS"):
                _s, headers, _b = await c.request(
                    method,
                    f"{c.app}/location",
                    headers={
                        "Origin": origin,
                        "Access-Control-Request-Method": "GET",
                        "Access-Control-Request-Headers": "X-Evil, Authorization",
                    },
                )
                if (
                    headers.get("Access-Control-Allow-Origin") == origin
                    and headers.get("Access-Control-Allow-Credentials") == "true"
                ):
                    reflected += 1
    total = len(origins) * 2
    return row(
        "S22",
        "Requests and preflights from foreign origins",
        f"{T}/test_server_hostile.py::test_cors_never_reflects_an_origin_with_credentials",
        f"reflected origins with credentials: {reflected}/{total}",
        reflected == 0,
    )


# ------------------------------------------------------------------------- S7 stored secrets
async def stored_secrets() -> dict[str, str]:
    """S7: passwords, refresh tokens, API keys and email tokens must not be in a store dump."""
    password = "Plaintext-Password-1234"
    async with serve() as c:
        tokens = await c.confirmed_user("dump@example.com", password)
        _s, _h, key = await c.request(
            "POST", f"{c.auth}/api_keys", token=tokens["refresh_token"], body={"name": "k"}
        )
        mail = c.server.read_outbox()[0]["token"]
        # outbox.jsonl is the local stand-in for sent email: it holds the emailed token by design.
        files = [p for p in c.server.data_dir.rglob("*") if p.is_file() and p.name != "outbox.jsonl"]
        dump = b"".join(p.read_bytes() for p in files)
        secrets = [password, tokens["refresh_token"], key["key"], mail]
        found = sum(secret.encode() in dump for secret in secrets)
    return row(
        "S7",
        "Plaintext secrets in a dump of every file of the data directory (but the outbox, i.e. the email)",
        f"{T}/test_server_security.py::test_no_plaintext_secrets_in_the_database",
        f"plaintext secrets found: {found}/{len(secrets)} (scrypt n=2^15 r=8 p=1 password hashes)",
        found == 0,
    )


# ------------------------------------------------------------------------- S7 hashing pool
def _serve_child(tmp: Path, toml: str) -> tuple[subprocess.Popen[str], str]:
    config = tmp / "server.toml"
    config.write_text('[functions]\nmodule = "demo"\n[custom_data]\n' + toml)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "appusers.server",
            "--port",
            "0",
            "--data",
            str(tmp / "data"),
            "--config",
            str(config),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "appusers server: http://" not in line:
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return proc, line.split()[2]


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


async def _throughput(url: str, token: str, seconds: float, callers: int = 8) -> float:
    """Function calls per second (``sum``) by ``callers`` concurrent loops."""
    body = json.dumps({"name": "sum", "arguments": [1, 2]}).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    done = 0
    stop_at = time.monotonic() + seconds
    async with aiohttp.ClientSession() as http:

        async def loop() -> None:
            nonlocal done
            while time.monotonic() < stop_at:
                async with http.post(f"{url}/functions/call", data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status == 200:
                        done += 1

        await asyncio.gather(*(loop() for _ in range(callers)))
    return done / seconds


async def _logins(url: str, stop: asyncio.Event, count: collections.Counter[int]) -> None:
    body = json.dumps({"username": "hash@example.com", "password": "hash-password"}).encode()
    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            async with http.post(
                f"{url}/auth/providers/local-userpass/login",
                data=body,
                headers={"Content-Type": "application/json"},
            ) as resp:
                await resp.read()
                count[resp.status] += 1


async def _hashing_round(workers: int, nice: int, seconds: float) -> tuple[float, float, int]:
    """(idle calls/s, calls/s during 25 login loops, logins done); idle is measured before and
    after the logins and averaged, so drift of the shared machine's load is partly cancelled."""
    with tempfile.TemporaryDirectory(prefix="appusers-hash-") as tmp:
        toml = f"[security]\nhash_workers = {workers}\nhash_nice = {nice}\n"
        toml += "[providers.local-userpass]\nauto_confirm = true\n[providers.anon-user]\n"
        proc, base = _serve_child(Path(tmp), toml)
        try:
            app = f"{base}/api/client/v2.0/app/appusers-local"
            async with aiohttp.ClientSession() as http:
                c = Client.__new__(Client)
                c.http, c.app, c.auth = http, app, f"{base}/api/client/v2.0/auth"
                await c.request(
                    "POST",
                    f"{app}/auth/providers/local-userpass/register",
                    body={"email": "hash@example.com", "password": "hash-password"},
                )
                tokens = await c.login()
            before = await _throughput(app, tokens["access_token"], seconds)
            stop = asyncio.Event()
            counts: collections.Counter[int] = collections.Counter()
            loggers = [asyncio.create_task(_logins(app, stop, counts)) for _ in range(25)]
            await asyncio.sleep(0.5)
            busy = await _throughput(app, tokens["access_token"], seconds)
            stop.set()
            await asyncio.gather(*loggers)  # every login answered: the pool is idle again
            after = await _throughput(app, tokens["access_token"], seconds)
            return (before + after) / 2, busy, counts[200]
        finally:
            _stop(proc)


async def hashing_pool() -> dict[str, str]:
    """S7/issue 9 item 13: function-call throughput while 25 clients log in with passwords."""
    configs = {
        "1 thread, nice +10 (the default)": (1, 10),
        "1 thread, nice 0": (1, 0),
        "6 threads, nice 0": (6, 0),
    }
    results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in configs}
    for _round in range(3):
        for name, (workers, nice) in configs.items():
            results[name].append(await _hashing_round(workers, nice, 3.0))

    def describe(name: str) -> str:
        ratios = sorted(busy / idle for idle, busy, _n in results[name])
        idle = [i for i, _b, _n in results[name]]
        logins = [n for _i, _b, n in results[name]]
        return (
            f"{name}: {ratios[0]:.0%}/{ratios[1]:.0%}/{ratios[2]:.0%} of idle "
            f"(idle {min(idle):,.0f}-{max(idle):,.0f} calls/s; {min(logins)}-{max(logins)} logins in 3 s)"
        )

    default = next(iter(configs))
    ratios = [busy / idle for idle, busy, _n in results[default]]
    return row(
        "S7",
        "25 concurrent password logins (scrypt n=2^15) while 8 clients call a function",
        f"{T}/test_server_hostile.py::test_password_hashing_is_bounded_and_never_5xx",
        "function-call throughput during the logins as a share of the same server's idle figure "
        "(3 runs each, min/median/max; server in its own process; 6 threads = the size of the "
        "shared executor hashing used before): " + "; ".join(describe(name) for name in configs),
        min(ratios) >= 0.7,
    )


# ------------------------------------------------------------------------- S8/S17 throttling
async def _simulated_hour() -> tuple[int, int, int]:
    sys.path.insert(0, str(ROOT / "tests" / "server"))
    from test_server_hostile import _hour_of_guessing

    from appusers.server._config import ThrottleSettings

    return await _hour_of_guessing(ThrottleSettings())  # type: ignore[no-any-return]


async def throttling() -> list[dict[str, str]]:
    """S8 (per account and address) and S17 (attacker at 50/s vs the owner elsewhere)."""
    checked_hour, owner_hour, other_refused_hour = await _simulated_hour()
    seconds = 20.0
    async with serve(demo()) as c:
        await c.confirmed_user("victim@example.com", "right-pass")  # from 127.0.0.1
        await c.confirmed_user("bystander@example.com", "right-pass")  # from 127.0.0.1
        url = f"{c.app}/auth/providers/local-userpass/login"
        owner_http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0)))
        async with owner_http:
            await c.request(
                "POST",
                url,
                body={"username": "victim@example.com", "password": "right-pass"},
                session=owner_http,
            )
            stop_at = time.monotonic() + seconds
            attacker: collections.Counter[int] = collections.Counter()
            owner: collections.Counter[int] = collections.Counter()
            bystander: collections.Counter[int] = collections.Counter()

            async def attack() -> None:
                next_at = time.monotonic()
                while time.monotonic() < stop_at:
                    status, _h, _b = await c.request(
                        "POST", url, body={"username": "victim@example.com", "password": "wrong-guess"}
                    )
                    attacker[status] += 1
                    next_at += 1 / 50
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))

            async def user(
                counter: collections.Counter[int], email: str, every: float, session: aiohttp.ClientSession
            ) -> None:
                while time.monotonic() < stop_at:
                    status, _h, _b = await c.request(
                        "POST", url, body={"username": email, "password": "right-pass"}, session=session
                    )
                    counter[status] += 1
                    await asyncio.sleep(every)

            await asyncio.gather(
                attack(),
                user(owner, "victim@example.com", 1.0, owner_http),
                user(bystander, "bystander@example.com", 2.0, c.http),
            )
    sent = sum(attacker.values())
    owner_ok = owner[200] / max(1, sum(owner.values()))
    figure_17 = (
        f"bounded run ({seconds:.0f} s, real server): attacker sent {sent} guesses "
        f"({sent / seconds:.0f}/s) from "
        f"127.0.0.1, {attacker[401]} were checked, the rest got 429; the owner from 127.0.0.2 succeeded "
        f"{owner[200]}/{sum(owner.values())}; a user who had logged in from 127.0.0.1 before, "
        f"{bystander[200]}/{sum(bystander.values())}. Extrapolated to an hour by running the server's own "
        f"LoginThrottle with a fake clock at 50 guesses/s: {checked_hour} checked guesses/hour, owner "
        f"{owner_hour} % successful, bystander refused {other_refused_hour} times"
    )
    met_17 = checked_hour <= 60 and owner_hour >= 95 and owner_ok >= 0.95 and bystander[429] == 0
    return [
        row(
            "S8",
            "Failed logins counted per (account, address), per address and per account; known addresses "
            "exempt from the others' counts; forwarded headers only from trusted proxies",
            f"{T}/test_server_hostile.py::test_forwarded_headers_cannot_dodge_the_throttle",
            f"checked guesses per hour per account from one address: {checked_hour} (target ≤ 60); "
            f"the longest wait any user can be given: 90 s (own address) / 30 s (new device under attack)",
            checked_hour <= 60,
        ),
        row(
            "S17",
            "Attacker guessing one account at 50/s from 127.0.0.1 while its owner logs in from 127.0.0.2",
            f"{T}/test_server_hostile.py::test_owner_logs_in_from_another_address_while_attacked",
            figure_17,
            met_17,
        ),
    ]


# ------------------------------------------------------------------------- S18 enumeration
ENUM_ROUTES = ("confirm/send", "reset/send", "reset/call", "register")


async def enumeration() -> dict[str, str]:
    """S18: answers and timing of the probing routes for known and unknown addresses."""
    from appusers.server._config import ThrottleSettings

    config = demo(
        scrypt=load_config(None).scrypt,
        throttle=ThrottleSettings(userpass_per_address=0, userpass_per_email=0),
    )
    rounds = 20
    distinguishable = 0
    timings: dict[str, dict[str, list[float]]] = {r: {"known": [], "unknown": []} for r in ENUM_ROUTES}
    async with serve(config) as c:
        await c.confirmed_user("known@example.com", "first-pass")
        for i in range(rounds):
            for route in ENUM_ROUTES:
                answers = []
                pair = [("known", "known@example.com"), ("unknown", f"nobody{i}@example.com")]
                for kind, email in pair if i % 2 else pair[::-1]:  # alternate who goes first
                    body: dict[str, Any] = {"email": email}
                    if route in ("register", "reset/call"):
                        body["password"] = "another-pass"
                    if route == "reset/call":
                        body["arguments"] = ["pending"]
                    started = time.perf_counter()
                    status, headers, answer = await c.request(
                        "POST", f"{c.app}/auth/providers/local-userpass/{route}", body=body
                    )
                    timings[route][kind].append(time.perf_counter() - started)
                    answers.append((status, answer, headers.get("Content-Type")))
                distinguishable += answers[0] != answers[1]
    parts = []
    for route in ENUM_ROUTES:
        known = statistics.median(timings[route]["known"]) * 1000
        unknown = statistics.median(timings[route]["unknown"]) * 1000
        parts.append(f"{route} {known:.1f} vs {unknown:.1f} ms")
    limits = ThrottleSettings()
    return row(
        "S18",
        "Probing register, confirm/send, reset/send and reset/call for registered addresses",
        f"{T}/test_server_hostile.py::test_known_and_unknown_addresses_get_the_same_answers",
        f"distinguishable answers: {distinguishable}/{rounds * len(ENUM_ROUTES)} pairs; median time known vs "
        f"unknown ({rounds} each, scrypt n=2^15): {'; '.join(parts)}; rate limits: "
        f"{limits.userpass_per_address} requests then {limits.userpass_address_rate:g}/s per address, "
        f"{limits.userpass_per_email} then {limits.userpass_email_rate * 3600:g}/h per email",
        distinguishable == 0,
    )


# ------------------------------------------------------------------------- S20 slow clients
def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def half_sent() -> dict[str, str]:
    """S20: 2,000 half-sent requests against ``appusers serve`` (read timeout 3 s for the run)."""
    half = b"POST /api/client/v2.0/app/appusers-local/functions/call HTTP/1.1\r\nHost: x\r\nContent-Le"
    timeout = 3.0
    with tempfile.TemporaryDirectory(prefix="appusers-slow-") as tmp:
        proc, url = _serve_child(
            Path(tmp), f"[http]\nread_timeout = {timeout}\nmax_connections_per_address = 0\n"
        )
        try:
            port = int(url.rsplit(":", 1)[1])
            baseline = _fds(proc.pid)
            socks: list[socket.socket] = []
            peak = 0
            started = time.monotonic()
            for i in range(2000):
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                sock.sendall(half)
                socks.append(sock)
                if i % 100 == 99:
                    peak = max(peak, _fds(proc.pid))
            connected = time.monotonic()
            held_late = 0
            for sock in socks:
                sock.settimeout(timeout + 5)
                try:
                    held_late += sock.recv(10) != b""
                except TimeoutError:
                    held_late += 1
            all_closed = time.monotonic() - connected
            deadline = time.monotonic() + 10
            while _fds(proc.pid) > baseline + 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            after = _fds(proc.pid)
            for sock in socks:
                sock.close()
        finally:
            _stop(proc)
    with tempfile.TemporaryDirectory(prefix="appusers-cap-") as tmp:
        proc, url = _serve_child(Path(tmp), "")
        try:
            port = int(url.rsplit(":", 1)[1])
            flood = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(400)]
            time.sleep(0.5)
            flood_fds = _fds(proc.pid)
            for sock in flood:
                sock.close()
        finally:
            _stop(proc)
    return row(
        "S20",
        "2,000 half-sent requests (raw sockets) against `appusers serve`; a 400-connection flood",
        f"{T}/test_server_slow_clients.py::"
        "test_two_thousand_half_sent_requests_are_closed_and_descriptors_return",
        f"held after the {timeout:.0f} s read timeout: {held_late}/2000; "
        f"all closed {all_closed:.1f} s after the "
        f"last was sent (connecting took {connected - started:.1f} s); server descriptors {baseline} → peak "
        f"{peak} → {after}; 400 idle connections from one address held {flood_fds} descriptors "
        f"(cap 256 per address)",
        held_late == 0 and after <= baseline + 2,
    )


# ------------------------------------------------------------------------- S21 file modes
def file_modes() -> dict[str, str]:
    """S21: every entry of the data directory under umask 000, new / existing 0755 / 0777 dir."""
    wider: list[str] = []
    cases = 0
    for existing in (None, 0o755, 0o777):
        with tempfile.TemporaryDirectory(prefix="appusers-modes-") as tmp:
            data = Path(tmp) / "data"
            if existing is not None:
                data.mkdir()
                os.chmod(data, existing)
            old = os.umask(0)
            try:
                proc, url = _serve_child(Path(tmp), "")
            finally:
                os.umask(old)
            try:
                app = f"{url}/api/client/v2.0/app/appusers-local"
                for path, body in (
                    ("/auth/providers/local-userpass/register", {"email": "m@x.io", "password": "pw1234"}),
                    ("/auth/providers/anon-user/login", {}),
                ):
                    req = urllib.request.Request(
                        app + path,
                        data=json.dumps(body).encode(),
                        headers={"Content-Type": "application/json"},
                    )
                    with urllib.request.urlopen(req, timeout=30) as resp:
                        tokens = json.loads(resp.read() or b"{}")
                req = urllib.request.Request(
                    f"{app}/functions/call",
                    data=json.dumps(
                        {
                            "name": "insertOne",
                            "service": "mongodb-atlas",
                            "arguments": [{"database": "db", "collection": "c", "document": {"k": 1}}],
                        }
                    ).encode(),
                    headers={
                        "Content-Type": "application/json",
                        "Authorization": f"Bearer {tokens['access_token']}",
                    },
                )
                urllib.request.urlopen(req, timeout=30).close()
            finally:
                _stop(proc)
            for path in [data, *data.rglob("*")]:
                cases += 1
                mode = stat.S_IMODE(path.lstat().st_mode)
                if mode != (0o700 if path.is_dir() else 0o600):
                    wider.append(f"{path.name} {mode:04o}")
    return row(
        "S21",
        "`appusers serve` under umask 000 with a new, an existing 0755 and an existing 0777 data directory",
        f"{T}/test_server_slow_clients.py::test_data_files_are_private_under_umask_000",
        f"entries wider than 0600/0700: {len(wider)}/{cases}" + (f" ({', '.join(wider)})" if wider else ""),
        not wider,
    )


# ------------------------------------------------------------------------- S16 fuzzing, S10 logs
def fuzz_run() -> list[dict[str, str]]:
    """S16 and S10: the property-based fuzz suite over every route, with its log canary."""
    with tempfile.TemporaryDirectory(prefix="appusers-fuzz-") as tmp:
        stats_path = Path(tmp) / "stats.json"
        started = time.monotonic()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-W",
                "error",
                f"{T}/test_server_fuzz.py",
            ],
            cwd=ROOT,
            env={**os.environ, "APPUSERS_FUZZ_STATS": str(stats_path)},
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        seconds = time.monotonic() - started
        stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    passed = proc.returncode == 0
    figure = (
        f"5xx: {stats.get('5xx', '?')} of {stats.get('requests', '?'):,} requests "
        f"over {stats.get('routes', '?')} "
        f"routes (all reached), {stats.get('seconds', '?')} s fuzzing, {seconds:.0f} s with start-up; "
        f"statuses {stats.get('statuses', {})}"
        if stats
        else f"the suite did not report: {proc.stdout.strip().splitlines()[-1:]}"
    )
    return [
        row(
            "S16",
            "Property-based fuzzing of every route: lone surrogates, odd and oversized headers, "
            "forged tokens, random EJSON, raw bytes, nesting (plus one test per string field of every route)",
            f"{T}/test_server_fuzz.py::test_fuzz_every_route",
            figure,
            passed and stats.get("5xx") == 0,
        ),
        row(
            "S10",
            "Tokens, passwords, API keys, email tokens and the admin token in the log of the fuzz run "
            "(every logger at DEBUG), oversized Authorization headers included",
            f"{T}/test_server_fuzz.py::test_no_canary_in_any_log_line",
            f"canary hits: {'0' if passed else 'see the failing test'} "
            f"({stats.get('log_lines', '?')} log lines); "
            "5xx bodies are a bare InternalServerError; unparsable requests are logged by exception "
            "type only",
            passed,
        ),
    ]


ATTACKS: list[Callable[[], Awaitable[Any]]] = [
    crafted_tokens,
    custom_data_lockout,
    cors_reflection,
    stored_secrets,
    throttling,
    enumeration,
    hashing_pool,
]
SYNC_ATTACKS: list[Callable[[], Any]] = [half_sent, file_modes, fuzz_run]


def _flatten(results: list[Any]) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for result in results:
        rows.extend(result if isinstance(result, list) else [result])
    return rows


def run() -> list[dict[str, str]]:
    async def all_rows() -> list[Any]:
        return [await attack() for attack in ATTACKS]

    return _flatten(asyncio.run(all_rows()) + [attack() for attack in SYNC_ATTACKS])


if __name__ == "__main__":
    only = sys.argv[1:]
    if only:
        for name in only:
            result = globals()[name]()
            result = asyncio.run(result) if asyncio.iscoroutine(result) else result
            print(json.dumps(_flatten([result]), indent=1))
    else:
        for r in run():
            print(r)
