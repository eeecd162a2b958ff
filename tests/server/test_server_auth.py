"""Login, linking, sessions, profile, deletion and API keys over real loopback HTTP."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import attrs
import jwt
import pytest
from _server_testkit import Api, assert_error, fast, jwt_payload
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from appusers.server import LocalServer, load_config
from appusers.server._config import (
    DEMO_CUSTOM_TOKEN_SECRET,
    DEMO_SERVER_API_KEY,
    CustomTokenSettings,
    MetadataField,
    OpenIdSettings,
)

ISO = {"$oid": "65a1f0c2e4b0a1b2c3d4e5f7"}


# ------------------------------------------------------------------ location & conformance
async def test_location_returns_own_origin(api: Api) -> None:
    status, headers, body = await api.request("GET", f"{api.app}/location")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert body["hostname"] == api.server.url and not body["hostname"].endswith("/")
    assert body["ws_hostname"] == "ws://" + api.server.url.removeprefix("http://")
    assert api.server.stats["location"] == 1


async def test_location_does_not_advertise_device_sync(api: Api) -> None:
    # Device Sync is not provided: the reply names no sync route (docs/migrating.md), and the
    # route a core-based SDK would derive from ws_hostname is not served.
    _status, _headers, body = await api.request("GET", f"{api.app}/location")
    assert set(body) == {"deployment_model", "location", "hostname", "ws_hostname"}
    assert not any("sync" in str(value) for value in body.values()), body
    status, _headers, _body = await api.request("GET", f"{api.app}/realm-sync")
    assert status == 404


async def test_location_for_unknown_app_is_an_error(api: Api) -> None:
    status, _h, body = await api.request("GET", f"{api.server.url}/api/client/v2.0/app/nope/location")
    assert_error(status, body, 404, "AppNotFound")


async def test_login_response_and_token_claims(api: Api) -> None:
    before = int(time.time())
    body = await api.login("anon-user", options={"device": {"platform": "node", "deviceId": ISO}})
    assert set(body) == {"access_token", "refresh_token", "user_id", "device_id"}
    assert body["device_id"] == ISO["$oid"]  # realm-web sends back the device id it was given
    access, refresh = jwt_payload(body["access_token"]), jwt_payload(body["refresh_token"])
    assert len(body["access_token"].split(".")) == 3 and len(body["refresh_token"].split(".")) == 3
    assert access["sub"] == body["user_id"] and access["typ"] == "access"
    assert refresh["sub"] == body["user_id"] and refresh["typ"] == "refresh"
    for claims in (access, refresh):
        assert isinstance(claims["exp"], int) and isinstance(claims["iat"], int)
        assert claims["iat"] >= before
    assert access["exp"] - access["iat"] == 1800
    assert refresh["exp"] - refresh["iat"] == 60 * 24 * 3600
    assert access["baas_device_id"] == ISO["$oid"]
    assert access["user_data"] == {}
    header = json.loads(__import__("base64").urlsafe_b64decode(body["access_token"].split(".")[0] + "=="))
    assert header["alg"] == "HS256"


async def test_new_device_id_when_none_sent(api: Api) -> None:
    body = await api.login("anon-user")
    assert len(body["device_id"]) == 24 and body["device_id"] != "0" * 24


async def test_json_content_type_exact_and_cors_and_no_store(api: Api) -> None:
    tokens = await api.login()
    status, headers, _ = await api.request(
        "GET",
        f"{api.auth}/profile",
        token=tokens["access_token"],
        headers={"Origin": "http://localhost:3000"},
    )
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "no-store"
    assert headers["Access-Control-Allow-Origin"] == "*"  # any origin, never with credentials
    assert "Access-Control-Allow-Credentials" not in headers
    status, headers, body = await api.request("DELETE", f"{api.auth}/session", token=tokens["refresh_token"])
    assert status == 204 and body is None
    assert "Content-Type" not in headers


async def test_cors_preflight(api: Api) -> None:
    status, headers, body = await api.request(
        "OPTIONS",
        f"{api.app}/auth/providers/anon-user/login",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert status == 204 and body is None
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in headers["Access-Control-Allow-Methods"]
    assert "authorization" in headers["Access-Control-Allow-Headers"].lower()


# ------------------------------------------------------------------ providers
async def test_every_provider_logs_in(api: Api, server: LocalServer) -> None:
    await api.confirmed_user("ana@example.com")
    custom = jwt.encode(
        {"sub": "ext-1", "exp": int(time.time()) + 60}, DEMO_CUSTOM_TOKEN_SECRET, algorithm="HS256"
    )
    for provider, payload in [
        ("anon-user", {}),
        ("local-userpass", {"username": "ana@example.com", "password": "s3cret!!"}),
        ("api-key", {"key": DEMO_SERVER_API_KEY}),
        ("custom-token", {"token": custom}),
        ("custom-function", {"username": "fn-user", "pin": {"$numberInt": "1234"}}),
        ("oauth2-google", {"authCode": "demo-google:g-1:g@example.com"}),
        ("oauth2-facebook", {"accessToken": "demo-fb:fb-1:Fay"}),
    ]:
        body = await api.login(provider, provider=provider, options={"device": {"sdk": "JS"}}, **payload)
        status, _h, profile = await api.request("GET", f"{api.auth}/profile", token=body["access_token"])
        assert status == 200
        assert profile["identities"][0]["provider_type"] == provider
        assert all(isinstance(v, str) for v in profile["data"].values())
    assert server.stats["login"] == 8  # 7 providers + the confirmed_user login


async def test_userpass_profile_and_identity_reuse(api: Api) -> None:
    first = await api.confirmed_user("bo@example.com")
    again = await api.login("local-userpass", username="bo@example.com", password="s3cret!!")
    assert again["user_id"] == first["user_id"]
    assert again["refresh_token"] != first["refresh_token"]
    _s, _h, profile = await api.request("GET", f"{api.auth}/profile", token=again["access_token"])
    assert profile["type"] == "normal"
    assert profile["data"] == {"email": "bo@example.com"}
    [identity] = profile["identities"]
    assert identity["provider_type"] == "local-userpass"
    assert identity["provider_data"] == {"email": "bo@example.com"}
    assert isinstance(identity["id"], str) and isinstance(identity["provider_id"], str)


async def test_server_api_key_user_is_type_server(api: Api) -> None:
    body = await api.login("api-key", key=DEMO_SERVER_API_KEY)
    _s, _h, profile = await api.request("GET", f"{api.auth}/profile", token=body["access_token"])
    assert profile["type"] == "server"
    again = await api.login("api-key", key=DEMO_SERVER_API_KEY)
    assert again["user_id"] == body["user_id"]


async def test_login_failures(api: Api) -> None:
    await api.confirmed_user("cy@example.com")
    url = f"{api.app}/auth/providers"
    cases = [
        ("local-userpass", {"username": "cy@example.com", "password": "wrong-pass"}, 401, "InvalidPassword"),
        (
            "local-userpass",
            {"username": "nobody@example.com", "password": "whatever"},
            401,
            "InvalidPassword",
        ),
        ("api-key", {"key": "not-a-key"}, 401, "InvalidPassword"),
        ("custom-token", {"token": "a.b.c"}, 401, "AuthError"),
        ("custom-function", {"nousername": 1}, 401, "AuthError"),
        ("oauth2-facebook", {"accessToken": "bogus"}, 401, "AuthError"),
        ("oauth2-google", {"authCode": "bogus"}, 401, "AuthError"),
        ("no-such-provider", {}, 404, "AuthProviderNotFound"),
    ]
    for provider, payload, want, code in cases:
        status, _h, body = await api.request("POST", f"{url}/{provider}/login", body=payload)
        assert_error(status, body, want, code)
    status, _h, body = await api.request(
        "POST", f"{url}/local-userpass/login", body={"username": "cy@example.com", "password": "wrong-pass"}
    )
    assert body["error"] == "unauthorized"


async def test_unconfirmed_user_cannot_log_in(api: Api) -> None:
    await api.register("dee@example.com")
    status, _h, body = await api.request(
        "POST",
        f"{api.app}/auth/providers/local-userpass/login",
        body={"username": "dee@example.com", "password": "s3cret!!"},
    )
    assert_error(status, body, 401, "InvalidPassword", "confirmation required")


async def test_disabled_provider(tmp_path: Path, http) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        'app_id = "only-anon"\n[providers.anon-user]\n[providers.local-userpass]\nenabled = false\n'
    )
    async with LocalServer(config=fast(load_config(cfg)), data_dir=tmp_path / "d") as srv:
        api = Api(srv, http)
        assert srv.app_id == "only-anon"
        await api.login()
        status, _h, body = await api.request(
            "POST", f"{api.app}/auth/providers/local-userpass/login", body={"username": "a", "password": "b"}
        )
        assert_error(status, body, 404, "AuthProviderNotFound")


def _rsa_jwks(tmp_path: Path) -> tuple[bytes, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk["kid"] = "k1"
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    return pem, path


async def test_openid_and_rs256_custom_token(tmp_path: Path, http) -> None:  # type: ignore[no-untyped-def]
    pem, jwks = _rsa_jwks(tmp_path)
    public = (
        serialization.load_pem_private_key(pem, None)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    base = fast(load_config(None))
    providers = attrs.evolve(
        base.providers,
        oauth2_google=OpenIdSettings(client_id="gid", jwks_path=jwks),
        oauth2_apple=OpenIdSettings(client_id="aid", jwks_path=jwks),
        custom_token=CustomTokenSettings(
            algorithm="RS256",
            key=public,
            audience="my-app",
            metadata_fields=(
                MetadataField("profile.name", "name"),
                MetadataField("tier", "tier", required=True),
            ),
        ),
    )
    now = int(time.time())

    def sign(claims: dict) -> str:  # type: ignore[type-arg]
        return jwt.encode(
            {"iat": now, "exp": now + 60, **claims}, pem, algorithm="RS256", headers={"kid": "k1"}
        )

    async with LocalServer(config=attrs.evolve(base, providers=providers), data_dir=tmp_path / "d") as srv:
        api = Api(srv, http)
        g = await api.login(
            "oauth2-google",
            id_token=sign(
                {
                    "sub": "g-9",
                    "aud": "gid",
                    "iss": "https://accounts.google.com",
                    "email": "g@x.io",
                    "given_name": "G",
                }
            ),
        )
        _s, _h, profile = await api.request("GET", f"{api.auth}/profile", token=g["access_token"])
        assert profile["data"] == {"email": "g@x.io", "first_name": "G"}
        await api.login(
            "oauth2-apple", id_token=sign({"sub": "a-1", "aud": "aid", "iss": "https://appleid.apple.com"})
        )
        bad = [
            (
                "oauth2-apple",
                {"id_token": sign({"sub": "a-1", "aud": "other", "iss": "https://appleid.apple.com"})},
            ),
            ("oauth2-google", {"id_token": sign({"sub": "g", "aud": "gid", "iss": "https://evil"})}),
            (
                "oauth2-google",
                {
                    "id_token": jwt.encode(
                        {"sub": "g", "aud": "gid", "iss": "accounts.google.com", "exp": now + 60},
                        "k" * 32,
                        algorithm="HS256",
                    )
                },
            ),
            ("custom-token", {"token": sign({"sub": "c", "aud": "my-app"})}),  # required metadata missing
            ("custom-token", {"token": sign({"sub": "c", "aud": "wrong", "tier": "x"})}),
        ]
        for provider, payload in bad:
            status, _h, body = await api.request(
                "POST", f"{api.app}/auth/providers/{provider}/login", body=payload
            )
            assert_error(status, body, 401, "AuthError")
        c = await api.login(
            "custom-token",
            token=sign({"sub": "c-1", "aud": "my-app", "tier": "gold", "profile": {"name": "Cat"}}),
        )
        _s, _h, profile = await api.request("GET", f"{api.auth}/profile", token=c["access_token"])
        assert profile["data"] == {"name": "Cat", "tier": "gold"}
        assert profile["identities"][0]["id"] == "c-1"


# ------------------------------------------------------------------ linking
async def test_link_adds_identity_and_keeps_user(api: Api, server: LocalServer) -> None:
    anon = await api.login()
    await api.register("eve@example.com")
    mail = server.read_outbox()[-1]
    await api.request(
        "POST",
        f"{api.app}/auth/providers/local-userpass/confirm",
        body={"token": mail["token"], "tokenId": mail["tokenId"]},
    )
    status, _h, body = await api.request(
        "POST",
        f"{api.app}/auth/providers/local-userpass/login?link=true",
        token=anon["access_token"],
        body={"username": "eve@example.com", "password": "s3cret!!", "options": {"device": {}}},
    )
    assert status == 200, body
    assert body["user_id"] == anon["user_id"] and "access_token" in body
    assert server.stats["link"] == 1
    _s, _h, profile = await api.request("GET", f"{api.auth}/profile", token=body["access_token"])
    assert [i["provider_type"] for i in profile["identities"]] == ["anon-user", "local-userpass"]
    assert profile["data"]["email"] == "eve@example.com"
    # the linked credential now logs in as the same user
    again = await api.login("local-userpass", username="eve@example.com", password="s3cret!!")
    assert again["user_id"] == anon["user_id"]


async def test_link_identity_owned_by_other_user_changes_nothing(api: Api) -> None:
    owner = await api.login("custom-function", username="taken")
    other = await api.login()
    status, _h, body = await api.request(
        "POST",
        f"{api.app}/auth/providers/custom-function/login?link=true",
        token=other["access_token"],
        body={"username": "taken"},
    )
    assert_error(status, body, 409, "AccountNameInUse")
    _s, _h, profile = await api.request("GET", f"{api.auth}/profile", token=other["access_token"])
    assert [i["provider_type"] for i in profile["identities"]] == ["anon-user"]
    again = await api.login("custom-function", username="taken")
    assert again["user_id"] == owner["user_id"]


async def test_link_requires_access_token(api: Api) -> None:
    tokens = await api.login()
    url = f"{api.app}/auth/providers/custom-function/login?link=true"
    status, _h, body = await api.request("POST", url, body={"username": "x"})
    assert_error(status, body, 401, "MissingAuthReq", "must authenticate first")
    status, _h, body = await api.request("POST", url, token=tokens["refresh_token"], body={"username": "x"})
    assert_error(status, body, 401, "InvalidSession")
    status, _h, body = await api.request(
        "POST", f"{api.app}/auth/providers/anon-user/login?link=true", token=tokens["access_token"], body={}
    )
    assert_error(status, body, 400, "BadRequest")


# ------------------------------------------------------------------ sessions
async def test_refresh_returns_only_a_new_access_token(api: Api) -> None:
    tokens = await api.login()
    status, headers, body = await api.request("POST", f"{api.auth}/session", token=tokens["refresh_token"])
    assert status == 201 and set(body) == {"access_token"}
    assert headers["Content-Type"] == "application/json"
    assert jwt_payload(body["access_token"])["sub"] == tokens["user_id"]
    # not rotated: the same refresh token keeps working
    status, _h, _b = await api.request("POST", f"{api.auth}/session", token=tokens["refresh_token"])
    assert status == 201


async def test_refresh_with_bad_tokens(api: Api) -> None:
    tokens = await api.login()
    for token in ["garbage", "null", "", tokens["access_token"], "a.b.c"]:
        status, _h, body = await api.request("POST", f"{api.auth}/session", token=token)
        assert_error(status, body, 401, "InvalidSession")


async def test_logout_revokes_session_and_its_access_tokens(api: Api) -> None:
    tokens = await api.login()
    status, _h, _b = await api.request("DELETE", f"{api.auth}/session", token=tokens["refresh_token"])
    assert status == 204
    status, _h, body = await api.request("POST", f"{api.auth}/session", token=tokens["refresh_token"])
    assert_error(status, body, 401, "InvalidSession")
    status, _h, body = await api.request("GET", f"{api.auth}/profile", token=tokens["access_token"])
    assert_error(status, body, 401, "InvalidSession")
    status, _h, body = await api.request("DELETE", f"{api.auth}/session", token=tokens["refresh_token"])
    assert_error(status, body, 401, "InvalidSession", "failed to find refresh token")
    status, _h, body = await api.request("DELETE", f"{api.auth}/session", token="unknown")
    assert_error(status, body, 401, "InvalidSession", "failed to find refresh token")


async def test_other_sessions_survive_a_logout(api: Api) -> None:
    first = await api.login("custom-function", username="multi")
    second = await api.login("custom-function", username="multi")
    await api.request("DELETE", f"{api.auth}/session", token=first["refresh_token"])
    status, _h, _b = await api.request("GET", f"{api.auth}/profile", token=second["access_token"])
    assert status == 200


async def test_profile_needs_an_access_token(api: Api) -> None:
    tokens = await api.login()
    status, _h, body = await api.request("GET", f"{api.auth}/profile")
    assert_error(status, body, 401, "MissingAuthReq", "must authenticate first")
    for token in ["null", "", "x.y.z", tokens["refresh_token"]]:
        status, _h, body = await api.request("GET", f"{api.auth}/profile", token=token)
        assert_error(status, body, 401, "InvalidSession")


async def test_delete_user(api: Api) -> None:
    tokens = await api.confirmed_user("fox@example.com")
    status, headers, body = await api.request("DELETE", f"{api.auth}/delete", token=tokens["access_token"])
    assert status == 204 and body is None and "Content-Type" not in headers
    status, _h, body = await api.request("GET", f"{api.auth}/profile", token=tokens["access_token"])
    assert_error(status, body, 401, "InvalidSession")
    status, _h, body = await api.request("DELETE", f"{api.auth}/session", token=tokens["refresh_token"])
    assert_error(status, body, 401, "InvalidSession", "failed to find refresh token")
    status, _h, body = await api.request(
        "POST",
        f"{api.app}/auth/providers/local-userpass/login",
        body={"username": "fox@example.com", "password": "s3cret!!"},
    )
    assert_error(status, body, 401, "InvalidPassword")
    await api.register("fox@example.com")  # the address is free again


async def test_revoke_hooks(api: Api, server: LocalServer) -> None:
    tokens = await api.login()
    await server.revoke_access_tokens(tokens["user_id"])
    status, _h, body = await api.request("GET", f"{api.auth}/profile", token=tokens["access_token"])
    assert_error(status, body, 401, "InvalidSession")
    status, _h, body = await api.request("POST", f"{api.auth}/session", token=tokens["refresh_token"])
    assert status == 201
    status, _h, _b = await api.request("GET", f"{api.auth}/profile", token=body["access_token"])
    assert status == 200
    await server.revoke_sessions(tokens["user_id"])
    status, _h, body = await api.request("POST", f"{api.auth}/session", token=tokens["refresh_token"])
    assert_error(status, body, 401, "InvalidSession")


async def test_inject_fault(api: Api, server: LocalServer) -> None:
    server.inject_fault("login", 503, {"error": "down", "error_code": "MaintenanceInProgress"}, times=2)
    for _ in range(2):
        status, _h, body = await api.request("POST", f"{api.app}/auth/providers/anon-user/login", body={})
        assert status == 503 and body["error_code"] == "MaintenanceInProgress"
    await api.login()
    server.inject_fault("refresh", 502, None)
    tokens = await api.login()
    status, headers, body = await api.request("POST", f"{api.auth}/session", token=tokens["refresh_token"])
    assert status == 502 and body is None and "Content-Type" not in headers
    with pytest.raises(ValueError):
        server.inject_fault("nope", 500, None)


# ------------------------------------------------------------------ API keys
async def test_api_key_lifecycle(api: Api) -> None:
    tokens = await api.login("custom-function", username="keyed")
    refresh = tokens["refresh_token"]
    status, _h, created = await api.request(
        "POST", f"{api.auth}/api_keys", token=refresh, body={"name": "ci"}
    )
    assert status == 201, created
    assert set(created) == {"_id", "key", "name", "disabled"}
    assert isinstance(created["_id"], str) and len(created["_id"]) == 24
    assert created["disabled"] is False and len(created["key"]) >= 32
    status, _h, listed = await api.request("GET", f"{api.auth}/api_keys", token=refresh)
    assert status == 200 and listed == [{"_id": created["_id"], "name": "ci", "disabled": False}]
    key_url = f"{api.auth}/api_keys/{created['_id']}"
    status, _h, fetched = await api.request("GET", key_url, token=refresh)
    assert status == 200 and "key" not in fetched
    # the key logs in as its owner
    via_key = await api.login("api-key", key=created["key"])
    assert via_key["user_id"] == tokens["user_id"]
    status, headers, body = await api.request("PUT", f"{key_url}/disable", token=refresh)
    assert status == 204 and body is None and "Content-Type" not in headers
    status, _h, body = await api.request(
        "POST", f"{api.app}/auth/providers/api-key/login", body={"key": created["key"]}
    )
    assert_error(status, body, 401, "InvalidPassword")
    status, _h, _b = await api.request("PUT", f"{key_url}/enable", token=refresh)
    assert status == 204
    await api.login("api-key", key=created["key"])
    status, _h, dup = await api.request("POST", f"{api.auth}/api_keys", token=refresh, body={"name": "ci"})
    assert_error(status, dup, 409, "APIKeyAlreadyExists")
    status, _h, _b = await api.request("DELETE", key_url, token=refresh)
    assert status == 204
    status, _h, body = await api.request("GET", key_url, token=refresh)
    assert_error(status, body, 404, "APIKeyNotFound", "API key not found")


async def test_api_keys_are_per_user_and_need_refresh_token(api: Api) -> None:
    alice = await api.login("custom-function", username="alice")
    bob = await api.login("custom-function", username="bob")
    _s, _h, key = await api.request(
        "POST", f"{api.auth}/api_keys", token=alice["refresh_token"], body={"name": "k"}
    )
    for method, suffix in [("GET", ""), ("DELETE", ""), ("PUT", "/enable"), ("PUT", "/disable")]:
        status, _h, body = await api.request(
            method, f"{api.auth}/api_keys/{key['_id']}{suffix}", token=bob["refresh_token"]
        )
        assert_error(status, body, 404, "APIKeyNotFound")
    status, _h, body = await api.request("GET", f"{api.auth}/api_keys/not-an-id", token=bob["refresh_token"])
    assert_error(status, body, 404, "APIKeyNotFound")
    status, _h, body = await api.request("GET", f"{api.auth}/api_keys", token=alice["access_token"])
    assert_error(status, body, 401, "InvalidSession")
    status, _h, body = await api.request(
        "POST", f"{api.auth}/api_keys", token=alice["refresh_token"], body={}
    )
    assert status == 400 and body["error_code"] == "MissingParameter"


async def test_server_key_config_by_digest(tmp_path: Path, http) -> None:  # type: ignore[no-untyped-def]
    digest = hashlib.sha256(b"my-server-key").hexdigest()
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[providers.api-key]\nserver_keys = [{{ name = "ops", key_sha256 = "{digest}" }}]\n')
    async with LocalServer(config=fast(load_config(cfg)), data_dir=tmp_path / "d") as srv:
        api = Api(srv, http)
        body = await api.login("api-key", key="my-server-key")
        _s, _h, profile = await api.request("GET", f"{api.auth}/profile", token=body["access_token"])
        assert profile["type"] == "server" and profile["data"] == {"name": "ops"}


async def test_client_quirks_are_tolerated(api: Api) -> None:
    # realm-web attaches "Bearer null" to email/password routes; core sends a charset and empty bodies
    status, _h, _b = await api.request(
        "POST",
        f"{api.app}/auth/providers/local-userpass/register",
        raw=b'{"email":"q@example.com","password":"s3cret!!"}',
        headers={"Authorization": "Bearer null", "Content-Type": "application/json;charset=utf-8"},
    )
    assert status == 201
    tokens = await api.login("anon-user", provider="anon-user", options={"device": {"platform": "Linux"}})
    status, _h, body = await api.request(
        "POST",
        f"{api.auth}/session",
        token=tokens["refresh_token"],
        raw=b"",
        headers={"Content-Type": "application/json;charset=utf-8", "Accept": "application/json"},
    )
    assert status == 201 and "access_token" in body
