"""A property-based fuzz run over every route of a real server (issue 9 item 7, item 11).

Routes are read from the running server's router, so routes added later are fuzzed too (and
a test fails if one was never reached). Each generated example logs in anonymously, then
sends a batch of requests built from the route's method and path with fuzzed path parameters,
query strings, headers (odd, oversized, forged tokens) and bodies (random EJSON with lone
surrogates, huge numbers and deep nesting within reason, near-valid bodies, raw bytes).
Every answer must be below 500, JSON error bodies must have App Services' shape, and the
server must answer ``location`` after each batch. All loggers run at DEBUG meanwhile and
must never show a token, password, API key or the admin token (the canaries).

Size: ``FUZZ_EXAMPLES`` (default 200) x ``BATCH`` (25) requests, ~5,400 in all with the
logins and liveness checks. ``APPUSERS_FUZZ_STATS=path`` writes the run's counts as JSON
(benchmarks/attacks_auth.py reads them for docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
from _server_testkit import fast
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from appusers.server import LocalServer, load_config
from appusers.server._config import ThrottleSettings

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
BATCH = 25
#: Requests per batch drawn field by field through hypothesis strategies (the rest come from
#: a hypothesis-seeded Random, see RandomRequests).
STRUCTURED = 3
ADMIN_TOKEN = "fuzz-admin-token-7f3a9c2e51d84b06"
CANARY_PASSWORD = "Canary-Password-5d1e8f22a9"
PROVIDERS = (
    "anon-user",
    "local-userpass",
    "api-key",
    "custom-token",
    "custom-function",
    "oauth2-google",
    "oauth2-facebook",
    "oauth2-apple",
)
ACTIONS = ("register", "confirm", "confirm/send", "confirm/call", "reset", "reset/send", "reset/call")
KEYS = (
    "username",
    "password",
    "email",
    "key",
    "token",
    "tokenId",
    "id_token",
    "authCode",
    "accessToken",
    "name",
    "arguments",
    "service",
    "options",
    "device",
    "deviceId",
    "user_id",
    "route",
    "status",
    "body",
    "times",
    "database",
    "collection",
    "query",
    "document",
    "update",
    "$oid",
    "$numberInt",
    "$date",
    "$numberLong",
    "$regularExpression",
    "filter",
    "ids",
    "pipeline",
    "",
    "\x00",
    "a.b",
)
FUNCTIONS = ("sum", "echo", "whoami", "set_custom_data", "findOne", "insertOne", "find", "watch", "nope")


# ---------------------------------------------------------------------------- strategies
_text = st.text(
    alphabet=st.one_of(
        st.characters(codec=None, exclude_categories=()),
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=()),  # lone surrogates
    ),
    max_size=16,
)
_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    _text,
    st.sampled_from(["", "null", "undefined", "a" * 300, "0" * 24, "x@y.z", "success", "pending", "fail"]),
)
_json = st.recursive(
    _scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), _text), inner, max_size=4),
    ),
    max_leaves=6,
)


@st.composite
def _near_valid(draw: st.DrawFn) -> dict[str, Any]:
    """A body shaped like a real one, with fuzzed values."""
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return {"username": draw(_text), "password": draw(st.one_of(_text, _scalar))}
    if choice == 1:
        return {"email": draw(st.one_of(_text, _scalar)), "password": draw(_text), "arguments": draw(_json)}
    if choice == 2:
        return {"token": draw(_text), "tokenId": draw(st.one_of(_text, _scalar)), "password": draw(_text)}
    if choice == 3:
        return {"name": draw(st.sampled_from(FUNCTIONS)), "arguments": draw(st.lists(_json, max_size=3))}
    if choice == 4:
        target = {"database": draw(_text), "collection": draw(_text), "query": draw(_json)}
        return {"name": draw(st.sampled_from(FUNCTIONS)), "service": "mongodb-atlas", "arguments": [target]}
    return {"options": {"device": {"deviceId": draw(st.one_of(_text, _scalar))}}, "key": draw(_text)}


@st.composite
def _body(draw: st.DrawFn) -> bytes | None:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return None
    if kind == 1:
        return draw(st.binary(max_size=64))
    if kind == 2:
        depth = draw(st.integers(1, 60))
        return ('{"a":' * depth + '"x"' + "}" * depth).encode()
    value = draw(_near_valid()) if kind < 7 else draw(_json)
    return json.dumps(value).encode()


_header_value = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60),
    st.sampled_from(
        ["Bearer", "Bearer ", "Bearer null", "Basic abc", "bearer a.b.c", "Bearer " + "A" * 9000]
    ),
)


@st.composite
def _request(draw: st.DrawFn, routes: list[tuple[str, str]]) -> dict[str, Any]:
    method, path = draw(st.sampled_from(routes))
    if draw(st.integers(0, 19)) == 0:
        method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]))
    if draw(st.integers(0, 29)) == 0:
        path = "/" + "/".join(draw(st.lists(st.text("abc/%.{}", max_size=6), max_size=4)))
    return {
        "method": method,
        "path": path,
        "params": {
            "app_id": draw(st.sampled_from(["<app>", "<app>", "<app>", "other-app", "%00", ".."])),
            "provider": draw(st.one_of(st.sampled_from(PROVIDERS), st.text("abc-", max_size=8))),
            "action": draw(st.sampled_from(ACTIONS)),
            "toggle": draw(st.sampled_from(["enable", "disable"])),
            "other": draw(st.sampled_from(["<key>", "<user>", "0" * 24, "x", "%ED%A0%80", "a" * 200])),
        },
        "token": draw(
            st.sampled_from(["none", "access", "refresh", "access", "refresh", "garbage", "header"])
        ),
        "header": draw(_header_value),
        "admin": draw(st.sampled_from(["none", "wrong", "right"])),
        "query": draw(
            st.sampled_from(
                ["", "?link=true", "?link=TRUE", "?baas_request=!!!", "?baas_at=x.y.z", "?a=%ED%A0%80"]
            )
        ),
        "body": draw(_body()),
        "content_type": draw(st.sampled_from(["application/json", "application/json", "text/plain", None])),
        "origin": draw(st.sampled_from([None, "https://evil.example", "null"])),
    }


class RandomRequests:
    """The same kinds of requests as the strategies above, drawn from a hypothesis-seeded
    ``random.Random``: about 50x cheaper than drawing each field through hypothesis, which
    keeps ~5,000 requests within the time budget on a loaded machine (hypothesis still
    controls, replays and reports the seed of a failing batch)."""

    SPECIAL = ("", "null", "undefined", "a" * 300, "0" * 24, "x@y.z", "success", "pending", "fail", "\x00")

    def __init__(self, rnd: random.Random, routes: list[tuple[str, str]]):
        self.r = rnd
        self.routes = routes

    def text(self) -> str:
        r = self.r
        if r.random() < 0.3:
            return r.choice(self.SPECIAL)
        out = []
        for _ in range(r.randint(0, 12)):
            kind = r.random()
            if kind < 0.15:
                out.append(chr(r.randint(0xD800, 0xDFFF)))  # a lone surrogate
            elif kind < 0.3:
                out.append(chr(r.randint(0, 0x1F)))
            elif kind < 0.4:
                out.append(chr(r.randint(0x80, 0x10FFFF)) if r.random() < 0.5 else r.choice("$.{}[]\\\"'"))
            else:
                out.append(chr(r.randint(0x20, 0x7E)))
        return "".join(out)

    def scalar(self) -> Any:
        r = self.r
        kind = r.randint(0, 6)
        if kind == 0:
            return None
        if kind == 1:
            return r.random() < 0.5
        if kind == 2:
            return r.choice([0, -1, 2**31, -(2**63), 2**64, 10**30, r.randint(-1000, 1000)])
        if kind == 3:
            return r.choice([0.5, -1e308, 1e-320, r.uniform(-1e6, 1e6)])
        return self.text()

    def json(self, depth: int = 0) -> Any:
        r = self.r
        kind = r.random()
        if depth > 3 or kind < 0.5:
            return self.scalar()
        if kind < 0.7:
            return [self.json(depth + 1) for _ in range(r.randint(0, 3))]
        return {
            (r.choice(KEYS) if r.random() < 0.7 else self.text()): self.json(depth + 1)
            for _ in range(r.randint(0, 3))
        }

    def near_valid(self) -> dict[str, Any]:
        r = self.r
        choice = r.randint(0, 5)
        if choice == 0:
            return {"username": self.text(), "password": r.choice([self.text(), self.scalar()])}
        if choice == 1:
            return {
                "email": r.choice([self.text(), self.scalar()]),
                "password": self.text(),
                "arguments": self.json(),
            }
        if choice == 2:
            return {"token": self.text(), "tokenId": self.scalar(), "password": self.text()}
        if choice == 3:
            return {"name": r.choice(FUNCTIONS), "arguments": [self.json() for _ in range(r.randint(0, 2))]}
        if choice == 4:
            target = {"database": self.text(), "collection": self.text(), "query": self.json()}
            return {"name": r.choice(FUNCTIONS), "service": "mongodb-atlas", "arguments": [target]}
        return {"options": {"device": {"deviceId": self.scalar()}}, "key": self.text()}

    def body(self) -> bytes | None:
        r = self.r
        kind = r.randint(0, 9)
        if kind == 0:
            return None
        if kind == 1:
            return r.randbytes(r.randint(0, 40))
        if kind == 2:
            depth = r.randint(1, 60)
            return ('{"a":' * depth + '"x"' + "}" * depth).encode()
        return json.dumps(self.near_valid() if kind < 7 else self.json()).encode()

    def request(self) -> dict[str, Any]:
        r = self.r
        method, path = r.choice(self.routes)
        if r.random() < 0.05:
            method = r.choice(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
        if r.random() < 0.03:
            path = "/" + "/".join(r.choice(["a", "%", ".", "{x}", "api", ""]) for _ in range(r.randint(0, 4)))
        header = r.choice(
            [
                self.text().encode("ascii", "ignore").decode(),
                "Bearer",
                "Bearer null",
                "Basic abc",
                "Bearer " + "A" * 9000,
            ]
        )
        return {
            "method": method,
            "path": path,
            "params": {
                "app_id": r.choice(["<app>", "<app>", "<app>", "other-app", "%00", ".."]),
                "provider": r.choice((*PROVIDERS, "bogus", "")),
                "action": r.choice(ACTIONS),
                "toggle": r.choice(["enable", "disable"]),
                "other": r.choice(["<key>", "<user>", "0" * 24, "x", "%ED%A0%80", "a" * 200]),
            },
            "token": r.choice(["none", "access", "refresh", "access", "refresh", "garbage", "header"]),
            "header": header,
            "admin": r.choice(["none", "wrong", "right"]),
            "query": r.choice(
                ["", "?link=true", "?link=TRUE", "?baas_request=!!!", "?baas_at=x.y.z", "?a=%ED%A0%80"]
            ),
            "body": self.body(),
            "content_type": r.choice(["application/json", "application/json", "text/plain", None]),
            "origin": r.choice([None, "https://evil.example", "null"]),
        }


# ---------------------------------------------------------------------------- the server
@attrs.define
class Run:
    """A server and a client on a background event loop, plus the run's counts."""

    loop: asyncio.AbstractEventLoop
    server: LocalServer
    http: aiohttp.ClientSession
    routes: list[tuple[str, str]]
    statuses: Counter[int] = attrs.Factory(Counter)
    reached: set[tuple[str, str]] = attrs.Factory(set)
    canaries: set[str] = attrs.Factory(set)
    user_id: str = ""
    key_id: str = ""

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=120)


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def capture() -> Iterator[_Capture]:
    handler = _Capture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old_level)


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory, capture: _Capture) -> Iterator[Run]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    config = attrs.evolve(fast(load_config(None)), throttle=ThrottleSettings(enabled=False))
    server = LocalServer(
        config=config, data_dir=tmp_path_factory.mktemp("fuzz") / "data", admin_token=ADMIN_TOKEN
    )

    async def start() -> Run:
        await server.start()
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        runner = server._runner
        assert runner is not None
        app = runner.app
        routes = sorted(
            {
                (r.method, r.resource.get_info().get("formatter") or r.resource.get_info().get("path", ""))
                for r in app.router.routes()
                if r.method != "HEAD" and r.resource is not None
            }
        )
        return Run(loop=loop, server=server, http=http, routes=routes)

    run = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=60)
    run.canaries.add(ADMIN_TOKEN)
    run.canaries.add(CANARY_PASSWORD)
    run.run(_seed(run))
    yield run

    async def stop() -> None:
        await run.http.close()
        await server.close()

    asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=60)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


