"""The Admin API v3 user routes on a real LocalServer: happy paths and hostile input.

Every route is driven over HTTP (aiohttp on 127.0.0.1); nothing is mocked. Time-dependent
behaviour (the anonymous-user purge) runs on a fake clock handed to the server.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import attrs
import jwt
import pytest
from _server_testkit import Api, assert_error, fast, jwt_payload

from appusers.server import LocalServer, ServerConfig, load_config
from appusers.server._admin_auth import AdminAuth
from appusers.server._config import AdminKey, AdminSettings, ConfigError
from appusers.server.rules import NamespaceRule, Role

A = "/api/admin/v3.0"
PUBLIC = "abcdwxyz"
PRIVATE = "9d2b7c1e-0f4a-4b7e-9c3d-5e6f7a8b9c0d"
PASSWORD = "s3cret!!"


#: The stream tests watch one namespace as several users: it gets an explicit, permissive rule
#: (the demo rules would show each user only their own documents). Rules: tests/rules.
OPEN_WATCHED = NamespaceRule(
    database="appusers", collection="w", roles=(Role(name="readAndWriteAll", read=True, write=True),)
)


def admin_config(**changes: Any) -> ServerConfig:
    config = fast(load_config(None))
    changes.setdefault("rules", (*config.rules, OPEN_WATCHED))
    return attrs.evolve(
        config, admin=AdminSettings(keys=(AdminKey.from_private(PUBLIC, PRIVATE),)), **changes
    )


class FakeClock:
    """Epoch seconds that move only when told to."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, days: float) -> None:
        self.now += days * 86400


class Admin:
    """The admin side: log-in and the app routes of one server."""

    def __init__(self, api: Api, server: LocalServer) -> None:
        self.api = api
        self.server = server
        self.base = server.url + A
        self.app = f"{self.base}/groups/{server.group_id}/apps/{server.app_object_id}"
        self.access = ""
        self.refresh = ""

    async def login(self, public: str = PUBLIC, private: str = PRIVATE) -> tuple[int, Any]:
        status, _h, body = await self.api.request(
            "POST",
            f"{self.base}/auth/providers/mongodb-cloud/login",
            body={"username": public, "apiKey": private},
        )
        if status == 200:
            self.access, self.refresh = body["access_token"], body["refresh_token"]
        return status, body

    async def call(
        self, method: str, path: str, *, token: str | None = None, body: Any = None
    ) -> tuple[int, Any]:
        url = path if path.startswith("http") else self.app + path
        status, _h, data = await self.api.request(method, url, token=token or self.access, body=body)
        return status, data


@pytest.fixture
def config() -> ServerConfig:
    return admin_config()


@pytest.fixture
async def admin(api: Api, server: LocalServer) -> Admin:
    a = Admin(api, server)
    status, body = await a.login()
    assert status == 200, body
    return a


async def anonymous(api: Api) -> dict[str, Any]:
    return await api.login("anon-user")


# --------------------------------------------------------------------------- configuration


async def test_without_admin_keys_every_admin_route_is_404(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with LocalServer(config=fast(load_config(None)), data_dir=tmp_path / "d") as server:
        api = Api(server, http)
        g, a = server.group_id, server.app_object_id
        routes = [
            ("POST", "/auth/providers/mongodb-cloud/login", {"username": PUBLIC, "apiKey": PRIVATE}),
            ("POST", "/auth/session", None),
            ("DELETE", "/auth/session", None),
            ("GET", f"/groups/{g}/apps", None),
            ("GET", f"/groups/{g}/apps/{a}/users", None),
            ("POST", f"/groups/{g}/apps/{a}/users", {"email": "x@example.com", "password": PASSWORD}),
            ("GET", f"/groups/{g}/apps/{a}/users/{'0' * 24}", None),
            ("DELETE", f"/groups/{g}/apps/{a}/users/{'0' * 24}", None),
            ("PUT", f"/groups/{g}/apps/{a}/users/{'0' * 24}/disable", None),
            ("GET", f"/groups/{g}/apps/{a}/user_registrations/pending_users", None),
            ("POST", f"/groups/{g}/apps/{a}/user_registrations/by_email/x@example.com/confirm", None),
            ("DELETE", f"/groups/{g}/apps/{a}/user_registrations/by_email/x@example.com", None),
            ("POST", f"/groups/{g}/apps/{a}/x-appusers/purge_anonymous", {}),
        ]
        for method, path, body in routes:
            status, _h, data = await api.request(method, server.url + A + path, body=body, token="x")
            assert_error(status, data, 404, "NotFound")


def test_admin_config_from_toml(tmp_path: Path) -> None:
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps({"public_key": "pub1", "private_key": "priv-one"}))
    path = tmp_path / "c.toml"
    path.write_text(
        '[admin]\nkey_file = "key.json"\npublic_key = "pub2"\nprivate_key = "priv-two"\n'
        "access_lifetime = 60\n"
        "[users]\nanonymous_inactive_days = 30\npurge_interval = 0\n"
    )
    config = load_config(path)
    assert [k.public_key for k in config.admin.keys] == ["pub1", "pub2"]
    # Only digests are kept, and repr shows none.
    assert "priv" not in repr(config) and all(len(k.private_key_sha256) == 64 for k in config.admin.keys)
    assert config.admin.access_token_lifetime == 60
    assert config.anonymous_purge.inactive_days == 30 and config.anonymous_purge.interval == 0
    assert not load_config(None).admin.enabled


