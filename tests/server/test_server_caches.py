"""The server's caches never outlive a write (issue 10): users, sessions, custom data, tokens.

The SQLite store caches users and sessions and the custom-data lookup caches documents;
a log-out, a deleted or disabled user, a revoked token and a custom-data write must still
take effect on the very next request, whether the write went through this server, another
connection of this process, or another process over the same data directory (what
``appusers serve --workers N`` runs).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from _server_testkit import Api, assert_error

from appusers.server import LocalServer, _tokens
from appusers.server._errors import ApiError
from appusers.server._sqlite_store import SqliteUserStore
from appusers.server._store import IdentityRecord, SessionRecord


def _identity(ident: str) -> IdentityRecord:
    return IdentityRecord(id=ident, provider_type="anon-user", provider_id="anon-id")


def _session(session_id: str, user_id: str, api_key_id: str | None = None) -> SessionRecord:
    return SessionRecord(
        id=session_id,
        user_id=user_id,
        device_id="d" * 24,
        refresh_digest="x",
        expires_at=int(time.time()) + 60,
        api_key_id=api_key_id,
    )


async def test_a_store_sees_every_write_of_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "users.sqlite3"
    a, b = SqliteUserStore(path), SqliteUserStore(path)
    try:
        user = await a.create_user("normal", {}, _identity("i1"), session=lambda uid: _session("s1", uid))
        assert user.last_login > 0
        await a.create_session(_session("s2", user.id))
        # b reads (and caches) both, then a changes them: b sees each change at once.
        assert (await b.get_user(user.id)) == user
        assert (await b.get_session("s1")) is not None and (await b.get_session("s2")) is not None
        await a.set_user_disabled(user.id, True)
        assert (await b.get_user(user.id)).disabled  # type: ignore[union-attr]
        await a.set_user_disabled(user.id, False)
        await a.bump_generation(user.id)
        assert (await b.get_user(user.id)).generation == 1  # type: ignore[union-attr]
        await a.set_user_data(user.id, {"name": "x"})
        assert (await b.get_user(user.id)).data == {"name": "x"}  # type: ignore[union-attr]
        await a.delete_session("s1")
        assert await b.get_session("s1") is None
        await a.delete_sessions(user.id)
        assert await b.get_session("s2") is None
        await a.delete_user(user.id)
        assert await b.get_user(user.id) is None
        # A plain sqlite3 connection (any other process) is seen too.
        other = await b.create_user("normal", {}, _identity("i2"))
        await b.create_session(_session("s3", other.id))
        assert (await a.get_user(other.id)) is not None and (await a.get_session("s3")) is not None
        with sqlite3.connect(path) as raw:
            raw.execute("UPDATE users SET generation = 7 WHERE id=?", (other.id,))
            raw.execute("DELETE FROM sessions WHERE id='s3'")
        assert (await a.get_user(other.id)).generation == 7  # type: ignore[union-attr]
        assert await a.get_session("s3") is None
    finally:
        await a.close()
        await b.close()


async def test_a_store_drops_what_its_own_writes_change(tmp_path: Path) -> None:
    store = SqliteUserStore(tmp_path / "users.sqlite3")
    try:
        user = await store.create_user("normal", {}, _identity("i1"))
        await store.open_session(_session("s1", user.id, api_key_id="k1"), 1000)
        cached = await store.get_user(user.id)
        assert cached is not None and cached.last_login == 1000
        assert await store.get_user(user.id) is cached  # the second read is the cached record
        for change, check in [
            (store.bump_generation(user.id), lambda u: u.generation == 1),
            (store.set_user_disabled(user.id, True), lambda u: u.disabled),
            (store.set_user_data(user.id, {"a": "b"}), lambda u: u.data == {"a": "b"}),
            (store.add_identity(user.id, _identity("i2")), lambda u: len(u.identities) == 2),
            (
                store.update_identity_data("anon-user", "i2", {"k": "v"}),
                lambda u: u.identities[1].provider_data == {"k": "v"},
            ),
            (store.touch_user(user.id, 2000, login=True), lambda u: u.last_login == 2000),
        ]:
            await change
            assert check(await store.get_user(user.id))
        assert await store.get_session("s1") is not None
        await store.set_api_key_disabled("k1", True)  # ends the sessions logged in with the key
        assert await store.get_session("s1") is None
        await store.delete_user(user.id)
        assert await store.get_user(user.id) is None
    finally:
        await store.close()


_OTHER_PROCESS = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
with db:
    db.execute(sys.argv[2], sys.argv[3:])
db.close()
"""


def _in_another_process(data_dir: Path, sql: str, *args: str) -> None:
    """Write into the server's users file from a separate process, as another worker would."""
    subprocess.run(
        [sys.executable, "-c", _OTHER_PROCESS, str(data_dir / "users.sqlite3"), sql, *args],
        check=True,
        timeout=60,
    )


