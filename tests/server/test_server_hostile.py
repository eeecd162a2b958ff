"""Issue 9 items 4, 5, 7, 8, 10, 11, 13: what an attacker, a fuzzer and a second user send.

Every test runs a real LocalServer on loopback; the throttle figure over a whole hour uses the
server's own LoginThrottle with a fake clock (the same code, an hour in a few ms).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
from _server_testkit import Api, assert_error, fast, jwt_payload

from appusers.server import LocalServer, ServerConfig, load_config
from appusers.server._address import ClientAddresses
from appusers.server._config import ConfigError, HttpSettings, ScryptSettings, ThrottleSettings
from appusers.server._throttle import LoginThrottle

P = "/api/client/v2.0"


def _with(config: ServerConfig, **changes: Any) -> ServerConfig:
    return attrs.evolve(config, **changes)


def _userpass(config: ServerConfig, **changes: Any) -> ServerConfig:
    assert config.providers.local_userpass is not None
    userpass = attrs.evolve(config.providers.local_userpass, **changes)
    return attrs.evolve(config, providers=attrs.evolve(config.providers, local_userpass=userpass))


# ---------------------------------------------------------------------- item 4: custom data
async def test_large_custom_data_never_locks_its_user_out(
    api: Api, server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for size, in_token in ((9_000, True), (100_000, False)):
        tokens = await api.login()
        blob = "d" * size
        status, _r = await api.call(tokens["access_token"], "set_custom_data", {"blob": blob})
        assert status == 200
        for _round in range(2):  # refresh twice: the same user keeps working
            status, _h, body = await api.request("POST", f"{api.auth}/session", token=tokens["refresh_token"])
            assert status == 201, body
            access = body["access_token"]
            assert len(access) + len("Authorization: Bearer ") < server.config.http.max_header_bytes
            assert ("user_data" in jwt_payload(access)) is in_token
            status, _h, profile = await api.request("GET", f"{api.auth}/profile", token=access)
            assert status == 200, profile
            status, result = await api.call(access, "sum", 1, 2)
            assert status == 200, result
        # The data itself stays readable through its custom-data document.
        status, doc = await api.call(
            access,
            "findOne",
            {"database": "appusers", "collection": "custom_data", "query": {"user_id": tokens["user_id"]}},
            service="mongodb-atlas",
        )
        assert status == 200 and doc["blob"] == blob
    left_out = [r for r in caplog.records if "left out of its access tokens" in r.getMessage()]
    assert len(left_out) == 1  # logged once for the one oversized user, with sizes only
    assert "ddddd" not in caplog.text


async def test_custom_data_cap_is_configurable(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    base = fast(load_config(None))
    config = _with(base, custom_data=attrs.evolve(base.custom_data, max_token_bytes=200))
    async with LocalServer(config=config, data_dir=tmp_path / "d") as srv:
        api = Api(srv, http)
        tokens = await api.login()
        await api.call(tokens["access_token"], "set_custom_data", {"small": "x" * 10})
        _s, _h, body = await api.request("POST", f"{api.auth}/session", token=tokens["refresh_token"])
        assert jwt_payload(body["access_token"])["user_data"]["small"] == "x" * 10
        await api.call(tokens["access_token"], "set_custom_data", {"big": "y" * 300})
        _s, _h, body = await api.request("POST", f"{api.auth}/session", token=tokens["refresh_token"])
        assert "user_data" not in jwt_payload(body["access_token"])


# ---------------------------------------------------------------------- item 5: throttling
async def _hour_of_guessing(settings: ThrottleSettings) -> tuple[int, int, int]:
    """One simulated hour: an attacker at 50 guesses/s from 127.0.0.1 at one account, the owner
    logging in every 30 s from 127.0.0.2 (where they logged in before), an unrelated user every
    60 s from the attacker's own address. Returns (attacker's checked guesses, owner's successes
    out of attempts as a percentage, unrelated user's refusals)."""
    now = [0.0]
    throttle = LoginThrottle(settings, clock=lambda: now[0])
    victim, other = "local-userpass:victim", "local-userpass:other"
    await throttle.succeeded(victim, "127.0.0.2")
    await throttle.succeeded(other, "127.0.0.1")
    checked = owner_ok = owner_tries = other_refused = 0
    step = 1 / 50
    for tick in range(int(3600 / step)):
        now[0] = tick * step
        if await throttle.wait(victim, "127.0.0.1") == 0:
            checked += 1
            await throttle.failed(victim, "127.0.0.1")
        if tick % int(30 / step) == 0:
            owner_tries += 1
            if await throttle.wait(victim, "127.0.0.2") == 0:
                owner_ok += 1
                await throttle.succeeded(victim, "127.0.0.2")
        if tick % int(60 / step) == 0:
            if await throttle.wait(other, "127.0.0.1") == 0:
                await throttle.succeeded(other, "127.0.0.1")
            else:
                other_refused += 1
    return checked, round(100 * owner_ok / owner_tries), other_refused