async def _seed(run: Run) -> None:
    """A confirmed email user (its password is a canary) with an API key (another canary)."""
    url = f"{run.server.url}/api/client/v2.0/app/{run.server.app_id}/auth/providers/local-userpass"
    email = "canary@example.com"
    async with run.http.post(f"{url}/register", json={"email": email, "password": CANARY_PASSWORD}) as r:
        assert r.status == 201
    mail = run.server.read_outbox()[-1]
    async with run.http.post(
        f"{url}/confirm", json={"token": mail["token"], "tokenId": mail["tokenId"]}
    ) as r:
        assert r.status == 204
    run.canaries.add(mail["token"])
    async with run.http.post(f"{url}/login", json={"username": email, "password": CANARY_PASSWORD}) as r:
        tokens = await r.json()
    run.canaries.update((tokens["access_token"], tokens["refresh_token"]))
    run.user_id = tokens["user_id"]
    async with run.http.post(
        f"{run.server.url}/api/client/v2.0/auth/api_keys",
        json={"name": "canary"},
        headers={"Authorization": f"Bearer {tokens['refresh_token']}"},
    ) as r:
        key = await r.json()
    run.canaries.add(key["key"])
    run.key_id = key["_id"]
    async with run.http.post(
        f"{run.server.url}/api/client/v2.0/app/{run.server.app_id}/auth/providers/api-key/login",
        json={"key": key["key"]},
    ) as r:
        assert r.status == 200


