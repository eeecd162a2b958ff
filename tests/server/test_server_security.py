"""Security and robustness: stored secrets, crafted tokens, throttling, malformed requests, restarts."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
from _server_testkit import Api, assert_error, fast, jwt_payload

from appusers.server import LocalServer, load_config
from appusers.server._config import CustomFunctionSettings, LimitSettings, ThrottleSettings
from appusers.server._errors import ApiError
from appusers.server._throttle import LoginThrottle


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(payload: dict[str, Any], alg: str = "none", key: bytes = b"") -> str:
    header = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = _b64(json.dumps(payload).encode())
    if alg == "none":
        return f"{header}.{body}."
    sig = hmac.new(key, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(sig)}"


async def test_no_plaintext_secrets_in_the_database(api: Api, server: LocalServer) -> None:
    password = "Plaintext-Password-123"
    tokens = await api.confirmed_user("sec@example.com", password)
    _s, _h, key = await api.request(
        "POST", f"{api.auth}/api_keys", token=tokens["refresh_token"], body={"name": "k"}
    )
    mail_token = server.read_outbox()[0]["token"]
    dump = b""
    for path in server.data_dir.glob("users.sqlite3*"):
        dump += path.read_bytes()
    with sqlite3.connect(server.data_dir / "users.sqlite3") as db:
        dump += "\n".join(db.iterdump()).encode()
    for secret in (password, tokens["refresh_token"], key["key"], mail_token):
        assert secret.encode() not in dump
    assert b"scrypt$" in dump
    assert oct((server.data_dir / "users.sqlite3").stat().st_mode & 0o777) == "0o600"


async def test_crafted_tokens_are_rejected(api: Api) -> None:
    tokens = await api.login()
    claims = jwt_payload(tokens["access_token"])
    refresh_claims = jwt_payload(tokens["refresh_token"])
    crafted = [
        _forge(claims, "none"),  # alg none
        _forge({**claims, "exp": int(time.time()) + 99999}, "HS256", b"guessed-secret"),  # wrong key
        tokens["access_token"][:-4] + "AAAA",  # tampered signature
        _forge(claims, "none").rstrip("."),  # two parts
        tokens["refresh_token"],  # wrong kind
    ]
    for bad in crafted:
        status, _h, body = await api.request("GET", f"{api.auth}/profile", token=bad)
        assert_error(status, body, 401, "InvalidSession")
    for bad in [_forge(refresh_claims, "none"), tokens["access_token"]]:
        status, _h, body = await api.request("POST", f"{api.auth}/session", token=bad)
        assert_error(status, body, 401, "InvalidSession")


async def test_expired_access_token(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    config = attrs.evolve(fast(load_config(None)), access_token_lifetime=-10)
    async with LocalServer(config=config, data_dir=tmp_path / "d") as srv:
        api = Api(srv, http)
        tokens = await api.login()
        status, _h, body = await api.request("GET", f"{api.auth}/profile", token=tokens["access_token"])
        assert_error(status, body, 401, "InvalidSession")


async def test_tokens_do_not_cross_data_dirs(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    config = fast(load_config(None))
    async with LocalServer(config=config, data_dir=tmp_path / "a") as a:
        tokens = await Api(a, http).login()
    async with LocalServer(config=config, data_dir=tmp_path / "b") as b:
        status, _h, body = await Api(b, http).request(
            "GET", f"{Api(b, http).auth}/profile", token=tokens["access_token"]
        )
        assert_error(status, body, 401, "InvalidSession")


async def test_throttle_delay_is_bounded() -> None:
    now = [1000.0]
    throttle = LoginThrottle(
        ThrottleSettings(account_free_failures=2, base_delay=1, max_delay=8, window=100), clock=lambda: now[0]
    )
    for _ in range(2):
        await throttle.check("acct", "ip")
        await throttle.failed("acct", "ip")
    await throttle.check("acct", "ip")  # two free failures
    delays = []
    for _ in range(6):
        await throttle.failed("acct", "ip")
        with pytest.raises(ApiError) as info:
            await throttle.check("acct", "ip")
        assert info.value.status == 429
        wait = int(info.value.headers["Retry-After"])
        delays.append(wait)
        now[0] += wait
        await throttle.check("acct", "ip")  # after the delay the real user may try again
    assert delays == [1, 2, 4, 8, 8, 8]
    await throttle.succeeded("acct", "ip")
    await throttle.check("acct", "ip")
    now[0] += 1000  # the window forgets everything
    await throttle.failed("acct", "ip")
    await throttle.check("acct", "ip")


async def test_login_throttling_over_http(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    throttle = ThrottleSettings(account_free_failures=3, address_free_failures=6, base_delay=60, max_delay=60)
    config = attrs.evolve(fast(load_config(None)), throttle=throttle)
    async with LocalServer(config=config, data_dir=tmp_path / "d") as srv:
        api = Api(srv, http)
        await api.confirmed_user("victim@example.com", "right-pass")
        await api.confirmed_user("other@example.com", "right-pass")
        await api.register("new@example.com", "right-pass")  # confirmed below, never logged in here
        mail = [m for m in srv.read_outbox() if m["email"] == "new@example.com"][-1]
        await api.request(
            "POST",
            f"{api.app}/auth/providers/local-userpass/confirm",
            body={"token": mail["token"], "tokenId": mail["tokenId"]},
        )
        url = f"{api.app}/auth/providers/local-userpass/login"
        for _ in range(4):  # 3 free failures, the 4th starts the delay
            status, _h, body = await api.request(
                "POST", url, body={"username": "victim@example.com", "password": "x"}
            )
            assert_error(status, body, 401, "InvalidPassword")
        status, headers, body = await api.request(
            "POST", url, body={"username": "victim@example.com", "password": "right-pass"}
        )
        assert_error(status, body, 429, "TooManyRequests")  # per (account, address)
        assert int(headers["Retry-After"]) <= 60
        await api.login("local-userpass", username="other@example.com", password="right-pass")  # per account
        for _ in range(3):
            await api.request("POST", url, body={"username": f"spray{_}@example.com", "password": "x"})
        # The address is now over its limit: an account it never logged in to waits...
        status, _h, body = await api.request(
            "POST", url, body={"username": "new@example.com", "password": "right-pass"}
        )
        assert_error(status, body, 429, "TooManyRequests")
        # ...but a user who logged in from here before is not slowed by someone else's failures.
        await api.login("local-userpass", username="other@example.com", password="right-pass")


async def test_internal_errors_carry_no_details(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    base = fast(load_config(None))
    providers = attrs.evolve(base.providers, custom_function=CustomFunctionSettings(function="missing_fn"))
    async with LocalServer(config=attrs.evolve(base, providers=providers), data_dir=tmp_path / "d") as srv:
        api = Api(srv, http)
        status, _h, body = await api.request(
            "POST", f"{api.app}/auth/providers/custom-function/login", body={"username": "u"}
        )
        assert status == 500 and body["error_code"] == "InternalServerError"
        assert "Traceback" not in json.dumps(body) and ".py" not in json.dumps(body)


async def test_oversized_body(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    config = attrs.evolve(fast(load_config(None)), limits=LimitSettings(max_body_bytes=1024))
    async with LocalServer(config=config, data_dir=tmp_path / "d") as srv:
        api = Api(srv, http)
        status, headers, body = await api.request(
            "POST",
            f"{api.app}/auth/providers/local-userpass/register",
            body={"email": "big@example.com", "password": "x" * 5000},
        )
        assert_error(status, body, 413, "RequestTooLarge")
        assert headers["Content-Type"] == "application/json"


MALFORMED: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/app/{app}/auth/providers/anon-user/login", {"raw": b"{not json"}),
    ("POST", "/app/{app}/auth/providers/anon-user/login", {"raw": b"[1,2]"}),
    ("POST", "/app/{app}/auth/providers/anon-user/login", {"raw": b"\xff\xfe"}),
    ("POST", "/app/{app}/auth/providers/anon-user/login", {"raw": b'{"x":{"$oid":"nothex"}}'}),
    ("POST", "/app/{app}/auth/providers/local-userpass/login", {"body": {}}),
    ("POST", "/app/{app}/auth/providers/local-userpass/login", {"body": {"username": 5, "password": "x"}}),
    ("POST", "/app/{app}/auth/providers/api-key/login", {"body": {"key": None}}),
    ("POST", "/app/{app}/auth/providers/custom-token/login", {"body": {"token": ["x"]}}),
    ("POST", "/app/{app}/auth/providers/oauth2-google/login", {"body": {}}),
    ("POST", "/app/{app}/auth/providers/oauth2-google/login", {"body": {"id_token": "x"}}),
    ("POST", "/app/{app}/auth/providers/oauth2-apple/login", {"body": {"id_token": "x"}}),
    ("POST", "/app/{app}/auth/providers/bogus/login", {"body": {}}),
    ("POST", "/app/{app}/auth/providers/local-userpass/register", {"body": {"email": "a@b.c"}}),
    (
        "POST",
        "/app/{app}/auth/providers/local-userpass/register",
        {"body": {"email": 1, "password": "abcdefg"}},
    ),
    ("POST", "/app/{app}/auth/providers/local-userpass/confirm", {"body": {}}),
    ("POST", "/app/{app}/auth/providers/local-userpass/reset", {"body": {"password": "abcdefg"}}),
    (
        "POST",
        "/app/{app}/auth/providers/local-userpass/reset/call",
        {"body": {"email": "a@b.c", "password": "abcdefg", "arguments": "x"}},
    ),
    (
        "POST",
        "/app/{app}/auth/providers/other-userpass/register",
        {"body": {"email": "a@b.c", "password": "abcdefg"}},
    ),
    ("POST", "/auth/session", {}),
    ("POST", "/auth/session", {"token": "Bearer"}),
    ("POST", "/auth/session", {"headers": {"Authorization": "Basic abc"}}),
    ("DELETE", "/auth/session", {"token": "x.y.z"}),
    ("GET", "/auth/profile", {"token": "null"}),
    ("GET", "/auth/profile", {"token": "access-as-refresh"}),
    ("DELETE", "/auth/delete", {}),
    ("GET", "/auth/api_keys", {"token": "access"}),
    ("POST", "/auth/api_keys", {"token": "refresh", "raw": b"nope"}),
    ("POST", "/auth/api_keys", {"token": "refresh", "body": {"name": 7}}),
    ("PUT", "/auth/api_keys/abc/explode", {"token": "refresh"}),
    ("POST", "/app/{app}/functions/call", {"token": "access", "raw": b"{"}),
    ("POST", "/app/{app}/functions/call", {"token": "access", "body": {"arguments": []}}),
    ("POST", "/app/{app}/functions/call", {"token": "access", "body": {"name": 5}}),
    ("POST", "/app/{app}/functions/call", {"token": "access", "body": {"name": "sum", "arguments": {}}}),
    ("POST", "/app/{app}/functions/call", {"token": "refresh", "body": {"name": "sum", "arguments": []}}),
    ("GET", "/app/{app}/functions/call?baas_request=!!!", {"token": "access"}),
    ("GET", "/app/{app}/functions/call?baas_request=W10%3D", {"token": "access"}),  # "[]"
    ("GET", "/app/other-app/location", {}),
    ("GET", "/app/{app}/no/such/route", {}),
    ("GET", "/nothing/here", {}),
    ("PATCH", "/auth/profile", {"token": "access"}),
    ("POST", "/_appusers/admin/revoke_sessions", {"body": {"user_id": "x"}}),
    ("POST", "/_appusers/admin/fault", {"headers": {"X-Appusers-Admin": "wrong"}, "body": {}}),
]


@pytest.mark.parametrize(
    ("method", "path", "spec"), MALFORMED, ids=[f"{m} {p} {i}" for i, (m, p, _s) in enumerate(MALFORMED)]
)
async def test_malformed_requests_get_4xx_error_bodies(
    api: Api, method: str, path: str, spec: dict[str, Any]
) -> None:
    tokens = await api.login()
    token = spec.get("token")
    if token == "access":
        token = tokens["access_token"]
    elif token in ("refresh", "access-as-refresh"):
        token = tokens["refresh_token"]
    url = api.server.url + "/api/client/v2.0" + path.replace("{app}", api.server.app_id)
    if path.startswith("/_appusers") or path.startswith("/nothing"):
        url = api.server.url + path
    status, headers, body = await api.request(
        method, url, token=token, body=spec.get("body"), raw=spec.get("raw"), headers=spec.get("headers")
    )
    assert 400 <= status < 500, body
    assert headers["Content-Type"] == "application/json"
    assert set(body) == {"error", "error_code", "link"} and body["error_code"], body


async def test_admin_routes(api: Api, server: LocalServer) -> None:
    admin = {"X-Appusers-Admin": "admin-secret"}
    base = f"{server.url}/_appusers/admin"
    tokens = await api.login()
    await api.register("adm@example.com")
    status, _h, outbox = await api.request("GET", f"{base}/outbox", headers=admin)
    assert status == 200 and outbox[0]["email"] == "adm@example.com"
    status, _h, stats = await api.request("GET", f"{base}/stats", headers=admin)
    assert stats["login"] == 1 and stats["userpass"] == 1  # plain JSON numbers
    status, _h, _b = await api.request(
        "POST", f"{base}/revoke_access_tokens", headers=admin, body={"user_id": tokens["user_id"]}
    )
    assert status == 204
    status, _h, body = await api.request("GET", f"{api.auth}/profile", token=tokens["access_token"])
    assert_error(status, body, 401, "InvalidSession")
    status, _h, _b = await api.request(
        "POST", f"{base}/revoke_sessions", headers=admin, body={"user_id": tokens["user_id"]}
    )
    assert status == 204
    status, _h, body = await api.request("POST", f"{api.auth}/session", token=tokens["refresh_token"])
    assert_error(status, body, 401, "InvalidSession")
    status, _h, _b = await api.request(
        "POST",
        f"{base}/fault",
        headers=admin,
        body={"route": "profile", "status": 500, "body": None, "times": 1},
    )
    assert status == 204
    fresh = await api.login()
    status, headers, body = await api.request("GET", f"{api.auth}/profile", token=fresh["access_token"])
    assert status == 500 and body is None and "Content-Type" not in headers
    status, _h, _b = await api.request("GET", f"{api.auth}/profile", token=fresh["access_token"])
    assert status == 200
    status, _h, body = await api.request("GET", f"{base}/stats")
    assert_error(status, body, 403, "Forbidden")


async def test_admin_routes_absent_without_token(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    async with LocalServer(config=fast(load_config(None)), data_dir=tmp_path / "d") as srv:
        status, _h, body = await Api(srv, http).request(
            "GET", f"{srv.url}/_appusers/admin/stats", headers={"X-Appusers-Admin": ""}
        )
        assert_error(status, body, 404, "NotFound")


async def test_restart_keeps_everything(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    config = fast(load_config(None))
    data = tmp_path / "data"
    async with LocalServer(config=config, data_dir=data) as first:
        api = Api(first, http)
        user = await api.confirmed_user("keep@example.com", "keep-pass")
        _s, _h, key = await api.request(
            "POST", f"{api.auth}/api_keys", token=user["refresh_token"], body={"name": "k"}
        )
        status, _ = await api.call(
            user["access_token"],
            "insertOne",
            {
                "database": "db",
                "collection": "c",
                "document": {"_id": "doc1", "owner_id": user["user_id"], "v": 1},
            },
            service="mongodb-atlas",
        )
        assert status == 200
        await api.register("pending@example.com")
        pending_mail = first.read_outbox()[-1]
    async with LocalServer(config=config, data_dir=data) as second:
        api = Api(second, http)
        # the old access token is still valid: same signing secret, same session
        status, _h, profile = await api.request("GET", f"{api.auth}/profile", token=user["access_token"])
        assert status == 200 and profile["user_id"] == user["user_id"]
        status, _h, _b = await api.request("POST", f"{api.auth}/session", token=user["refresh_token"])
        assert status == 201
        status, _h, keys = await api.request("GET", f"{api.auth}/api_keys", token=user["refresh_token"])
        assert [k["_id"] for k in keys] == [key["_id"]]
        assert (await api.login("api-key", key=key["key"]))["user_id"] == user["user_id"]
        assert (await api.login("local-userpass", username="keep@example.com", password="keep-pass"))[
            "user_id"
        ] == user["user_id"]
        status, doc = await api.call(
            user["access_token"],
            "findOne",
            {"database": "db", "collection": "c", "query": {"_id": "doc1"}},
            service="mongodb-atlas",
        )
        assert doc == {"_id": "doc1", "owner_id": user["user_id"], "v": {"$numberInt": "1"}}
        status, _h, _b = await api.request(
            "POST",
            f"{api.app}/auth/providers/local-userpass/confirm",
            body={"token": pending_mail["token"], "tokenId": pending_mail["tokenId"]},
        )
        assert status == 204
        assert len(second.read_outbox()) == 2


async def test_temp_data_dir_removed_on_close() -> None:
    async with LocalServer(config=fast(load_config(None))) as srv:
        data = srv.data_dir
        assert data.is_dir()
    assert not data.exists()


def _random_value(rng: Any, depth: int = 0) -> Any:
    leaves = [
        None,
        True,
        0,
        -1,
        2**63,
        1.5,
        "",
        "x",
        "s3cret!!",
        "a@b.c",
        [],
        {},
        {"$oid": "zz"},
        {"$oid": "65a1f0c2e4b0a1b2c3d4e5f6"},
        {"$date": "not a date"},
        {"$numberInt": "x"},
        {"$numberLong": "12"},
        {"$binary": {"base64": "!!", "subType": "00"}},
        {"$regex": 5},
        {"$foo": 1},
        {"$gt": 1},
        {"$where": "1"},
        {"$date": {"$numberLong": "1"}},
    ]
    if depth > 2 or rng.random() < 0.4:
        return rng.choice(leaves)
    if rng.random() < 0.5:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    keys = [
        "name",
        "arguments",
        "service",
        "email",
        "password",
        "username",
        "key",
        "token",
        "tokenId",
        "query",
        "database",
        "collection",
        "document",
        "update",
        "filter",
        "options",
        "id_token",
        "authCode",
    ]
    return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


async def test_random_bodies_never_cause_5xx(api: Api) -> None:
    import random

    rng = random.Random(1234)
    tokens = await api.login()
    targets = (
        [
            (f"{api.app}/auth/providers/{p}/login", None)
            for p in (
                "anon-user",
                "local-userpass",
                "api-key",
                "custom-token",
                "custom-function",
                "oauth2-google",
                "oauth2-facebook",
                "oauth2-apple",
            )
        ]
        + [
            (f"{api.app}/auth/providers/local-userpass/{a}", None)
            for a in (
                "register",
                "confirm",
                "confirm/send",
                "confirm/call",
                "reset",
                "reset/send",
                "reset/call",
            )
        ]
        + [
            (f"{api.app}/functions/call", tokens["access_token"]),
            (f"{api.auth}/api_keys", tokens["refresh_token"]),
        ]
    )
    for i in range(400):
        url, token = targets[i % len(targets)]
        body = _random_value(rng)
        if rng.random() < 0.5 and "functions" in url:
            body = {
                "name": rng.choice(["find", "insertOne", "updateOne", "aggregate", "count", "echo", "sum"]),
                "service": rng.choice([None, "mongodb-atlas"]),
                "arguments": [
                    {
                        "database": "d",
                        "collection": "c",
                        "query": _random_value(rng),
                        "document": _random_value(rng),
                        "update": _random_value(rng),
                        "pipeline": _random_value(rng),
                    }
                ],
            }
            body = {k: v for k, v in body.items() if v is not None}
        status, headers, reply = await api.request("POST", url, token=token, raw=json.dumps(body).encode())
        assert status < 500, (url, body, reply)
        if status >= 400:
            assert headers["Content-Type"] == "application/json" and reply["error_code"], (url, body, reply)


HOSTILE_JSON_VALUES: list[Any] = [
    "",
    'quote " backslash \\ slash / ',
    "control \x00\x01\x1f\x7f tab\t newline\n",
    "é ü 中文 \U0001f600",
    "\ud800 lone surrogate",
    "</script><script>",
    0,
    -1,
    2**31,
    -(2**63),
    2**80,
    True,
    False,
    None,
    1.5,
    float("nan"),
    {},
    {"nested": ["a", 1, None, {"b": "\u2028"}]},
    [],
]


@pytest.mark.parametrize("value", HOSTILE_JSON_VALUES, ids=repr)
def test_compact_json_writes_what_json_dumps_writes(value: Any) -> None:
    """The hand-written encoder of tokens and small bodies: byte for byte json.dumps's output."""
    from appusers.server._ejson import compact_json

    doc = {"k": value, "\x00 é\"key": value, "jti": "x"}
    assert compact_json(doc) == json.dumps(doc, separators=(",", ":"))
    assert compact_json({1: value}) == json.dumps({1: value}, separators=(",", ":"))  # type: ignore[dict-item]


