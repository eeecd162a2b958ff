"""Client-side faults (reliability targets R1-R5, R7, R11) against the real loopback server.

Each row measures the SDK (``appusers.App`` over ``AiohttpTransport``) while the local server
misbehaves on purpose (``Fault`` sequences: 5xx with ``Retry-After``, resets, hangs) or is
stopped and started again at the same URL. Waits are real (``asyncio.sleep``), measured on
the monotonic clock. Run through ``python benchmarks/reliability.py`` (or alone: it prints its rows).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from appusers import App, ConnectivityState, Credentials, RetryPolicy
from appusers.adapters import AiohttpTransport, MemoryStorage, MockTransport
from appusers.errors import AppError, RequestTimeoutError, ServiceError, TransportError
from appusers.server import Fault, LocalServer
from appusers.transport import Request

ROOT = Path(__file__).resolve().parents[1]
BUSY = {"error": "busy", "error_code": "MaintenanceInProgress"}


class MeasuredSleep:
    """``asyncio.sleep`` that records what the policy asked for and what it took."""

    def __init__(self) -> None:
        self.asked: list[float] = []
        self.took: list[float] = []

    async def __call__(self, seconds: float) -> None:
        started = time.monotonic()
        await asyncio.sleep(seconds)
        self.asked.append(seconds)
        self.took.append(time.monotonic() - started)


def _config() -> Any:
    """The demo settings with a cheap scrypt cost (these rows are not about hashing)."""
    import attrs

    from appusers.server import load_config
    from appusers.server._config import ScryptSettings

    return attrs.evolve(load_config(None), scrypt=ScryptSettings(n=2**4, r=1, p=1))


def _ms(values: list[float]) -> str:
    return "/".join(f"{v * 1000:.0f}" for v in values) + " ms"


async def _backoff_schedule(server: LocalServer) -> dict[str, Any]:
    sleep = MeasuredSleep()
    async with App(server.app_id, base_url=server.url, retry=RetryPolicy(sleep=sleep)) as app:
        user = await app.log_in(Credentials.anonymous())
        before = server.stats["profile"]
        server.inject_faults("profile", [
            Fault.reply(503, BUSY, headers={"Retry-After": "1"}), Fault.reply(502), Fault.reply(504)])
        await user.refresh_profile()
        attempts = server.stats["profile"] - before
        before = server.stats["function_call"]
        server.inject_faults("function_call", [Fault.reply(503, BUSY)])
        try:
            await user.functions.sum(1, 2)
        except ServiceError:
            pass
        function_attempts = server.stats["function_call"] - before
    policy = RetryPolicy()
    caps = [policy.backoff_cap(n) for n in (2, 3)]
    ok = (attempts == 4 and function_attempts == 1 and abs(sleep.asked[0] - 1.0) < 1e-9
          and all(0 <= a <= c for a, c in zip(sleep.asked[1:], caps, strict=True)))
    return {
        "id": "R3",
        "attack": "profile GET answered 503 (Retry-After: 1), 502, 504, then 200; a function call "
                              "answered 503",
        "test": ("tests/core/test_connectivity.py::test_idempotent_r"
            "eads_ride_out_503_with_retry_after_and_back_off"),
        "figure": f"profile: {attempts} attempts, waits asked {_ms(sleep.asked)} (Retry-After, then full "
                  f"jitter under caps {_ms(caps)}), slept {_ms(sleep.took)}; function call: "
                  f"{function_attempts} attempt",
        "verdict": "met" if ok else "missed",
    }


async def _retry_after_date(server: LocalServer) -> dict[str, Any]:
    sleep = MeasuredSleep()
    async with App(server.app_id, base_url=server.url, retry=RetryPolicy(sleep=sleep)) as app:
        user = await app.log_in(Credentials.anonymous())
        import email.utils

        date = email.utils.formatdate(time.time() + 2, usegmt=True)
        server.inject_faults("api_keys", [Fault.reply(429, headers={"Retry-After": date})])
        await user.api_keys.fetch_all()
    ok = len(sleep.asked) == 1 and 1.0 <= sleep.asked[0] <= 2.0
    return {
        "id": "R3",
        "attack": "API-key list answered 429 with an HTTP-date Retry-After 2 s ahead (1 s resolution)",
        "test": "tests/core/test_retry_policy.py::test_retry_after_seconds_and_http_dates",
        "figure": f"1 retry after {_ms(sleep.took)} (asked {_ms(sleep.asked)})",
        "verdict": "met" if ok else "missed",
    }


async def _stale_connection(server: LocalServer) -> dict[str, Any]:
    location = f"{server.url}/api/client/v2.0/app/{server.app_id}/location"
    login = f"{server.url}/api/client/v2.0/app/{server.app_id}/auth/providers/anon-user/login"
    body = json.dumps({"options": {"device": {}}}).encode()
    headers = {"Content-Type": "application/json"}
    async with AiohttpTransport() as transport:
        await transport.send(Request("GET", location))
        before = server.stats["login"]
        server.inject_faults("login", [Fault.reset()])
        response = await transport.send(Request("POST", login, headers, body))
        stale_attempts = server.stats["login"] - before
    async with AiohttpTransport() as fresh:
        before = server.stats["login"]
        server.inject_faults("login", [Fault.reset()])
        try:
            await fresh.send(Request("POST", login, headers, body))
            fresh_outcome = "answered"
        except TransportError:
            fresh_outcome = "TransportError"
        fresh_attempts = server.stats["login"] - before
    ok = (response.status == 200 and stale_attempts == 2 and fresh_attempts == 1
          and fresh_outcome != "answered")
    return {
        "id": "R5",
        "attack": "connection reset before any response: a POST on a reused keep-alive connection, "
                              "and on a fresh one",
        "test": "tests/adapters/test_stale_connections.py::test_only_once_and_only_on_a_reused_connection",
        "figure": f"reused: {stale_attempts} attempts, answered {response.status}; fresh: "
                  f"{fresh_attempts} attempt, {fresh_outcome}",
        "verdict": "met" if ok else "missed",
    }


async def _timeouts(server: LocalServer) -> dict[str, Any]:
    configured = 1.0
    observed: list[float] = []
    async with App(server.app_id, base_url=server.url, timeout=configured) as app:
        user = await app.log_in(Credentials.anonymous())
        for _ in range(3):
            server.inject_faults("profile", [Fault.hang()])
            started = time.monotonic()
            try:
                await user.refresh_profile()
            except RequestTimeoutError:
                observed.append(time.monotonic() - started)
            server.release_faults()
    worst = max(observed) if observed else float("inf")
    return {
        "id": "R2",
        "attack": "profile GET whose headers never come (server hang), timeout=1 s, default RetryPolicy",
        "test": "tests/core/test_connectivity.py::test_timeouts_are_not_retried_and_fire_on_time",
        "figure": f"fired after {', '.join(f'{v:.3f}' for v in observed)} s (configured {configured:g} s; "
                  "timeouts are not retried by default)",
        "verdict": "met" if len(observed) == 3 and worst <= configured * 1.1 else "missed",
    }


async def _back_online(data: Path) -> dict[str, Any]:
    times: list[float] = []
    probes: list[int] = []
    async with LocalServer(config=_config(), data_dir=data) as server:
        async with App(server.app_id, base_url=server.url) as app:  # the default RetryPolicy
            user = await app.log_in(Credentials.anonymous())
            for outage in (1.0, 3.0, 6.0):
                await server.stop()
                try:
                    await user.refresh_profile()
                except TransportError:
                    pass
                await asyncio.sleep(outage)
                await server.start()
                started = time.monotonic()
                await asyncio.wait_for(app.wait_online(), 30)
                times.append(time.monotonic() - started)
                probes.append(server.stats["location"])
                assert user.connectivity is not None and user.connectivity.state is ConnectivityState.ONLINE
    return {
        "id": "R1",
        "attack": "server stopped for 1, 3 and 6 s while a user is logged in, then started again "
                              "at the same URL",
        "test": "tests/core/test_connectivity.py::test_server_stopped_and_started_again_mid_run",
        "figure": f"back online {', '.join(f'{t:.2f}' for t in times)} s after the restart "
                  "(background probes on the default back-off, 0.5 s doubling to 8 s; "
                  f"median {statistics.median(times):.2f} s)",
        "verdict": "met" if max(times) <= 8.5 else "missed",
    }


async def _down_at_each_step(data: Path) -> dict[str, Any]:
    quick = RetryPolicy(initial_delay=0.05, max_delay=0.1, reconnect=False)
    storage = MemoryStorage()
    cases: dict[str, bool] = {}
    async with LocalServer(config=_config(), data_dir=data) as server:
        url = server.url
        async with App(server.app_id, base_url=url, storage=storage, retry=quick) as app:
            user = await app.log_in(Credentials.anonymous(reuse=False))
            token = user.access_token
            await server.stop()
            for name, call in {
                "profile": user.refresh_profile, "function": lambda: user.functions.sum(1, 2),
                "api keys": user.api_keys.fetch_all, "refresh": user.refresh_access_token,
            }.items():
                try:
                    await call()
                    cases[name] = False
                except TransportError:
                    cases[name] = user.access_token == token and user.is_logged_in
            try:
                await user.log_out()
                cases["logout"] = False
            except TransportError:
                cases["logout"] = user.access_token is None  # R11: wiped locally anyway
            await server.start()
        await server.stop()
        for step in ("location", "login"):
            before = dict(await storage.items(""))
            async with App(server.app_id, base_url=url, storage=storage, retry=quick) as fresh:
                try:
                    await fresh.log_in(Credentials.anonymous())
                    cases[step] = False
                except TransportError:
                    cases[step] = dict(await storage.items("")) == before and not fresh.all_users
        await server.start()
    ok = sum(cases.values())
    return {
        "id": "R1",
        "attack": "server down at each step: location, login, profile, function, API keys, refresh, "
                              "logout",
        "test": "tests/core/test_connectivity.py::test_log_out_while_offline_wipes_tokens_and_connectivity",
        "figure": (f"{ok}/{len(cases)} typed TransportError with state unchanged"
            f" (logout: tokens wiped anyway)"),
        "verdict": "met" if ok == len(cases) else "missed",
    }


async def _fuzz() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from tests.core import test_malformed_bodies as fuzz

    foreign = 0
    typed = 0
    total = 0
    for step, route in fuzz.STEPS.items():
        server = fuzz.FuzzServer()
        storage = MemoryStorage()
        app = App("app", base_url="http://127.0.0.1:1", storage=storage,
                  transport=MockTransport(server.handler))
        user = None if step in fuzz.FRESH_APP else await app.log_in(fuzz.ANA)
        for body in fuzz.bodies(fuzz.VALID[route], fuzz.COUNT, seed=sum(map(ord, step))):
            total += 1
            server.target, server.body = route, body
            try:
                await fuzz.run_step(step, app, user)
            except AppError:
                typed += 1
            except Exception:
                foreign += 1
            else:
                await app.aclose()
                storage = MemoryStorage()
                app = App("app", base_url="http://127.0.0.1:1", storage=storage,
                          transport=MockTransport(server.handler))
                server.target = None
                user = None if step in fuzz.FRESH_APP else await app.log_in(fuzz.ANA)
            server.target = None
        await app.aclose()
    return {
        "id": "R4",
        "attack": f"{fuzz.COUNT:,} generated malformed bodies at each of {len(fuzz.STEPS)} parsing "
                              "steps (nesting bombs incl. b'[' * 200000, truncations, wrong types, bad JWTs)",
        "test": ("tests/core/test_malformed_bodies.py::test_every_ma"
            "lformed_body_is_a_typed_error_and_nothing_is_persisted"),
        "figure": f"{total:,} bodies: {typed:,} typed errors, {total - typed - foreign:,} accepted as valid, "
                  f"{foreign} foreign exceptions",
        "verdict": "met" if foreign == 0 else "missed",
    }


async def _storm(server: LocalServer) -> dict[str, Any]:
    async with App(server.app_id, base_url=server.url) as app:
        user = await app.log_in(Credentials.anonymous())
        await server.revoke_access_tokens(user.id)
        before = server.stats["refresh"]
        await asyncio.gather(*(user.functions.sum(1, 2) for _ in range(64)))
        refreshes = server.stats["refresh"] - before
    return {
        "id": "R7", "attack": "64 concurrent function calls with a revoked access token",
        "test": "tests/core/test_sessions.py",
        "figure": f"{refreshes} refresh request(s)",
        "verdict": "met" if refreshes == 1 else "missed",
    }


async def _all() -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="appusers-network-") as tmp:
        async with LocalServer(config=_config(), data_dir=Path(tmp) / "main") as server:
            for measure in (_backoff_schedule, _retry_after_date, _stale_connection, _timeouts, _storm):
                rows.append(await measure(server))
        rows.append(await _down_at_each_step(Path(tmp) / "down"))
        rows.append(await _back_online(Path(tmp) / "restart"))
    rows.append(await _fuzz())
    return rows


def run() -> list[dict[str, Any]]:
    return asyncio.run(_all())


if __name__ == "__main__":
    for row in run():
        print(f"{row['id']:4} {row['verdict']:7} {row['figure']}")