def _url(run: Run, spec: dict[str, Any]) -> str:
    params = dict(spec["params"])
    app_id = params["app_id"].replace("<app>", run.server.app_id)
    other = params["other"].replace("<key>", run.key_id).replace("<user>", run.user_id)
    path = spec["path"]
    for name in ("app_id", "provider", "action", "toggle"):
        path = path.replace("{" + name + "}", app_id if name == "app_id" else params[name])
    while "{" in path and "}" in path[path.index("{") :]:  # parameters of routes added later
        start = path.index("{")
        path = path[:start] + other + path[path.index("}", start) + 1 :]
    return run.server.url + path + spec["query"]


async def _batch(run: Run, specs: list[dict[str, Any]]) -> None:
    app_url = f"{run.server.url}/api/client/v2.0/app/{run.server.app_id}"
    async with run.http.post(f"{app_url}/auth/providers/anon-user/login", json={}) as r:
        assert r.status == 200
        tokens = await r.json()
    run.canaries.update((tokens["access_token"], tokens["refresh_token"]))
    for spec in specs:
        headers: dict[str, str] = {}
        token = {
            "access": tokens["access_token"],
            "refresh": tokens["refresh_token"],
            "garbage": "a.b.c",
        }.get(spec["token"])
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        elif spec["token"] == "header":
            headers["Authorization"] = spec["header"]
        url = _url(run, spec)
        is_fault = "/_appusers/admin/fault" in url
        if spec["admin"] == "right" and not is_fault:  # a valid fault hook injects 5xx by design
            headers["X-Appusers-Admin"] = ADMIN_TOKEN
        elif spec["admin"] == "wrong":
            headers["X-Appusers-Admin"] = "wrong"
        if spec["content_type"]:
            headers["Content-Type"] = spec["content_type"]
        if spec["origin"]:
            headers["Origin"] = spec["origin"]
        try:
            await _send(run, spec, url, headers)
        except ValueError:  # the client itself refused to send it (e.g. a control character)
            run.statuses[0] += 1
    async with run.http.get(f"{app_url}/location") as r:
        assert r.status == 200  # alive after the batch