async def test_writes_of_another_process_take_effect_on_the_next_request(
    api: Api, server: LocalServer
) -> None:
    async def warm(tokens: dict[str, Any]) -> None:
        # Every cache on the path holds the user and the session now.
        for _ in range(2):
            status, _body = await api.call(tokens["access_token"], "sum", 1, 2)
            assert status == 200
            status, _h, _b = await api.request("POST", f"{api.auth}/session", token=tokens["refresh_token"])
            assert status == 201

    logged_out = await api.login()
    await warm(logged_out)
    session_id = json.loads(_b64d(logged_out["refresh_token"].split(".")[1]))["baas_session_id"]
    _in_another_process(server.data_dir, "DELETE FROM sessions WHERE id=?", session_id)
    status, _h, body = await api.request("POST", f"{api.auth}/session", token=logged_out["refresh_token"])
    assert_error(status, body, 401, "InvalidSession")
    status, body = await api.call(logged_out["access_token"], "sum", 1, 2)
    assert_error(status, body, 401, "InvalidSession")

    disabled = await api.login()
    await warm(disabled)
    _in_another_process(server.data_dir, "UPDATE users SET disabled=1 WHERE id=?", disabled["user_id"])
    status, body = await api.call(disabled["access_token"], "sum", 1, 2)
    assert_error(status, body, 401, "UserDisabled")
    status, _h, body = await api.request("POST", f"{api.auth}/session", token=disabled["refresh_token"])
    assert_error(status, body, 401, "UserDisabled")

    revoked = await api.login()
    await warm(revoked)
    _in_another_process(
        server.data_dir, "UPDATE users SET generation = generation + 1 WHERE id=?", revoked["user_id"]
    )
    status, body = await api.call(revoked["access_token"], "sum", 1, 2)
    assert_error(status, body, 401, "InvalidSession")
    # The refresh token still works (revoking access tokens keeps sessions), and its new token too.
    status, _h, fresh = await api.request("POST", f"{api.auth}/session", token=revoked["refresh_token"])
    assert status == 201
    status, _body = await api.call(fresh["access_token"], "sum", 1, 2)
    assert status == 200

    deleted = await api.login()
    await warm(deleted)
    _in_another_process(server.data_dir, "DELETE FROM users WHERE id=?", deleted["user_id"])
    status, body = await api.call(deleted["access_token"], "sum", 1, 2)
    assert_error(status, body, 401, "InvalidSession")


async def test_a_custom_data_write_takes_effect_on_the_next_request(api: Api) -> None:
    tokens = await api.login()
    token = tokens["access_token"]
    # A new user's first token carries its (still empty) custom data, as every later one.
    assert json.loads(_b64d(token.split(".")[1]))["user_data"] == {}
    for _ in range(2):  # cached after the first call
        status, me = await api.call(token, "whoami")
        assert status == 200 and me["custom_data"] == {}
    status, _ = await api.call(token, "set_custom_data", {"plan": "pro"})
    assert status == 200
    status, me = await api.call(token, "whoami")
    assert me["custom_data"]["plan"] == "pro"
    status, _h, body = await api.request("POST", f"{api.auth}/session", token=tokens["refresh_token"])
    assert json.loads(_b64d(body["access_token"].split(".")[1]))["user_data"]["plan"] == "pro"
    # Written through the MongoDB service (the rules allow a user its own document) and deleted.
    status, _ = await api.call(
        token,
        "updateOne",
        {
            "database": "appusers",
            "collection": "custom_data",
            "query": {"user_id": tokens["user_id"]},
            "update": {"$set": {"plan": "free"}},
        },
        service="mongodb-atlas",
    )
    assert status == 200
    status, me = await api.call(token, "whoami")
    assert me["custom_data"]["plan"] == "free"
    status, _ = await api.call(
        token,
        "deleteOne",
        {"database": "appusers", "collection": "custom_data", "query": {"user_id": tokens["user_id"]}},
        service="mongodb-atlas",
    )
    assert status == 200
    status, me = await api.call(token, "whoami")
    assert me["custom_data"] == {}


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signed(secret: bytes, header: dict[str, Any], claims: dict[str, Any], alg: str = "sha256") -> str:
    head = _b64e(json.dumps(header).encode())
    body = _b64e(json.dumps(claims).encode())
    sig = hmac.new(secret, f"{head}.{body}".encode(), getattr(hashlib, alg)).digest()
    return f"{head}.{body}.{_b64e(sig)}"


