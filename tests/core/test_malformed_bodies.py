"""Malformed response bodies at every parsing step (issue 12 item 2, reliability R4).

3,000 generated bodies (tests/core/_bodies.py) are answered, one by one, where each step expects
its document: location, login, the profile at login, a profile refresh, the token refresh, the
API-key reads and creation, a function call and a link. Whatever a body does, the caller gets
an appusers error (0 foreign exceptions, ``RecursionError`` included) and the store is exactly
as it was (a half-parsed session is never persisted). A sample then goes over real loopback HTTP
through the local server's raw-body faults.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from appusers import App, Credentials, User
from appusers.adapters import MemoryStorage, MockTransport
from appusers.errors import AppError
from appusers.server import Fault, LocalServer
from appusers.transport import Request, Response

from ._bodies import bodies, jwt_with_payload

JSON = {"content-type": "application/json"}
COUNT = 3_000


def jwt(sub: str = "u1") -> str:
    now = int(time.time())
    return jwt_with_payload(json.dumps({"sub": sub, "iat": now, "exp": now + 1800}).encode())


KEY = {"_id": "a" * 24, "name": "ci", "disabled": False}
VALID: dict[str, Any] = {
    "location": {"deployment_model": "GLOBAL", "location": "local", "hostname": "http://127.0.0.1:1",
                 "ws_hostname": "ws://127.0.0.1:1"},
    "login": {"user_id": "u1", "access_token": jwt(), "refresh_token": jwt(), "device_id": "d" * 24},
    "profile": {"type": "normal", "identities": [{"id": "x", "provider_type": "local-userpass"}],
                "data": {"email": "ana@example.com", "name": "Ana"}},
    "refresh": {"access_token": jwt()},
    "api_keys": [KEY],
    "api_key": KEY,
    "api_key_created": {**KEY, "key": "k" * 64},
    "function": {"answer": {"$numberLong": "42"}, "when": {"$date": {"$numberLong": "0"}}},
    "link": {"access_token": jwt(), "user_id": "u1"},
}


def route_of(request: Request) -> str:
    path = request.url.split("?", 1)[0]
    if path.endswith("/location"):
        return "location"
    if path.endswith("/login"):
        return "link" if "link=true" in request.url else "login"
    if path.endswith("/auth/profile"):
        return "profile"
    if path.endswith("/auth/session"):
        return "refresh" if request.method == "POST" else "logout"
    if "/auth/api_keys" in path:
        if request.method == "POST":
            return "api_key_created"
        return "api_keys" if path.endswith("/api_keys") else "api_key"
    if path.endswith("/functions/call"):
        return "function"
    return "other"


class FuzzServer:
    """Valid answers everywhere except ``target``, which answers ``body``."""

    def __init__(self) -> None:
        self.target: str | None = None
        self.body = b""
        self.profile_calls = 0

    def handler(self, request: Request) -> Response:
        route = route_of(request)
        if route == self.target:
            return Response(200, JSON, self.body)
        if route in VALID:
            return Response(200, JSON, json.dumps(VALID[route]).encode())
        return Response(204)


#: step name -> the route whose body is fuzzed
STEPS = {
    "location": "location", "login": "login", "profile at login": "profile", "profile refresh": "profile",
    "refresh": "refresh", "api keys": "api_keys", "api key": "api_key", "api key created": "api_key_created",
    "function call": "function", "link": "link",
}
FRESH_APP = ("location", "login", "profile at login")  # steps that start from an App with no user
READS = ("function call", "api keys", "api key", "api key created")  # success changes no state
ANA = Credentials.email_password("ana@example.com", "pw")


async def run_step(step: str, app: App, user: User | None) -> None:
    """The operation that parses the fuzzed document."""
    if step in FRESH_APP:
        await app.log_in(ANA)
        return
    assert user is not None
    operations: dict[str, Callable[[], Awaitable[Any]]] = {
        "profile refresh": user.refresh_profile,
        "refresh": user.refresh_access_token,
        "api keys": user.api_keys.fetch_all,
        "api key": lambda: user.api_keys.fetch("a" * 24),
        "api key created": lambda: user.api_keys.create("ci"),
        "function call": lambda: user.functions.f(1),
        "link": lambda: user.link_credentials(Credentials.email_password("b@example.com", "pw")),
    }
    await operations[step]()


async def snapshot(storage: MemoryStorage) -> dict[str, str]:
    return dict(await storage.items(""))


@pytest.mark.parametrize("step", list(STEPS))
async def test_every_malformed_body_is_a_typed_error_and_nothing_is_persisted(step: str) -> None:
    route = STEPS[step]
    fuzz = FuzzServer()
    foreign: list[tuple[int, str]] = []
    typed = accepted = 0
    app: App | None = None
    user: User | None = None
    storage = MemoryStorage()
    fresh = True
    for index, body in enumerate(bodies(VALID[route], COUNT, seed=sum(map(ord, step)))):
        if fresh:
            # First, and after a body that was accepted (a valid document by chance, or an expired
            # token that makes the next step refresh first): start again from a known state.
            if app is not None:
                await app.aclose()
            storage = MemoryStorage()
            app = App("app", base_url="http://127.0.0.1:1", storage=storage,
                      transport=MockTransport(fuzz.handler))
            if step not in FRESH_APP:
                user = await app.log_in(ANA)
            fresh = False
        before = await snapshot(storage)
        fuzz.target, fuzz.body = route, body
        try:
            await run_step(step, app, user)
        except AppError:
            typed += 1
            assert await snapshot(storage) == before, f"body #{index} {body[:80]!r}: a failed {step} stored"
        except Exception as exc:  # the bug this test exists for
            foreign.append((index, f"{type(exc).__name__}: {body[:60]!r}"))
        else:
            accepted += 1
            fresh = step not in READS
        finally:
            fuzz.target = None
    assert app is not None
    await app.aclose()
    assert foreign == [], f"{len(foreign)} foreign exceptions in {step}, e.g. {foreign[:3]}"
    assert typed + accepted == COUNT
    assert typed > COUNT // 2, (typed, accepted)  # the generator does produce broken bodies


async def test_restoring_what_odd_but_accepted_bodies_stored_never_raises() -> None:
    # A profile that parses but is odd (lone surrogates, deep data) is stored; the next start
    # must read it back without a foreign exception either.
    fuzz = FuzzServer()
    storage = MemoryStorage()
    for index, body in enumerate(bodies(VALID["profile"], 300, seed=7)):
        async with App("app", base_url="http://127.0.0.1:1", storage=storage,
                       transport=MockTransport(fuzz.handler)) as app:
            fuzz.target, fuzz.body = "profile", body
            try:
                user = await app.log_in(ANA)
            except AppError:
                continue
            finally:
                fuzz.target = None
            assert user.profile.data is not None
        async with App("app", base_url="http://127.0.0.1:1", storage=storage,
                       transport=MockTransport(fuzz.handler)) as restored:
            again = restored.all_users["u1"]
            assert again.profile is not None and again.identities is not None, index
            assert isinstance(again.custom_data, dict)


SAMPLE = [b"[" * 200_000, b'{"user_id": ' + b"[" * 5000, b"{not json", b"\xff\xfe", b"[]", b"null",
          b'{"access_token": "a.b.c"}', b"NaN", b'{"hostname": 5}', b'{"identities": {}, "data": []}']


@pytest.mark.parametrize("route", ["location", "login", "profile", "refresh", "api_keys", "function_call"])
async def test_malformed_bodies_over_real_http(route: str, server: LocalServer) -> None:
    storage = MemoryStorage()
    async with App(server.app_id, base_url=server.url, storage=storage) as app:
        user = None
        if route not in ("location", "login", "profile"):
            user = await app.log_in(Credentials.anonymous())
        before = await snapshot(storage)
        server.inject_faults(route, [Fault.reply(200, raw=body) for body in SAMPLE])
        for body in SAMPLE:
            try:
                if route in ("location", "login", "profile"):
                    await app.log_in(Credentials.anonymous())
                elif route == "refresh":
                    await user.refresh_access_token()  # type: ignore[union-attr]
                elif route == "api_keys":
                    await user.api_keys.fetch_all()  # type: ignore[union-attr]
                else:
                    await user.call_function("sum", 1, 2)  # type: ignore[union-attr]
            except AppError:
                pass
            else:  # only reads may accept a body, and only a well-formed one ("[]" keys, "null" result)
                assert (route in ("api_keys", "function_call") and body in (b"[]", b"null", b"NaN")) or (
                    route == "function_call" and body.startswith(b"{\"")), body[:40]
            assert await snapshot(storage) == before, body[:40]
        assert server.stats[route] >= len(SAMPLE)