def test_a_token_with_hostile_claim_text_round_trips() -> None:
    """Ids and device ids of any text sign and verify to the same claims."""
    from appusers.server._tokens import TokenIssuer

    issuer = TokenIssuer(b"k" * 64, "app", access_lifetime=60, refresh_lifetime=60)
    for text in ("\"'\\", "é\U0001f600", "\x00\n", "a.b.c"):
        token = issuer.access_token(
            user_id=text, session_id=text, device_id=text, generation=2**40, user_data={"x": [text]}
        )
        claims = issuer.verify(token, "access")
        assert (claims.user_id, claims.session_id, claims.device_id) == (text, text, text)
        assert claims.generation == 2**40 and claims.user_data == {"x": [text]}


async def test_oversized_body_in_one_packet_or_in_pieces(tmp_path: Path) -> None:
    """Over the limit is 413 whether the body arrived with the head or trickles in after it."""
    config = attrs.evolve(fast(load_config(None)), limits=LimitSettings(max_body_bytes=1024))
    async with LocalServer(config=config, data_dir=tmp_path / "d") as srv:
        port = int(srv.url.rsplit(":", 1)[1])
        path = f"/api/client/v2.0/app/{srv.app_id}/auth/providers/local-userpass/register"
        for size, pieces in ((1024, 1), (1025, 1), (5000, 1), (1024, 3), (1025, 3)):
            empty = len(json.dumps({"email": "big@example.com", "password": ""}))
            body = json.dumps({"email": "big@example.com", "password": "x" * (size - empty)}).encode()
            assert len(body) == size
            head = (
                f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                if pieces == 1:
                    writer.write(head + body)
                else:
                    writer.write(head)
                    for i in range(pieces):
                        await writer.drain()
                        await asyncio.sleep(0.05)
                        writer.write(body[i * len(body) // pieces : (i + 1) * len(body) // pieces])
                await writer.drain()
                answer = await asyncio.wait_for(reader.read(), 10)
            finally:
                writer.close()
            status_line, _, rest = answer.partition(b"\r\n")
            error = json.loads(rest.partition(b"\r\n\r\n")[2])["error_code"]
            if size <= 1024:  # at the limit: read, then refused for its (too long) password
                assert status_line.split()[1] == b"400" and error == "BadRequest", (size, pieces)
            else:
                assert status_line.split()[1] == b"413" and error == "RequestTooLarge", (size, pieces)