async def test_tokens_signed_with_the_real_key_are_still_checked(api: Api, server: LocalServer) -> None:
    """The hand-written HS256 check refuses what PyJWT refused, even under the server's own key."""
    tokens = await api.login()
    claims = json.loads(_b64d(tokens["access_token"].split(".")[1]))
    with sqlite3.connect(server.data_dir / "users.sqlite3") as db:
        secret = bytes(db.execute("SELECT value FROM meta WHERE key='signing_secret'").fetchone()[0])
    now = int(time.time())
    good_header = {"typ": "JWT", "alg": "HS256"}  # another encoding than ours: accepted
    status, _h, _body = await api.request(
        "GET", f"{api.auth}/profile", token=_signed(secret, good_header, claims)
    )
    assert status == 200
    refused = [
        _signed(secret, {"alg": "HS512", "typ": "JWT"}, claims, "sha512"),  # another algorithm
        _signed(secret, {"alg": "none"}, claims),
        _signed(secret, {"typ": "JWT"}, claims),  # no algorithm
        _signed(secret, good_header, {**claims, "iat": now + 3600}),  # issued in the future
        _signed(secret, good_header, {**claims, "nbf": now + 3600}),  # not valid yet
        _signed(secret, good_header, {**claims, "exp": str(now + 3600)}),  # exp not a number
        _signed(secret, good_header, {**claims, "exp": True}),
        _signed(secret, good_header, {**claims, "aud": "someone"}),  # never issued by us
        _signed(secret, good_header, {k: v for k, v in claims.items() if k != "typ"}),
        _signed(secret, good_header, {**claims, "typ": "refresh"}),  # the wrong kind
        _signed(secret, good_header, {**claims, "baas_domain_id": "another-app"}),
        _signed(secret, good_header, [claims]),  # type: ignore[arg-type]
        _signed(secret, [good_header], claims),  # type: ignore[arg-type]
        tokens["access_token"] + "x",  # signature of another length
        tokens["access_token"].replace(".", "..", 1),
        "é." + tokens["access_token"],  # not ASCII
    ]
    for bad in refused:
        status, _h, body = await api.request("GET", f"{api.auth}/profile", token=bad)
        assert_error(status, body, 401, "InvalidSession")
    expired = _signed(secret, good_header, {**claims, "exp": now - 1})
    status, _h, body = await api.request("GET", f"{api.auth}/profile", token=expired)
    assert_error(status, body, 401, "InvalidSession", "invalid session: access token expired")


def test_a_remembered_token_still_expires_and_keeps_its_kind(monkeypatch: Any) -> None:
    """Verified tokens are remembered by text; a hit still checks expiry and kind."""
    issuer = _tokens.TokenIssuer(b"k" * 64, "app", access_lifetime=60, refresh_lifetime=120)
    token = issuer.access_token(user_id="u", session_id="s", device_id="d", generation=3, user_data=None)
    first = issuer.verify(token, "access")
    assert issuer.verify(token, "access") is first  # remembered
    with pytest.raises(ApiError, match="invalid session"):
        issuer.verify(token, "refresh")  # remembered as an access token, never passes for another kind
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    with pytest.raises(ApiError):
        issuer.verify(tampered, "access")
    other = _tokens.TokenIssuer(b"o" * 64, "app", access_lifetime=60, refresh_lifetime=120)
    with pytest.raises(ApiError):
        other.verify(token, "access")  # each issuer remembers only what its own key verified
    later = time.time() + 61
    monkeypatch.setattr(_tokens.time, "time", lambda: later)
    with pytest.raises(ApiError, match="access token expired"):
        issuer.verify(token, "access")


def test_remembered_tokens_are_bounded(monkeypatch: Any) -> None:
    """Past the bound the oldest verified token is forgotten (and verified again when it returns)."""
    monkeypatch.setattr(_tokens, "_VERIFIED_ENTRIES", 4)
    issuer = _tokens.TokenIssuer(b"k" * 64, "app", access_lifetime=60, refresh_lifetime=120)
    tokens = [
        issuer.access_token(user_id=f"u{i}", session_id="s", device_id="d", generation=0, user_data=None)
        for i in range(6)
    ]
    for token in tokens:
        issuer.verify(token, "access")
    assert len(issuer._verified) == 4
    assert tokens[0] not in issuer._verified and tokens[-1] in issuer._verified
    assert issuer.verify(tokens[0], "access").user_id == "u0"


async def test_a_server_store_checks_other_writes_once_per_loop_iteration(tmp_path: Path) -> None:
    """A server's store looks for other connections' commits once per event-loop iteration:
    whatever the loop handles after a commit (a request sent after it) sees it."""
    path = tmp_path / "users.sqlite3"
    store = SqliteUserStore(path)
    store.check_per_iteration = True
    try:
        user = await store.create_user("normal", {}, _identity("i1"))
        await store.create_session(_session("s1", user.id))
        assert (await store.get_user(user.id)) is not None and (await store.get_session("s1")) is not None
        with sqlite3.connect(path) as raw:
            raw.execute("UPDATE users SET disabled = 1 WHERE id=?", (user.id,))
            raw.execute("DELETE FROM sessions WHERE id='s1'")
        await asyncio.sleep(0)  # the next iteration: what a request arriving now would run in
        assert (await store.get_user(user.id)).disabled  # type: ignore[union-attr]
        assert await store.get_session("s1") is None
        with sqlite3.connect(path) as raw:
            raw.execute("DELETE FROM users WHERE id=?", (user.id,))
        await asyncio.sleep(0)
        assert await store.get_user(user.id) is None
    finally:
        await store.close()