async def _send(run: Run, spec: dict[str, Any], url: str, headers: dict[str, str]) -> None:
    async with run.http.request(spec["method"], url, data=spec["body"], headers=headers) as resp:
        run.statuses[resp.status] += 1
        ctype = resp.headers.get("Content-Type")
        if ctype == "text/event-stream":
            run.reached.add((spec["method"], spec["path"]))
            return  # a watch that was accepted: leave it
        data = await resp.read()
    if resp.status != 404 or b"route not found" not in data:
        run.reached.add((spec["method"], spec["path"]))
    assert resp.status < 500, (spec, data[:300])
    if resp.status >= 400 and ctype == "application/json":
        body = json.loads(data)
        assert set(body) == {"error", "error_code", "link"}, body
    if resp.status < 300 and ctype == "application/json" and data.startswith(b"{"):
        answer = json.loads(data)
        for field in ("access_token", "refresh_token", "key"):
            if isinstance(answer.get(field), str):
                run.canaries.add(answer[field])


def test_fuzz_every_route(fuzz: Run, capture: _Capture) -> None:
    started = time.monotonic()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        # A failing batch is reported with its seed; shrinking 25 requests took minutes.
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )
    @given(st.lists(_request(fuzz.routes), min_size=STRUCTURED, max_size=STRUCTURED), st.randoms())
    def batch(specs: list[dict[str, Any]], rnd: random.Random) -> None:
        cheap = RandomRequests(rnd, fuzz.routes)
        fuzz.run(_batch(fuzz, specs + [cheap.request() for _ in range(BATCH - STRUCTURED)]))

    batch()
    sent = sum(fuzz.statuses.values())
    fives = sum(n for status, n in fuzz.statuses.items() if status >= 500)
    seconds = time.monotonic() - started
    stats = os.environ.get("APPUSERS_FUZZ_STATS")
    if stats:
        Path(stats).write_text(
            json.dumps(
                {
                    "requests": sent + 2 * EXAMPLES,
                    "fuzzed": sent,
                    "5xx": fives,
                    "seconds": round(seconds, 1),
                    "statuses": {str(k): v for k, v in sorted(fuzz.statuses.items())},
                    "routes": len(fuzz.routes),
                    "reached": len(fuzz.reached),
                    "log_lines": len(capture.lines),
                }
            )
        )
    assert fives == 0
    assert sent >= EXAMPLES * BATCH * 0.9
    unreached = set(fuzz.routes) - fuzz.reached
    assert not unreached, f"routes never answered with anything but 404: {sorted(unreached)}"


def test_no_canary_in_any_log_line(fuzz: Run, capture: _Capture) -> None:
    """Runs after the fuzz run (same module): every log line of every logger at DEBUG."""
    text = "\n".join(capture.lines)
    assert capture.lines, "the fuzz run logged nothing at all: is the capture wired?"
    hits = []
    for canary in fuzz.canaries:
        parts = canary.split(".") if canary.count(".") == 2 else [canary]
        for part in parts:
            for i in range(0, max(1, len(part) - 16), 8):
                window = part[i : i + 16]
                if len(window) >= 12 and window in text:
                    hits.append(window)
    assert hits == []