@pytest.mark.parametrize(
    "toml",
    [
        '[admin]\npublic_key = "p"\n',
        '[admin]\npublic_key = "p"\nprivate_key = "a"\nprivate_key_sha256 = "' + "0" * 64 + '"\n',
        '[admin]\nprivate_key = "a"\n',
        '[admin]\npublic_key = "p"\nprivate_key_sha256 = "xyz"\n',
        '[admin]\nkey_file = "missing.json"\n',
        '[admin]\npublic_key = 5\nprivate_key = "a"\n',
        "[users]\nanonymous_inactive_days = -1\n",
        '[users]\npurge_interval = "often"\n',
    ],
)
def test_bad_admin_config_is_a_config_error(tmp_path: Path, toml: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert 'a"' not in str(info.value)


@pytest.mark.parametrize(
    "content",
    [
        "",
        "[]",
        '{"public_key": "p"}',
        '{"public_key": "p", "private_key": ""}',
        '{"public_key": "a b", "private_key": "x"}',
        '{"public_key": "p", "private_key": "' + "x" * 300 + '"}',
        "\xff\xfe",
    ],
)
def test_bad_key_file_is_refused_without_echoing_it(tmp_path: Path, content: str) -> None:
    from appusers.server._config import admin_key_from_file

    path = tmp_path / "key.json"
    path.write_text(content, errors="surrogateescape")
    with pytest.raises(ConfigError) as info:
        admin_key_from_file(path)
    assert "xxxxxxxx" not in str(info.value) and str(path) in str(info.value)


# --------------------------------------------------------------------------- session


async def test_login_refresh_and_logout(admin: Admin) -> None:
    status, body = await admin.login()
    assert status == 200 and set(body) == {"access_token", "refresh_token", "user_id", "device_id"}
    assert len(body["user_id"]) == 24 and body["device_id"] == "0" * 24
    claims = jwt_payload(body["access_token"])
    assert claims["typ"] == "access" and claims["baas_domain_id"] == "admin/" + admin.server.group_id
    status, fresh = await admin.call("POST", f"{admin.base}/auth/session", token=admin.refresh)
    assert status == 201 and set(fresh) == {"access_token"}
    status, apps = await admin.call(
        "GET", f"{admin.base}/groups/{admin.server.group_id}/apps", token=fresh["access_token"]
    )
    assert status == 200 and apps[0]["_id"] == admin.server.app_object_id
    # An access token is not a refresh token (App Services' wording).
    status, err = await admin.call("POST", f"{admin.base}/auth/session", token=admin.access)
    assert_error(status, err, 401, "InvalidSession", "incorrect token type")
    status, _ = await admin.call("DELETE", f"{admin.base}/auth/session", token=admin.refresh)
    assert status == 204
    # The session's refresh and access tokens are dead now.
    for token in (admin.refresh,):
        status, err = await admin.call("POST", f"{admin.base}/auth/session", token=token)
        assert_error(status, err, 401, "InvalidSession")
        status, err = await admin.call("DELETE", f"{admin.base}/auth/session", token=token)
        assert_error(status, err, 401, "InvalidSession", "failed to find refresh token")
    for token in (admin.access, fresh["access_token"]):
        status, err = await admin.call("GET", "/users", token=token)
        assert_error(status, err, 401, "InvalidSession")


async def test_wrong_key_pairs_are_refused_alike_and_throttled(api: Api, server: LocalServer) -> None:
    admin = Admin(api, server)
    wrong_private = await admin.login(PUBLIC, "not-the-key")
    unknown_public = await admin.login("nobody00", PRIVATE)
    assert wrong_private == unknown_public  # nothing tells a known public key apart
    assert_error(*wrong_private, 401, "InvalidPassword")
    for _ in range(5):  # 6 failures in all: one past the 5 free ones
        status, body = await admin.login(PUBLIC, "guess")
        assert status in (401, 429)
    # Past the free failures even the right key must wait: the guesses are not checked.
    status, _h, body = await api.request(
        "POST",
        f"{admin.base}/auth/providers/mongodb-cloud/login",
        body={"username": PUBLIC, "apiKey": PRIVATE},
    )
    assert_error(status, body, 429, "TooManyRequests")
    assert "Retry-After" in _h


@pytest.mark.parametrize(
    "payload",
    [
        None,
        {},
        {"username": PUBLIC},
        {"apiKey": PRIVATE},
        {"username": 5, "apiKey": PRIVATE},
        {"username": PUBLIC, "apiKey": ["x"]},
        {"username": "", "apiKey": ""},
        {"username": PUBLIC + "\x00", "apiKey": PRIVATE},
        {"username": "x" * 100_000, "apiKey": "y" * 100_000},
        {"username": "\ud800", "apiKey": PRIVATE},
    ],
)
async def test_malformed_login_bodies(api: Api, server: LocalServer, payload: Any) -> None:
    status, _h, body = await api.request(
        "POST", f"{server.url}{A}/auth/providers/mongodb-cloud/login", body=payload
    )
    assert 400 <= status < 500 and status != 404, body
    assert "access_token" not in body


async def test_login_with_other_provider_or_bad_json(api: Api, server: LocalServer) -> None:
    url = f"{server.url}{A}/auth/providers/local-userpass/login"
    status, _h, body = await api.request("POST", url, body={"username": PUBLIC, "apiKey": PRIVATE})
    assert_error(status, body, 404, "AuthProviderNotFound")
    url = f"{server.url}{A}/auth/providers/mongodb-cloud/login"
    status, _h, body = await api.request("POST", url, raw=b'{"username": ')
    assert_error(status, body, 400, "BadRequest")


async def test_client_and_admin_tokens_do_not_cross(api: Api, admin: Admin) -> None:
    client = await anonymous(api)
    # A client token on admin routes.
    for token in (client["access_token"], client["refresh_token"]):
        status, err = await admin.call("GET", "/users", token=token)
        assert_error(status, err, 401, "InvalidSession")
        status, err = await admin.call("POST", f"{admin.base}/auth/session", token=token)
        assert_error(status, err, 401, "InvalidSession")
    # An admin token on client routes.
    for token in (admin.access, admin.refresh):
        status, _h, err = await api.request("GET", f"{api.auth}/profile", token=token)
        assert_error(status, err, 401, "InvalidSession")
        status, _h, err = await api.request("POST", f"{api.auth}/session", token=token)
        assert_error(status, err, 401, "InvalidSession")
        status, _h, err = await api.request(
            "POST", f"{api.app}/functions/call", token=token, body={"name": "sum", "arguments": [1, 2]}
        )
        assert_error(status, err, 401, "InvalidSession")


async def test_missing_forged_and_expired_admin_tokens(api: Api, admin: Admin, server: LocalServer) -> None:
    status, _h, err = await api.request("GET", admin.app + "/users")
    assert_error(status, err, 401, "MissingAuthReq")
    status, _h, err = await api.request("GET", admin.app + "/users", headers={"Authorization": "Basic abc"})
    assert_error(status, err, 401, "InvalidSession")
    claims = jwt_payload(admin.access)
    forged = [
        "garbage",
        jwt.encode(claims, "not-our-secret-" * 4, algorithm="HS256"),
        _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(claims) + ".",
        admin.access[:-4] + ("AAAA" if not admin.access.endswith("AAAA") else "BBBB"),
        admin.refresh,  # a refresh token where an access token belongs
    ]
    for token in forged:
        status, err = await admin.call("GET", "/users", token=token)
        assert_error(status, err, 401, "InvalidSession")
    # An expired admin access token, minted by the server's own code with a past lifetime.
    store = server._store  # the same store and secret as the running server
    assert store is not None
    expired_auth = AdminAuth(
        settings=attrs.evolve(server.config.admin, access_token_lifetime=-10),
        throttle=server.config.throttle,
        store=store,
        signing_secret=await store.signing_secret(),
        group_id=server.group_id,
    )
    login = await expired_auth.login({"username": PUBLIC, "apiKey": PRIVATE}, "test")
    status, err = await admin.call("GET", "/users", token=login.access_token)
    assert_error(status, err, 401, "InvalidSession", "expired")
    # ... while its refresh token still works (the session is real).
    status, _ = await admin.call("POST", f"{admin.base}/auth/session", token=login.refresh_token)
    assert status == 201


async def test_admin_sessions_end_when_the_key_pair_is_removed(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    data = tmp_path / "data"
    async with LocalServer(config=admin_config(), data_dir=data) as server:
        admin = Admin(Api(server, http), server)
        assert (await admin.login())[0] == 200
        ids = (server.group_id, server.app_object_id)
        tokens = (admin.access, admin.refresh)
    other = AdminKey.from_private("otherkey", "other-private")
    config = attrs.evolve(admin_config(), admin=AdminSettings(keys=(other,)))
    async with LocalServer(config=config, data_dir=data) as server:
        assert (server.group_id, server.app_object_id) == ids  # stable per data directory
        admin = Admin(Api(server, http), server)
        status, err = await admin.call("GET", "/users", token=tokens[0])
        assert_error(status, err, 401, "InvalidSession")
        status, err = await admin.call("POST", f"{admin.base}/auth/session", token=tokens[1])
        assert_error(status, err, 401, "InvalidSession")
        assert (await admin.login())[0] == 401
        assert (await admin.login("otherkey", "other-private"))[0] == 200


# --------------------------------------------------------------------------- apps


async def test_list_apps_for_the_npm_client(admin: Admin, server: LocalServer) -> None:
    for query in ("", "?product=atlas", "?product=standard,atlas"):
        status, apps = await admin.call("GET", f"{admin.base}/groups/{server.group_id}/apps{query}")
        assert status == 200 and len(apps) == 1
        app = apps[0]
        assert app["_id"] == server.app_object_id and app["group_id"] == server.group_id
        assert app["client_app_id"] == server.app_id and app["name"] == server.app_id
        assert {"domain_id", "location", "deployment_model", "product", "last_used", "last_modified"} <= set(
            app
        )
    status, one = await admin.call("GET", "")
    assert status == 200 and one["_id"] == server.app_object_id
    status, err = await admin.call("GET", f"{admin.base}/groups/{server.group_id}/apps?product=../../etc")
    assert_error(status, err, 400, "InvalidParameter")


async def test_other_or_malformed_group_and_app_ids(admin: Admin, server: LocalServer) -> None:
    hostile = ["0" * 24, "..%2F..", "%00", "x" * 5000, "%2e%2e", "GROUP", "%ED%A0%80", server.app_id]
    for part in hostile:
        for path in (
            f"/groups/{part}/apps",
            f"/groups/{part}/apps/{server.app_object_id}/users",
            f"/groups/{server.group_id}/apps/{part}/users",
            f"/groups/{server.group_id}/apps/{part}",
        ):
            status, err = await admin.call("GET", admin.base + path)
            assert 400 <= status < 500 and status != 401, (path, err)
            assert isinstance(err, dict) and "error_code" in err
    # The other server's ids are not this one's.
    status, err = await admin.call("GET", f"{admin.base}/groups/{server.app_object_id}/apps")
    assert_error(status, err, 404, "GroupNotFound")
    status, err = await admin.call(
        "GET", f"{admin.base}/groups/{server.group_id}/apps/{server.group_id}/users"
    )
    assert_error(status, err, 404, "AppNotFound")


# --------------------------------------------------------------------------- users


async def test_users_are_paged_by_50_oldest_first(api: Api, admin: Admin) -> None:
    created = [(await anonymous(api))["user_id"] for _ in range(120)]
    status, page1 = await admin.call("GET", "/users")
    assert status == 200 and [u["_id"] for u in page1] == created[:50]
    status, page2 = await admin.call("GET", f"/users?after={page1[-1]['_id']}")
    assert [u["_id"] for u in page2] == created[50:100]
    status, page3 = await admin.call("GET", f"/users?after={page2[-1]['_id']}&sort=_id&desc=false")
    assert [u["_id"] for u in page3] == created[100:]
    status, last = await admin.call("GET", f"/users?after={created[-1]}")
    assert status == 200 and last == []
    status, newest = await admin.call("GET", "/users?desc=true")
    assert [u["_id"] for u in newest] == created[::-1][:50]
    status, older = await admin.call("GET", f"/users?desc=true&after={newest[-1]['_id']}")
    assert [u["_id"] for u in older] == created[::-1][50:100]


@pytest.mark.parametrize(
    "query",
    [
        "after=zzz",
        "after=" + "a" * 25,
        "after=" + quote("'; DROP TABLE users; --"),
        "after=%00" + "a" * 23,
        "after=" + "0" * 2000,
        "sort=email",
        "desc=maybe",
        "after=" + "A" * 24,
    ],
)
async def test_bad_paging_parameters(admin: Admin, query: str) -> None:
    status, err = await admin.call("GET", f"/users?{query}")
    assert_error(status, err, 400, "InvalidParameter")
    status, _ = await admin.call("GET", "/users")
    assert status == 200  # the table is still there


async def test_user_document(api: Api, admin: Admin) -> None:
    login = await api.confirmed_user("doc@example.com")
    status, user = await admin.call("GET", f"/users/{login['user_id']}")
    assert status == 200
    assert set(user) == {
        "_id",
        "identities",
        "type",
        "creation_date",
        "last_authentication_date",
        "disabled",
        "data",
    }
    assert user["_id"] == login["user_id"] and user["type"] == "normal" and user["disabled"] is False
    assert user["data"] == {"email": "doc@example.com"}
    assert [i["provider_type"] for i in user["identities"]] == ["local-userpass"]
    assert (
        isinstance(user["creation_date"], int) and user["last_authentication_date"] >= user["creation_date"]
    )
    status, server_user = await admin.call("GET", "/users")
    assert [u["_id"] for u in server_user] == [login["user_id"]]


async def test_unknown_or_malformed_user_ids(admin: Admin) -> None:
    hostile = [
        "0" * 24,
        "65a1f2d0e4b0a1b2c3d4e5f6",
        "not-an-id",
        "%00",
        "..%2F..%2Fx",
        "z" * 5000,
        "%ED%A0%80",
        "65A1F2D0E4B0A1B2C3D4E5F6",
        "%27%20OR%201%3D1",
    ]
    for user_id in hostile:
        for method, suffix in (
            ("GET", ""),
            ("DELETE", ""),
            ("PUT", "/disable"),
            ("PUT", "/enable"),
            ("PUT", "/logout"),
        ):
            status, err = await admin.call(method, f"/users/{user_id}{suffix}")
            assert 400 <= status < 500 and status != 401, (user_id, err)
            if user_id in ("0" * 24, "65a1f2d0e4b0a1b2c3d4e5f6", "not-an-id"):
                assert_error(status, err, 404, "UserNotFound")
    status, _ = await admin.call("PUT", f"/users/{'0' * 24}/unknown-action")
    assert status in (404, 405)


async def test_disable_cuts_every_session_at_once_and_enable_restores_login(api: Api, admin: Admin) -> None:
    first = await api.confirmed_user("dis@example.com")
    second = await api.login("local-userpass", username="dis@example.com", password=PASSWORD)
    status, _ = await admin.call("PUT", f"/users/{first['user_id']}/disable")
    assert status == 204
    # Both devices: the next request with any token says UserDisabled.
    for login in (first, second):
        status, _h, err = await api.request("GET", f"{api.auth}/profile", token=login["access_token"])
        assert_error(status, err, 401, "UserDisabled")
        status, call = await api.call(login["access_token"], "sum", 1, 2)
        assert_error(status, call, 401, "UserDisabled")
        status, _h, err = await api.request("POST", f"{api.auth}/session", token=login["refresh_token"])
        assert_error(status, err, 401, "UserDisabled")
    status, _h, err = await api.request(
        "POST",
        f"{api.app}/auth/providers/local-userpass/login",
        body={"username": "dis@example.com", "password": PASSWORD},
    )
    assert_error(status, err, 401, "UserDisabled")
    status, user = await admin.call("GET", f"/users/{first['user_id']}")
    assert user["disabled"] is True
    # Disabling twice is fine; enabling lets it log in again, old sessions stay ended.
    assert (await admin.call("PUT", f"/users/{first['user_id']}/disable"))[0] == 204
    assert (await admin.call("PUT", f"/users/{first['user_id']}/enable"))[0] == 204
    status, _h, err = await api.request("POST", f"{api.auth}/session", token=first["refresh_token"])
    assert_error(status, err, 401, "InvalidSession")
    status, _h, err = await api.request("GET", f"{api.auth}/profile", token=first["access_token"])
    assert_error(status, err, 401, "InvalidSession")
    again = await api.login("local-userpass", username="dis@example.com", password=PASSWORD)
    assert again["user_id"] == first["user_id"]
    # The client's own logout of a disabled user's session still counts as done.
    assert (await admin.call("PUT", f"/users/{first['user_id']}/disable"))[0] == 204
    status, _h, _b = await api.request("DELETE", f"{api.auth}/session", token=again["refresh_token"])
    assert status == 401


async def test_disabled_user_cannot_use_its_api_keys(api: Api, admin: Admin) -> None:
    login = await api.confirmed_user("keys@example.com")
    status, _h, key = await api.request(
        "POST", f"{api.auth}/api_keys", token=login["refresh_token"], body={"name": "k"}
    )
    assert status == 201
    assert (await admin.call("PUT", f"/users/{login['user_id']}/disable"))[0] == 204
    status, _h, err = await api.request(
        "POST", f"{api.app}/auth/providers/api-key/login", body={"key": key["key"]}
    )
    assert_error(status, err, 401, "UserDisabled")


async def test_logout_revokes_every_session_but_not_the_user(api: Api, admin: Admin) -> None:
    first = await anonymous(api)
    status, _ = await admin.call("PUT", f"/users/{first['user_id']}/logout")
    assert status == 204
    status, _h, err = await api.request("POST", f"{api.auth}/session", token=first["refresh_token"])
    assert_error(status, err, 401, "InvalidSession")
    status, _h, err = await api.request("GET", f"{api.auth}/profile", token=first["access_token"])
    assert_error(status, err, 401, "InvalidSession")
    status, user = await admin.call("GET", f"/users/{first['user_id']}")
    assert status == 200 and user["disabled"] is False


async def test_delete_user_ends_sessions_and_keeps_documents(api: Api, admin: Admin) -> None:
    login = await api.confirmed_user("del@example.com")
    status, _ = await api.call(
        login["access_token"],
        "insertOne",
        {
            "database": "appusers",
            "collection": "custom_data",
            "document": {"user_id": login["user_id"], "n": 1},
        },
        service="mongodb-atlas",
    )
    assert status == 200
    assert (await admin.call("DELETE", f"/users/{login['user_id']}"))[0] == 204
    assert_error(*(await admin.call("GET", f"/users/{login['user_id']}")), 404, "UserNotFound")
    assert_error(*(await admin.call("DELETE", f"/users/{login['user_id']}")), 404, "UserNotFound")
    status, _h, err = await api.request("POST", f"{api.auth}/session", token=login["refresh_token"])
    assert_error(status, err, 401, "InvalidSession")
    # The email is free again; the custom-data document stayed (read from the store itself: under
    # the demo rules no other user may read it).
    await api.register("del@example.com")
    found = await admin.server._documents.collection("appusers", "custom_data").find_one(
        {"user_id": login["user_id"]}
    )
    assert found is not None and found["n"] == 1


async def test_create_email_password_user(api: Api, admin: Admin) -> None:
    status, user = await admin.call(
        "POST", "/users", body={"email": "made@example.com", "password": PASSWORD}
    )
    assert status == 201 and user["data"] == {"email": "made@example.com"}
    assert [i["provider_type"] for i in user["identities"]] == ["local-userpass"]
    login = await api.login("local-userpass", username="made@example.com", password=PASSWORD)
    assert login["user_id"] == user["_id"]
    assert_error(
        *(await admin.call("POST", "/users", body={"email": "made@example.com", "password": PASSWORD})),
        409,
        "AccountNameInUse",
    )
    for body in (
        {"email": "x@example.com"},
        {"email": "x@example.com", "password": "short"},
        {"password": PASSWORD},
        {"email": 5, "password": PASSWORD},
        {"email": "a\x00b", "password": PASSWORD},
        {"email": "e" * 400, "password": PASSWORD},
        {"email": "x@example.com", "password": "p" * 129},
    ):
        status, err = await admin.call("POST", "/users", body=body)
        assert 400 <= status < 500, (body, err)
    status, users = await admin.call("GET", "/users")
    assert [u["_id"] for u in users] == [user["_id"]]


# --------------------------------------------------------------------------- pending users


async def test_pending_users_list_confirm_and_delete(api: Api, admin: Admin, server: LocalServer) -> None:
    emails = [f"p{i}@example.com" for i in range(3)]
    for email in emails:
        await api.register(email)
    status, pending = await admin.call("GET", "/user_registrations/pending_users")
    assert status == 200 and [p["login_ids"] for p in pending] == [
        [{"id_type": "email", "id": e}] for e in emails
    ]
    assert all(set(p) == {"_id", "domain_id", "login_ids", "user_id"} and p["user_id"] == "" for p in pending)
    status, rest = await admin.call("GET", f"/user_registrations/pending_users?after={pending[0]['_id']}")
    assert [p["login_ids"][0]["id"] for p in rest] == emails[1:]
    # Confirm by email: the user can log in, the emailed token is void.
    assert (await admin.call("POST", f"/user_registrations/by_email/{quote(emails[0])}/confirm"))[0] == 204
    await api.login("local-userpass", username=emails[0], password=PASSWORD)
    mail = [m for m in server.read_outbox() if m["email"] == emails[0]][-1]
    status, _h, err = await api.request(
        "POST",
        f"{api.app}/auth/providers/local-userpass/confirm",
        body={"token": mail["token"], "tokenId": mail["tokenId"]},
    )
    assert_error(status, err, 400, "UserpassTokenInvalid")
    # Confirmed users are no longer pending: neither confirmable nor deletable here.
    assert_error(
        *(await admin.call("POST", f"/user_registrations/by_email/{emails[0]}/confirm")), 404, "UserNotFound"
    )
    assert_error(
        *(await admin.call("DELETE", f"/user_registrations/by_email/{emails[0]}")), 404, "UserNotFound"
    )
    # Delete: gone, and the address can register again.
    assert (await admin.call("DELETE", f"/user_registrations/by_email/{emails[1]}"))[0] == 204
    status, pending = await admin.call("GET", "/user_registrations/pending_users")
    assert [p["login_ids"][0]["id"] for p in pending] == [emails[2]]
    await api.register(emails[1])


async def test_unknown_or_malformed_pending_emails(api: Api, admin: Admin) -> None:
    await api.register("keep@example.com")
    hostile = [
        "nobody@example.com",
        "..%2F..%2Fusers.sqlite3",
        "a%00b@example.com",
        "x" * 5000,
        "%ED%A0%80",
        "%20lead@example.com",
        "tab%09@example.com",
        "%2E%2E",
        "keep@example.com%00",
    ]
    for email in hostile:
        for method, suffix in (("POST", "/confirm"), ("DELETE", "")):
            status, err = await admin.call(method, f"/user_registrations/by_email/{email}{suffix}")
            assert 400 <= status < 500 and status != 401, (email, err)
    status, pending = await admin.call("GET", "/user_registrations/pending_users")
    assert [p["login_ids"][0]["id"] for p in pending] == ["keep@example.com"]


async def test_bad_pending_paging(admin: Admin) -> None:
    for after in ("nope", "0" * 23, "%00" * 24):
        status, err = await admin.call("GET", f"/user_registrations/pending_users?after={after}")
        assert_error(status, err, 400, "InvalidParameter")


# --------------------------------------------------------------------------- anonymous purge


async def test_anonymous_users_inactive_for_90_days_are_purged(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    config = attrs.evolve(
        admin_config(), anonymous_purge=attrs.evolve(admin_config().anonymous_purge, interval=0)
    )
    async with LocalServer(config=config, data_dir=tmp_path / "d", clock=clock) as server:
        api = Api(server, http)
        idle = await anonymous(api)
        active = await anonymous(api)
        email = await api.confirmed_user("stays@example.com")
        linked = await anonymous(api)
        await api.register("linked@example.com")
        mail = [m for m in server.read_outbox() if m["email"] == "linked@example.com"][-1]
        await api.request(
            "POST",
            f"{api.app}/auth/providers/local-userpass/confirm",
            body={"token": mail["token"], "tokenId": mail["tokenId"]},
        )
        status, _h, _b = await api.request(
            "POST",
            f"{api.app}/auth/providers/local-userpass/login?link=true",
            token=linked["access_token"],
            body={"username": "linked@example.com", "password": PASSWORD},
        )
        assert status == 200
        clock.advance(60)
        status, _h, _b = await api.request("POST", f"{api.auth}/session", token=active["refresh_token"])
        assert status == 201  # a refresh is activity
        clock.advance(31)  # idle: 91 days; active: 31 days since its refresh
        assert await server.purge_anonymous() == [idle["user_id"]]
        status, _h, err = await api.request("POST", f"{api.auth}/session", token=idle["refresh_token"])
        assert_error(status, err, 401, "InvalidSession")
        for kept in (active, email, linked):
            status, _h, _b = await api.request("POST", f"{api.auth}/session", token=kept["refresh_token"])
            assert status == 201
        # Those refreshes were activity too: nothing is due 89 days later, everything anonymous at 91.
        clock.advance(89)
        assert await server.purge_anonymous() == []
        clock.advance(2)
        assert await server.purge_anonymous() == [active["user_id"]]
        # Through the Admin API, with a shorter window.
        admin = Admin(api, server)
        assert (await admin.login())[0] == 200
        fresh = await anonymous(api)
        clock.advance(2)
        status, result = await admin.call("POST", "/x-appusers/purge_anonymous", body={"inactive_days": 1})
        assert status == 200 and result == {"purged": 1, "user_ids": [fresh["user_id"]]}
        for bad in (0, -1, "7", True, 1e300, None):
            body = {"inactive_days": bad} if bad is not None else {"inactive_days": float("nan")}
            status, _h, err = await api.request(
                "POST",
                admin.app + "/x-appusers/purge_anonymous",
                token=admin.access,
                raw=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
            assert 400 <= status < 500, (bad, err)


async def test_purge_runs_periodically_and_can_be_turned_off(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    purge = attrs.evolve(admin_config().anonymous_purge, interval=0.01)
    async with LocalServer(
        config=admin_config(anonymous_purge=purge), data_dir=tmp_path / "a", clock=clock
    ) as server:
        user = await anonymous(Api(server, http))
        clock.advance(91)
        api = Api(server, http)
        for _ in range(500):  # the task runs every 10 ms; bounded wait for its effect
            status, _h, _b = await api.request("POST", f"{api.auth}/session", token=user["refresh_token"])
            if status == 401:
                break
            clock.advance(91)
            await asyncio.sleep(0.01)
        assert status == 401
    off = attrs.evolve(purge, inactive_days=0)
    async with LocalServer(
        config=admin_config(anonymous_purge=off), data_dir=tmp_path / "b", clock=clock
    ) as server:
        user = await anonymous(Api(server, http))
        clock.advance(10_000)
        assert await server.purge_anonymous() == []
        await asyncio.sleep(0.05)
        status, _h, _b = await Api(server, http).request(
            "POST", f"{server.url}/api/client/v2.0/auth/session", token=user["refresh_token"]
        )
        assert status == 201


# --------------------------------------------------------------------------- API keys (issue 9 item 6)


async def _key_session(api: Api, owner: dict[str, Any], name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    status, _h, key = await api.request(
        "POST", f"{api.auth}/api_keys", token=owner["refresh_token"], body={"name": name}
    )
    assert status == 201
    return key, await api.login("api-key", key=key["key"])


@pytest.mark.parametrize("how", ["disable", "delete"])
async def test_disabling_or_deleting_an_api_key_ends_its_sessions(api: Api, how: str) -> None:
    owner = await api.confirmed_user(f"{how}@example.com")
    key, session = await _key_session(api, owner, "ci")
    _, other = await _key_session(api, owner, "other")
    url = f"{api.auth}/api_keys/{key['_id']}"
    if how == "disable":
        status, _h, _b = await api.request("PUT", url + "/disable", token=owner["refresh_token"])
    else:
        status, _h, _b = await api.request("DELETE", url, token=owner["refresh_token"])
    assert status == 204
    status, _h, err = await api.request("POST", f"{api.auth}/session", token=session["refresh_token"])
    assert_error(status, err, 401, "InvalidSession")
    status, call = await api.call(session["access_token"], "sum", 1, 2)
    assert_error(status, call, 401, "InvalidSession")
    # The owner's own session and the other key's session go on.
    for alive in (owner, other):
        status, _h, _b = await api.request("POST", f"{api.auth}/session", token=alive["refresh_token"])
        assert status == 201
        assert (await api.call(alive["access_token"], "sum", 1, 2))[0] == 200
    if how == "disable":
        # Re-enabling lets the key log in again; the ended session stays ended.
        status, _h, _b = await api.request("PUT", url + "/enable", token=owner["refresh_token"])
        assert status == 204
        again = await api.login("api-key", key=key["key"])
        assert (await api.call(again["access_token"], "sum", 1, 2))[0] == 200
        status, _h, err = await api.request("POST", f"{api.auth}/session", token=session["refresh_token"])
        assert_error(status, err, 401, "InvalidSession")


async def test_old_database_gains_the_new_columns(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    import sqlite3

    path = tmp_path / "d" / "users.sqlite3"
    path.parent.mkdir()
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE users (id TEXT PRIMARY KEY, type TEXT NOT NULL, created INTEGER NOT NULL,"
        " disabled INTEGER NOT NULL DEFAULT 0, generation INTEGER NOT NULL DEFAULT 0, data TEXT NOT NULL);"
        "CREATE TABLE sessions (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, device_id TEXT NOT NULL,"
        " refresh_digest TEXT NOT NULL, expires_at INTEGER NOT NULL);"
        "INSERT INTO users VALUES ('65a1f2d0e4b0a1b2c3d4e5f6', 'normal', 1, 0, 0, '{}');"
    )
    db.commit()
    db.close()
    clock = FakeClock()
    async with LocalServer(config=admin_config(), data_dir=tmp_path / "d", clock=clock) as server:
        admin = Admin(Api(server, http), server)
        assert (await admin.login())[0] == 200
        status, user = await admin.call("GET", "/users/65a1f2d0e4b0a1b2c3d4e5f6")
        assert status == 200 and user["disabled"] is False
        await anonymous(Api(server, http))


def _b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


# --------------------------------------------------------------------------- open streams


async def _open_watch(api: Api, token: str) -> aiohttp.ClientResponse:
    call = {
        "name": "watch",
        "service": "mongodb-atlas",
        "arguments": [{"database": "appusers", "collection": "w"}],
    }
    query = quote(base64.b64encode(json.dumps(call).encode()).decode(), safe="")
    resp = await api.http.get(
        f"{api.app}/functions/call?baas_request={query}",
        headers={"Accept": "text/event-stream", "Authorization": f"Bearer {token}"},
    )
    assert resp.status == 200
    assert (await asyncio.wait_for(resp.content.readline(), 10)).startswith(b": stream open")
    return resp


async def _ended(resp: aiohttp.ClientResponse) -> bool:
    """Whether the server ends the stream within 10 s (a clean end or a cut connection)."""
    try:
        while await asyncio.wait_for(resp.content.readline(), 10):
            pass
    except aiohttp.ClientPayloadError:
        pass
    except TimeoutError:
        return False
    finally:
        resp.release()
    return True


async def test_open_streams_end_with_their_session_or_user(api: Api, admin: Admin) -> None:
    first = await api.confirmed_user("streams@example.com")
    second = await api.login("local-userpass", username="streams@example.com", password=PASSWORD)
    bystander = await anonymous(api)
    one, two, other = [await _open_watch(api, t["access_token"]) for t in (first, second, bystander)]
    # The client logs out one session: only that session's stream ends.
    status, _h, _b = await api.request("DELETE", f"{api.auth}/session", token=first["refresh_token"])
    assert status == 204
    assert await _ended(one)
    status, _ = await api.call(
        bystander["access_token"],
        "insertOne",
        {"database": "appusers", "collection": "w", "document": {"n": 1}},
        service="mongodb-atlas",
    )
    assert status == 200
    for resp in (two, other):
        line = b""
        while not line.startswith(b"data:"):
            line = await asyncio.wait_for(resp.content.readline(), 10)
    # Disabling the user ends its remaining stream at once; the bystander's goes on.
    assert (await admin.call("PUT", f"/users/{first['user_id']}/disable"))[0] == 204
    assert await _ended(two)
    assert not other.content.at_eof()
    assert (await admin.call("DELETE", f"/users/{bystander['user_id']}"))[0] == 204
    assert await _ended(other)


async def test_an_api_key_stream_ends_with_the_key(api: Api) -> None:
    owner = await api.confirmed_user("keystream@example.com")
    key, session = await _key_session(api, owner, "watcher")
    keyed, own = (
        await _open_watch(api, session["access_token"]),
        await _open_watch(api, owner["access_token"]),
    )
    status, _h, _b = await api.request(
        "PUT", f"{api.auth}/api_keys/{key['_id']}/disable", token=owner["refresh_token"]
    )
    assert status == 204
    assert await _ended(keyed)
    assert not own.content.at_eof()
    own.release()


async def test_admin_routes_refuse_wrong_methods_and_huge_bodies(
    api: Api, admin: Admin, server: LocalServer
) -> None:
    status, _h, err = await api.request(
        "PATCH", admin.app + f"/users/{'0' * 24}", token=admin.access, body={}
    )
    assert_error(status, err, 405, "MethodNotAllowed")
    huge = b'{"username": "' + b"a" * (server.config.limits.max_body_bytes + 10) + b'"}'
    async with api.http.post(
        f"{admin.base}/auth/providers/mongodb-cloud/login",
        data=io.BytesIO(huge),
        headers={"Content-Type": "application/json"},
    ) as resp:
        status, err = resp.status, await resp.json()
    assert_error(status, err, 413, "RequestTooLarge")
    status, headers, _b = await api.request(
        "OPTIONS",
        admin.app + "/users",
        headers={"Origin": "http://x.test", "Access-Control-Request-Method": "GET"},
    )
    assert status == 204 and "Access-Control-Allow-Methods" in headers
    # Nothing above left the admin session or the throttle in a bad state.
    assert (await admin.call("GET", "/users"))[0] == 200