async def test_an_hour_of_guessing_with_the_default_settings() -> None:
    checked, owner_success, other_refused = await _hour_of_guessing(ThrottleSettings())
    assert checked <= 60, checked
    assert owner_success >= 95
    assert other_refused == 0


async def test_a_distributed_attack_slows_only_unknown_addresses() -> None:
    now = [0.0]
    throttle = LoginThrottle(ThrottleSettings(), clock=lambda: now[0])
    account = "local-userpass:victim"
    await throttle.succeeded(account, "10.0.0.1")  # the owner's usual address
    for i in range(200):  # 200 addresses, one wrong guess each
        now[0] += 0.01
        await throttle.failed(account, f"192.0.2.{i % 250}-{i}")
    assert await throttle.wait(account, "10.0.0.1") == 0  # the owner's device is not slowed
    wait = await throttle.wait(account, "10.0.0.99")  # a new device of the owner waits, bounded
    assert 0 < wait <= ThrottleSettings().account_wide_max_delay


async def test_owner_logs_in_from_another_address_while_attacked(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # A first delay longer than the test, so the count of checked guesses does not depend on speed.
    config = _with(fast(load_config(None)), throttle=ThrottleSettings(base_delay=300, max_delay=300))
    async with LocalServer(config=config, data_dir=tmp_path / "d") as srv:
        api = Api(srv, http)
        await api.confirmed_user("victim@example.com", "right-pass")  # from 127.0.0.1
        await api.confirmed_user("bystander@example.com", "right-pass")  # from 127.0.0.1
        url = f"{api.app}/auth/providers/local-userpass/login"
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with aiohttp.ClientSession(connector=connector) as owner_http:
            owner = Api(srv, owner_http)
            await owner.login("local-userpass", username="victim@example.com", password="right-pass")
            statuses: list[int] = []
            for _ in range(150):  # the attacker: wrong passwords from 127.0.0.1
                status, _h, _b = await api.request(
                    "POST", url, body={"username": "victim@example.com", "password": "wrong-pass"}
                )
                statuses.append(status)
            assert statuses.count(401) == config.throttle.account_free_failures + 1
            assert set(statuses) == {401, 429}
            for _ in range(5):  # the owner, from 127.0.0.2, is never refused
                await owner.login("local-userpass", username="victim@example.com", password="right-pass")
        # and a user who logged in from the attacker's address before is not slowed either
        await api.login("local-userpass", username="bystander@example.com", password="right-pass")


def test_forwarded_headers_only_from_trusted_proxies() -> None:
    from multidict import CIMultiDict

    untrusted = ClientAddresses([])
    xff = CIMultiDict({"X-Forwarded-For": "203.0.113.7"})
    assert untrusted.client("127.0.0.1", xff) == "127.0.0.1"
    proxy = ClientAddresses(["127.0.0.1", "10.0.0.0/8"])
    assert proxy.client("127.0.0.1", xff) == "203.0.113.7"
    assert proxy.client("192.0.2.1", xff) == "192.0.2.1"  # not a proxy: its header is ignored
    # The right-most untrusted hop counts; what the client wrote on the left is ignored.
    chain = CIMultiDict({"X-Forwarded-For": "1.1.1.1, 203.0.113.7, 10.1.2.3"})
    assert proxy.client("127.0.0.1", chain) == "203.0.113.7"
    forwarded = CIMultiDict({"Forwarded": 'for="[2001:db8::1]:4711";proto=https, for=10.0.0.5'})
    assert proxy.client("127.0.0.1", forwarded) == "2001:db8::1"
    for garbage in ("nonsense", "", "999.1.1.1", "\x00"):
        assert proxy.client("127.0.0.1", CIMultiDict({"X-Forwarded-For": garbage})) == "127.0.0.1"
    assert proxy.client(None, xff) == "unknown"


async def test_forwarded_headers_cannot_dodge_the_throttle(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    config = _with(fast(load_config(None)), throttle=ThrottleSettings(address_free_failures=3, base_delay=60))
    async with LocalServer(config=config, data_dir=tmp_path / "d") as srv:
        api = Api(srv, http)
        url = f"{api.app}/auth/providers/local-userpass/login"
        statuses = []
        for i in range(6):  # a new made-up address each time, from an untrusted peer
            status, _h, _b = await api.request(
                "POST",
                url,
                body={"username": f"u{i}@example.com", "password": "wrong-pass"},
                headers={"X-Forwarded-For": f"198.51.100.{i}", "Forwarded": f"for=198.51.100.{i}"},
            )
            statuses.append(status)
        assert statuses[:4] == [401] * 4 and statuses[4:] == [429, 429]
    trusted = _with(config, http=HttpSettings(trusted_proxies=("127.0.0.1",)))
    async with LocalServer(config=trusted, data_dir=tmp_path / "e") as srv:
        api = Api(srv, http)
        url = f"{api.app}/auth/providers/local-userpass/login"
        for i in range(6):  # behind a trusted proxy each forwarded client has its own count
            status, _h, _b = await api.request(
                "POST",
                url,
                body={"username": f"u{i}@example.com", "password": "wrong-pass"},
                headers={"X-Forwarded-For": f"198.51.100.{i}"},
            )
            assert status == 401


# ---------------------------------------------------------------------- item 7: lone surrogates
SURROGATE_CASES: list[tuple[str, str, dict[str, Any], str | None]] = [
    (
        "POST",
        "/app/{app}/auth/providers/local-userpass/login",
        {"username": "u@x.io", "password": "secret1"},
        None,
    ),
    ("POST", "/app/{app}/auth/providers/anon-user/login", {"options": {"device": {"deviceId": "a"}}}, None),
    ("POST", "/app/{app}/auth/providers/api-key/login", {"key": "k"}, None),
    ("POST", "/app/{app}/auth/providers/custom-token/login", {"token": "a.b.c"}, None),
    ("POST", "/app/{app}/auth/providers/custom-function/login", {"username": "fn"}, None),
    ("POST", "/app/{app}/auth/providers/oauth2-google/login", {"authCode": "c"}, None),
    ("POST", "/app/{app}/auth/providers/oauth2-facebook/login", {"accessToken": "t"}, None),
    (
        "POST",
        "/app/{app}/auth/providers/local-userpass/register",
        {"email": "n@x.io", "password": "secret1"},
        None,
    ),
    ("POST", "/app/{app}/auth/providers/local-userpass/confirm", {"token": "t", "tokenId": "i"}, None),
    ("POST", "/app/{app}/auth/providers/local-userpass/confirm/send", {"email": "n@x.io"}, None),
    ("POST", "/app/{app}/auth/providers/local-userpass/reset/send", {"email": "n@x.io"}, None),
    (
        "POST",
        "/app/{app}/auth/providers/local-userpass/reset/call",
        {"email": "n@x.io", "password": "secret1", "arguments": ["success"]},
        None,
    ),
    ("POST", "/auth/api_keys", {"name": "key"}, "refresh"),
    ("POST", "/app/{app}/functions/call", {"name": "echo", "arguments": ["x"]}, "access"),
    (
        "POST",
        "/app/{app}/functions/call",
        {
            "name": "insertOne",
            "service": "mongodb-atlas",
            "arguments": [{"database": "db", "collection": "c", "document": {"k": "v"}}],
        },
        "access",
    ),
]


def _surrogate_variants(body: dict[str, Any]) -> list[str]:
    """``body`` as JSON text with a lone surrogate put in each string value and each key in turn."""
    text = json.dumps(body)
    variants = []
    i = 0
    while True:
        start = text.find('"', i)
        if start < 0:
            break
        end = text.find('"', start + 1)
        variants.append(text[: start + 1] + "\\ud800" + text[start + 1 :])
        i = end + 1
    return variants


@pytest.mark.parametrize(
    ("method", "path", "body", "token"),
    SURROGATE_CASES,
    ids=[
        f"{p.rsplit('/', 2)[-2]}/{p.rsplit('/', 1)[-1]}-{i}"
        for i, (_m, p, _b, _t) in enumerate(SURROGATE_CASES)
    ],
)
async def test_lone_surrogates_in_any_string_field_get_4xx(
    api: Api, method: str, path: str, body: dict[str, Any], token: str | None
) -> None:
    tokens = await api.login()
    bearer = {"access": tokens["access_token"], "refresh": tokens["refresh_token"], None: None}[token]
    url = api.server.url + P + path.replace("{app}", api.server.app_id)
    variants = _surrogate_variants(body)
    assert len(variants) >= 2
    for raw in variants:
        status, headers, answer = await api.request(
            method, url, token=bearer, raw=raw.encode(), headers={"Content-Type": "application/json"}
        )
        assert status == 400, (raw, answer)
        assert headers["Content-Type"] == "application/json"
        assert answer["error_code"] == "BadRequest" and set(answer) == {"error", "error_code", "link"}
    status, _h, _b = await api.request("GET", f"{api.app}/location")
    assert status == 200


async def _raw_exchange(server: LocalServer, data: bytes) -> bytes:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_oversized_and_odd_headers_get_app_services_bodies_and_stay_out_of_logs(
    api: Api, server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tokens = await api.login()
    huge = tokens["access_token"] + "A" * (server.config.http.max_header_bytes + 10)
    status, headers, body = await api.request(
        "GET", f"{api.auth}/profile", headers={"Authorization": f"Bearer {huge}"}
    )
    assert_error(status, body, 400, "BadRequest", "too large")
    assert headers["Content-Type"] == "application/json"
    path = f"{P}/auth/profile".encode()
    for request in (
        b"GET "
        + path
        + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + tokens["access_token"].encode()
        + b"\x00\x01\r\n\r\n",
        b"GET "
        + path
        + b" HTTP/1.1\r\nHost: x\r\nBad Header: "
        + tokens["refresh_token"].encode()
        + b"\r\n\r\n",
        b"GET /" + b"a" * (server.config.http.max_header_bytes + 5) + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
        + bytes(range(64))
        + b"\r\n\r\n",  # TLS to a plain port
    ):
        answer = await _raw_exchange(server, request)
        head, _, payload = answer.partition(b"\r\n\r\n")
        assert head.startswith((b"HTTP/1.1 400", b"HTTP/1.0 400")), answer[:200]
        assert b"Content-Type: application/json" in head
        assert json.loads(payload)["error_code"] == "BadRequest"
    status, _h, _b = await api.request("GET", f"{api.app}/location")
    assert status == 200
    for token in (tokens["access_token"], tokens["refresh_token"]):
        for part in token.split("."):
            assert part[:24] not in caplog.text


# ---------------------------------------------------------------------- item 8: enumeration
ENUMERATION_ROUTES = ("confirm/send", "reset/send", "reset/call", "register")  # register last


async def _answers(api: Api, email: str) -> dict[str, tuple[int, Any]]:
    out = {}
    for action in ENUMERATION_ROUTES:
        body: dict[str, Any] = {"email": email}
        if action in ("register", "reset/call"):
            body["password"] = "another-pass"
        if action == "reset/call":
            body["arguments"] = ["pending"]
        status, headers, answer = await api.request(
            "POST", f"{api.app}/auth/providers/local-userpass/{action}", body=body
        )
        out[action] = (status, answer, headers.get("Content-Type"))
    return out


async def test_known_and_unknown_addresses_get_the_same_answers(api: Api, server: LocalServer) -> None:
    await api.register("pending@example.com", "first-pass")  # registered, not confirmed
    await api.confirmed_user("known@example.com", "first-pass")
    unknown = await _answers(api, "nobody@example.com")
    assert unknown == await _answers(api, "known@example.com")
    assert unknown == await _answers(api, "pending@example.com")
    assert unknown == await _answers(api, "nobody2@example.com")
    assert {status for status, _a, _ct in unknown.values()} <= {201, 204}
    # Registering a taken address changed nothing: the owner's password still works.
    await api.login("local-userpass", username="known@example.com", password="first-pass")
    # A reset function's refusal is answered the same for everybody, too.
    for email in ("known@example.com", "nobody@example.com"):
        status, _h, body = await api.request(
            "POST",
            f"{api.app}/auth/providers/local-userpass/reset/call",
            body={"email": email, "password": "another-pass", "arguments": ["fail"]},
        )
        assert status == 400 and body["error"] == f'failed to reset password for user "{email}"'


async def test_enumeration_prevention_off_restores_app_services_answers(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    config = _userpass(fast(load_config(None)), prevent_user_enumeration=False)
    async with LocalServer(config=config, data_dir=tmp_path / "d") as srv:
        api = Api(srv, http)
        await api.confirmed_user("known@example.com", "first-pass")
        known, unknown = await _answers(api, "known@example.com"), await _answers(api, "nobody@example.com")
        assert [known[a][0] for a in ENUMERATION_ROUTES] == [409, 204, 204, 409]
        assert [unknown[a][0] for a in ENUMERATION_ROUTES] == [404, 404, 404, 201]


async def test_account_routes_are_rate_limited_per_address_and_per_email(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # Refills slow enough that a loaded machine cannot earn a request back during the test.
    throttle = ThrottleSettings(
        userpass_per_address=6, userpass_address_rate=0.001, userpass_per_email=3, userpass_email_rate=0.001
    )
    async with LocalServer(
        config=_with(fast(load_config(None)), throttle=throttle), data_dir=tmp_path / "d"
    ) as srv:
        api = Api(srv, http)
        url = f"{api.app}/auth/providers/local-userpass"
        statuses = [
            (await api.request("POST", f"{url}/reset/send", body={"email": "same@example.com"}))[0]
            for _ in range(4)
        ]
        assert statuses == [204, 204, 204, 429]  # per email
        statuses = [
            (
                await api.request(
                    "POST", f"{url}/register", body={"email": f"r{i}@example.com", "password": "pw1234"}
                )
            )[0]
            for i in range(3)
        ]
        assert statuses == [201, 201, 429]  # per address: 6 requests in all
        status, headers, body = await api.request(
            "POST", f"{url}/confirm/send", body={"email": "x@example.com"}
        )
        assert_error(status, body, 429, "TooManyRequests")
        assert int(headers["Retry-After"]) >= 1
    # A second address is not affected by the first one's requests.
    async with LocalServer(
        config=_with(fast(load_config(None)), throttle=throttle), data_dir=tmp_path / "e"
    ) as srv:
        api = Api(srv, http)
        for i in range(6):
            await api.register(f"a{i}@example.com")
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with aiohttp.ClientSession(connector=connector) as other:
            await Api(srv, other).register("b@example.com")


# ---------------------------------------------------------------------- item 10: CORS
async def test_cors_never_reflects_an_origin_with_credentials(api: Api) -> None:
    for origin in ("https://evil.example", "null", "http://localhost:3000"):
        for method in ("GET", "OPTIONS"):
            _s, headers, _b = await api.request(
                method,
                f"{api.app}/location",
                headers={
                    "Origin": origin,
                    "Access-Control-Request-Method": "GET",
                    "Access-Control-Request-Headers": "X-Evil, Authorization",
                },
            )
            assert headers["Access-Control-Allow-Origin"] == "*"
            assert "Access-Control-Allow-Credentials" not in headers
            if method == "OPTIONS":
                assert "x-evil" not in headers["Access-Control-Allow-Headers"].lower()
                assert headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type, Accept"


async def test_cors_with_configured_origins(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    config = _with(fast(load_config(None)), http=HttpSettings(allowed_origins=("https://app.example",)))
    async with LocalServer(config=config, data_dir=tmp_path / "d") as srv:
        api = Api(srv, http)
        _s, headers, _b = await api.request(
            "GET", f"{api.app}/location", headers={"Origin": "https://app.example"}
        )
        assert headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert headers["Vary"] == "Origin" and "Access-Control-Allow-Credentials" not in headers
        for origin in ("https://evil.example", "https://app.example.evil.example", "null"):
            for method in ("GET", "OPTIONS"):
                _s, headers, _b = await api.request(method, f"{api.app}/location", headers={"Origin": origin})
                assert "Access-Control-Allow-Origin" not in headers


def test_http_settings_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[http]\nallowed_origins = ["https://a.example/"]\ntrusted_proxies = ["10.0.0.0/8"]\n'
        "read_timeout = 2\nmax_connections_per_address = 5\n"
    )
    http = load_config(path).http
    assert http.allowed_origins == ("https://a.example",) and http.trusted_proxies == ("10.0.0.0/8",)
    assert http.read_timeout == 2.0 and http.max_connections_per_address == 5
    for bad in (
        '[http]\ntrusted_proxies = ["not-an-ip"]\n',
        "[http]\nread_timeout = 0\n",
        "[http]\nallowed_origins = [1]\n",
        "[throttle]\nmax_delay = -1\n",
        "[security]\nhash_workers = 0\n",
    ):
        path.write_text(bad)
        with pytest.raises(ConfigError):
            load_config(path)


# ---------------------------------------------------------------------- item 13: hashing pool
async def test_password_hashing_is_bounded_and_never_5xx(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    config = _with(
        fast(load_config(None)), scrypt=ScryptSettings(n=2**14, r=8, p=1, workers=1, max_waiting=2)
    )
    async with LocalServer(config=config, data_dir=tmp_path / "d") as srv:
        api = Api(srv, http)
        await api.confirmed_user("pool@example.com", "right-pass")
        url = f"{api.app}/auth/providers/local-userpass/login"

        async def attempt(i: int) -> int:
            status, _h, _b = await api.request(
                "POST", url, body={"username": f"nobody{i}@example.com", "password": "wrong-pass"}
            )
            return status

        statuses = await asyncio.gather(*(attempt(i) for i in range(12)))
        assert set(statuses) <= {401, 429} and 429 in statuses, statuses  # 1 hashing + 2 waiting at most
        assert statuses.count(401) >= 3
        await api.login("local-userpass", username="pool@example.com", password="right-pass")


async def test_registration_is_throttled_per_address(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    throttle = ThrottleSettings(userpass_per_address=5, userpass_address_rate=0.01)
    async with LocalServer(
        config=_with(fast(load_config(None)), throttle=throttle), data_dir=tmp_path / "d"
    ) as srv:
        api = Api(srv, http)
        url = f"{api.app}/auth/providers/local-userpass/register"
        statuses = [
            (await api.request("POST", url, body={"email": f"bulk{i}@example.com", "password": "pw1234"}))[0]
            for i in range(8)
        ]
        assert statuses == [201] * 5 + [429] * 3
