"""S19: sessions that must end at once: disabled/deleted users, disabled/deleted API keys, admin log-out.

For each revocation, a real LocalServer on 127.0.0.1 holds a few live sessions (each with an
access token, a refresh token and an open watch stream); after the revocation every token
is tried again and the stream is read until it ends. The figure is the number of requests
served after the revocation (target 0) and the time the streams took to end. One row per
revocation, in the shape ``benchmarks/reliability.py`` collects (``run() -> list[dict]``).

    python benchmarks/attacks_revocation.py
"""

from __future__ import annotations

import asyncio
import base64
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import attrs

from appusers.server import LocalServer, load_config
from appusers.server._config import AdminKey, AdminSettings, ScryptSettings

P = "/api/client/v2.0"
A = "/api/admin/v3.0"
PUBLIC, PRIVATE = "revoker1", "0b6f5a2e-1c3d-4e5f-8a9b-0c1d2e3f4a5b"
PASSWORD = "s3cret-pass"
SESSIONS = 3
T = "tests/server/test_admin_api.py"


class _Run:
    def __init__(self, server: LocalServer, http: aiohttp.ClientSession) -> None:
        self.server, self.http = server, http
        self.app = f"{server.url}{P}/app/{server.app_id}"
        self.admin_app = f"{server.url}{A}/groups/{server.group_id}/apps/{server.app_object_id}"
        self.admin_token = ""

    async def req(self, method: str, url: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.request(method, url, json=body, headers=headers) as resp:
            text = await resp.read()
            return resp.status, (json.loads(text) if text else None)

    async def admin_login(self) -> None:
        status, body = await self.req(
            "POST",
            f"{self.server.url}{A}/auth/providers/mongodb-cloud/login",
            body={"username": PUBLIC, "apiKey": PRIVATE},
        )
        assert status == 200, body
        self.admin_token = body["access_token"]

    async def login(self, provider: str, **body: Any) -> dict[str, Any]:
        status, data = await self.req("POST", f"{self.app}/auth/providers/{provider}/login", body=body)
        assert status == 200, data
        return dict(data)

    async def open_watch(self, token: str) -> aiohttp.ClientResponse:
        call = {
            "name": "watch",
            "service": "mongodb-atlas",
            "arguments": [{"database": "appusers", "collection": "revocation"}],
        }
        query = base64.urlsafe_b64encode(json.dumps(call).encode()).decode()
        resp = await self.http.get(
            f"{self.app}/functions/call?baas_request={query}", headers={"Authorization": f"Bearer {token}"}
        )
        assert resp.status == 200
        await resp.content.readline()
        return resp

    async def served_after(self, sessions: list[dict[str, Any]]) -> int:
        """Requests the server still serves with the revoked sessions' tokens."""
        served = 0
        for s in sessions:
            status, _ = await self.req("POST", f"{self.server.url}{P}/auth/session", token=s["refresh_token"])
            served += status < 400
            status, _ = await self.req(
                "POST",
                f"{self.app}/functions/call",
                token=s["access_token"],
                body={"name": "sum", "arguments": [1, 2]},
            )
            served += status < 400
            status, _ = await self.req("GET", f"{self.server.url}{P}/auth/profile", token=s["access_token"])
            served += status < 400
        return served


async def _stream_end(resp: aiohttp.ClientResponse, started: float, budget: float = 5.0) -> float | None:
    """Seconds from ``started`` (the revocation) until the server ended the stream; None: never."""
    try:
        while await asyncio.wait_for(resp.content.readline(), budget):
            pass
    except aiohttp.ClientPayloadError:
        pass
    except TimeoutError:
        return None
    finally:
        resp.release()
    return time.perf_counter() - started


Revoke = Callable[[_Run, dict[str, Any], list[dict[str, Any]]], Awaitable[None]]


async def _attack(name: str, test: str, revoke: Revoke, *, by_key: bool = False) -> dict[str, str]:
    config = attrs.evolve(
        load_config(None),
        admin=AdminSettings(keys=(AdminKey.from_private(PUBLIC, PRIVATE),)),
        scrypt=ScryptSettings(n=2**4, r=1, p=1),
    )
    with tempfile.TemporaryDirectory(prefix="appusers-revocation-") as tmp:
        async with (
            LocalServer(config=config, data_dir=Path(tmp) / "data") as server,
            aiohttp.ClientSession() as http,
        ):
            run = _Run(server, http)
            await run.admin_login()
            email = "victim@example.com"
            status, made = await run.req(
                "POST", f"{run.admin_app}/users", run.admin_token, {"email": email, "password": PASSWORD}
            )
            assert status == 201, made
            owner = await run.login("local-userpass", username=email, password=PASSWORD)
            context = {"owner": owner, "user_id": made["_id"]}
            if by_key:
                status, key = await run.req(
                    "POST", f"{server.url}{P}/auth/api_keys", owner["refresh_token"], {"name": "k"}
                )
                context["key"] = key
                sessions = [await run.login("api-key", key=key["key"]) for _ in range(SESSIONS)]
            else:
                sessions = [owner] + [
                    await run.login("local-userpass", username=email, password=PASSWORD)
                    for _ in range(SESSIONS - 1)
                ]
            streams = [await run.open_watch(s["access_token"]) for s in sessions]
            started = time.perf_counter()
            await revoke(run, context, sessions)
            ends = await asyncio.gather(*(_stream_end(r, started) for r in streams))
            served = await run.served_after(sessions)
    open_streams = sum(e is None for e in ends)
    slowest = max((e for e in ends if e is not None), default=0.0)
    figure = (
        f"{served} of {3 * SESSIONS} requests served after revocation; {open_streams} of {SESSIONS} "
        f"streams still open 5 s later (slowest end {slowest * 1000:.0f} ms)"
    )
    return {
        "id": "S19",
        "attack": name,
        "test": test,
        "figure": figure,
        "verdict": "met" if served == 0 and open_streams == 0 else "missed",
    }


async def _disable(run: _Run, ctx: dict[str, Any], _s: list[dict[str, Any]]) -> None:
    assert (await run.req("PUT", f"{run.admin_app}/users/{ctx['user_id']}/disable", run.admin_token))[
        0
    ] == 204


async def _delete(run: _Run, ctx: dict[str, Any], _s: list[dict[str, Any]]) -> None:
    assert (await run.req("DELETE", f"{run.admin_app}/users/{ctx['user_id']}", run.admin_token))[0] == 204


async def _admin_logout(run: _Run, ctx: dict[str, Any], _s: list[dict[str, Any]]) -> None:
    assert (await run.req("PUT", f"{run.admin_app}/users/{ctx['user_id']}/logout", run.admin_token))[0] == 204


async def _key_disable(run: _Run, ctx: dict[str, Any], _s: list[dict[str, Any]]) -> None:
    url = f"{run.server.url}{P}/auth/api_keys/{ctx['key']['_id']}/disable"
    assert (await run.req("PUT", url, ctx["owner"]["refresh_token"]))[0] == 204


async def _key_delete(run: _Run, ctx: dict[str, Any], _s: list[dict[str, Any]]) -> None:
    url = f"{run.server.url}{P}/auth/api_keys/{ctx['key']['_id']}"
    assert (await run.req("DELETE", url, ctx["owner"]["refresh_token"]))[0] == 204


ATTACKS: list[tuple[str, str, Revoke, bool]] = [
    (
        "user disabled by an admin while 3 sessions and streams are live",
        f"{T}::test_disable_cuts_every_session_at_once_and_enable_restores_login",
        _disable,
        False,
    ),
    (
        "user deleted by an admin while 3 sessions and streams are live",
        f"{T}::test_delete_user_ends_sessions_and_keeps_documents",
        _delete,
        False,
    ),
    (
        "admin log-out (revoke all sessions) while 3 sessions and streams are live",
        f"{T}::test_logout_revokes_every_session_but_not_the_user",
        _admin_logout,
        False,
    ),
    (
        "API key disabled while 3 sessions made with it are live",
        f"{T}::test_disabling_or_deleting_an_api_key_ends_its_sessions[disable]",
        _key_disable,
        True,
    ),
    (
        "API key deleted while 3 sessions made with it are live",
        f"{T}::test_disabling_or_deleting_an_api_key_ends_its_sessions[delete]",
        _key_delete,
        True,
    ),
]


def run() -> list[dict[str, str]]:
    """One S19 row per revocation."""

    async def all_rows() -> list[dict[str, str]]:
        return [await _attack(name, test, revoke, by_key=by_key) for name, test, revoke, by_key in ATTACKS]

    return asyncio.run(all_rows())


if __name__ == "__main__":
    rows = run()
    for r in rows:
        print(f"{r['id']}  {r['verdict']:<6}  {r['attack']}\n        {r['figure']}")
    out = Path(__file__).with_name("results") / "attacks_revocation.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
