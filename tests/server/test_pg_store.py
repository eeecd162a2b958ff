"""The PostgreSQL user store: the UserStore contract (beside SQLite), migrations, shared
throttling counters, and hostile database settings (bad URLs, refused connections, a newer
schema) answered with typed errors that never show the password.

Needs PostgreSQL (``APPUSERS_TEST_POSTGRES``, see tests/_pg_testkit.py); skipped without it
outside CI.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from _pg_testkit import new_postgres_url
from _server_testkit import Api, fast

from appusers.server import ConfigError, LocalServer, load_config
from appusers.server._config import DatabaseSettings, ThrottleSettings, redact_url
from appusers.server._errors import ApiError
from appusers.server._pg_store import (
    SCHEMA_VERSION,
    DatabaseError,
    PgCounters,
    PostgresUserStore,
    SchemaVersionError,
    migrate_database,
)
from appusers.server._sqlite_store import SqliteUserStore
from appusers.server._store import (
    AdminSessionRecord,
    ApiKeyRecord,
    DuplicateError,
    EmailToken,
    IdentityRecord,
    SessionRecord,
    UserpassRecord,
    UserStore,
)
from appusers.server._throttle import LoginThrottle, MemoryCounters, RateLimiter


def _settings(url: str) -> DatabaseSettings:
    return DatabaseSettings(url=url, pool_size=4, connect_timeout=5)


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[UserStore]:
    """Each UserStore implementation, empty."""
    opened: UserStore
    if request.param == "sqlite":
        opened = SqliteUserStore(tmp_path / "users.sqlite3")
    else:
        opened = await PostgresUserStore.open(_settings(new_postgres_url()))
    try:
        yield opened
    finally:
        await opened.close()


def _identity(kind: str, ident: str, **data: Any) -> IdentityRecord:
    return IdentityRecord(id=ident, provider_type=kind, provider_id=f"{kind}-id", provider_data=data)


async def test_users_and_identities(store: UserStore) -> None:
    user = await store.create_user("normal", {"email": "a@example.com"}, _identity("local-userpass", "i1"))
    assert user.identities[0].id == "i1" and user.data == {"email": "a@example.com"}
    assert await store.get_user(user.id) == user
    assert await store.find_identity_owner("local-userpass", "i1") == user.id
    with pytest.raises(DuplicateError):
        await store.create_user("normal", {}, _identity("local-userpass", "i1"))
    await store.add_identity(user.id, _identity("anon-user", "i2", name="x"))
    with pytest.raises(DuplicateError):
        await store.add_identity(user.id, _identity("anon-user", "i2"))
    await store.update_identity_data("anon-user", "i2", {"name": "y", "nested": {"k": [1, 2]}})
    await store.set_user_data(user.id, {"name": "Ann"})
    await store.bump_generation(user.id)
    got = await store.get_user(user.id)
    assert got is not None
    assert [i.id for i in got.identities] == ["i1", "i2"]  # link order
    assert got.identities[1].provider_data == {"name": "y", "nested": {"k": [1, 2]}}
    assert got.data == {"name": "Ann"} and got.generation == 1
    assert await store.set_user_disabled(user.id, True)
    assert not await store.set_user_disabled("f" * 24, True)
    got = await store.get_user(user.id)
    assert got is not None and got.disabled
    await store.touch_user(user.id, 1_000, login=True)
    got = await store.get_user(user.id)
    assert got is not None and (got.last_login, got.last_active) == (1_000, 1_000)
    assert await store.get_user("nobody") is None
    assert await store.get_user("nul\0id") is None  # what a forged token may carry
    assert await store.find_identity_owner("anon-user", "nul\0") is None


async def test_listing_purging_and_deleting(store: UserStore) -> None:
    users = [await store.create_user("normal", {}, _identity("anon-user", f"a{i}")) for i in range(5)]
    ids = sorted(u.id for u in users)
    assert [u.id for u in await store.list_users(None, 3, False)] == ids[:3]
    assert [u.id for u in await store.list_users(ids[2], 10, False)] == ids[3:]
    assert [u.id for u in await store.list_users(ids[2], 10, True)] == ids[:2][::-1]
    for u in users[:2]:
        await store.touch_user(u.id, 10, login=True)
    kept = users[2]
    await store.add_identity(kept.id, _identity("local-userpass", "lp"))
    await store.create_userpass(UserpassRecord("k@example.com", "lp", "hash", True, 1))
    await store.put_email_token(EmailToken("t1", "reset", "k@example.com", "d" * 64, 99))
    # Only users with nothing but anonymous identities, inactive long enough.
    await store.touch_user(kept.id, 10, login=True)
    purged = await store.purge_anonymous(inactive_before=100, limit=10)
    assert sorted(purged) == sorted(u.id for u in users[:2])
    assert await store.delete_user(kept.id)
    assert not await store.delete_user(kept.id)
    assert await store.get_userpass("k@example.com") is None
    assert await store.take_email_token("t1", "reset", "d" * 64) is None


async def test_a_first_log_in_and_a_later_one_commit_their_session_with_the_user(store: UserStore) -> None:
    user = await store.create_user(
        "normal",
        {},
        _identity("anon-user", "a"),
        session=lambda uid: SessionRecord("s1", uid, "dev", "r" * 64, 10**10),
        now=1234,
    )
    assert user.last_login == 1234 and user.last_active == 1234
    assert await store.get_user(user.id) == user
    session = await store.get_session("s1")
    assert session is not None and session.user_id == user.id
    await store.open_session(SessionRecord("s2", user.id, "dev", "q" * 64, 10**10), 2345)
    again = await store.get_user(user.id)
    assert again is not None and again.last_login == 2345 and await store.get_session("s2") is not None
    # A duplicate identity rolls the session back with the user.
    with pytest.raises(DuplicateError):
        await store.create_user(
            "normal",
            {},
            _identity("anon-user", "a"),
            session=lambda uid: SessionRecord("s3", uid, "dev", "p" * 64, 10**10),
        )
    assert await store.get_session("s3") is None


async def test_sessions_keys_and_email_accounts(store: UserStore) -> None:
    user = await store.create_user("normal", {}, _identity("anon-user", "a"))
    key = ApiKeyRecord("k1", user.id, "laptop", "kd" * 32, False, 5)
    await store.create_api_key(key)
    with pytest.raises(DuplicateError):
        await store.create_api_key(attrs.evolve(key, id="k2", key_digest="x" * 64))
    await store.create_api_key(ApiKeyRecord("k0", user.id, "phone", "pd" * 32, False, 5))
    assert [k.id for k in await store.list_api_keys(user.id)] == ["k1", "k0"]  # creation order
    assert await store.find_api_key("kd" * 32) == key
    assert await store.get_api_key("k1") == key
    await store.create_session(SessionRecord("s1", user.id, "dev", "r" * 64, 10**10, api_key_id="k1"))
    await store.create_session(SessionRecord("s2", user.id, "dev", "q" * 64, 10**10))
    await store.set_api_key_disabled("k1", True)
    assert await store.get_session("s1") is None  # disabling a key ends its sessions
    disabled = await store.get_api_key("k1")
    assert disabled is not None and disabled.disabled
    assert await store.delete_api_key("k0") and not await store.delete_api_key("k0")
    assert await store.get_session("s2") is not None
    assert await store.delete_sessions(user.id) == 1
    assert not await store.delete_session("s2")

    record = UserpassRecord("e@example.com", "ident", "hash", False, 7)
    await store.create_userpass(record)
    with pytest.raises(DuplicateError):
        await store.create_userpass(record)
    assert [r.email for r in await store.list_pending(None, 10)] == ["e@example.com"]
    await store.confirm_userpass("e@example.com")
    await store.set_password("e@example.com", "hash2")
    got = await store.get_userpass("e@example.com")
    assert got is not None and got.confirmed and got.password_hash == "hash2"
    assert await store.get_userpass("e@example.com\0") is None
    token = EmailToken("tid", "confirm", "e@example.com", "a" * 64, 50)
    await store.put_email_token(token)
    assert await store.take_email_token("tid", "confirm", "b" * 64) is None  # a wrong token...
    assert await store.take_email_token("tid", "confirm", "a" * 64) == token  # ...did not consume it
    assert await store.take_email_token("tid", "confirm", "a" * 64) is None

    admin = AdminSessionRecord("as", "pub", "z" * 64, 99)
    await store.create_admin_session(admin)
    assert await store.get_admin_session("as") == admin
    assert await store.delete_admin_session("as") and await store.get_admin_session("as") is None


async def test_secrets_and_ids_are_created_once(store: UserStore) -> None:
    secret = await store.signing_secret()
    assert len(secret) == 64 and await store.signing_secret() == secret
    assert await store.stable_id("admin/group") == await store.stable_id("admin/group")
    assert await store.stable_id("admin/group") != await store.stable_id("admin/app")


# ---------------------------------------------------------------------- shared by two stores
async def test_two_stores_on_one_database_share_everything() -> None:
    url = new_postgres_url()
    a, b = await asyncio.gather(
        PostgresUserStore.open(_settings(url)), PostgresUserStore.open(_settings(url))
    )
    try:
        assert await a.signing_secret() == await b.signing_secret()
        assert await a.stable_id("admin/group") == await b.stable_id("admin/group")
        user = await a.create_user("normal", {}, _identity("anon-user", "x"))
        assert await b.get_user(user.id) == user
        # The throttles of two servers count into one place.
        settings = ThrottleSettings(account_free_failures=2, base_delay=30, max_delay=30)
        on_a, on_b = (LoginThrottle(settings, counters=s.counters) for s in (a, b))
        for _ in range(3):
            await on_a.failed("acct", "10.0.0.1")
        with pytest.raises(ApiError) as refused:
            await on_b.check("acct", "10.0.0.1")
        assert refused.value.status == 429
        await on_b.check("acct", "10.0.0.2")  # another address: only the pair is over
    finally:
        await a.close()
        await b.close()


@pytest.mark.parametrize("kind", ["memory", "postgres"])
async def test_counters_behave_the_same(kind: str) -> None:
    """The in-memory and the database counters give the same delays (fake clock)."""
    store = None
    if kind == "postgres":
        store = await PostgresUserStore.open(_settings(new_postgres_url()))
        counters: Any = store.counters
    else:
        counters = MemoryCounters()
    try:
        now = [1000.0]
        throttle = LoginThrottle(
            ThrottleSettings(account_free_failures=2, base_delay=1, max_delay=8, window=100),
            clock=lambda: now[0],
            counters=counters,
        )
        for _ in range(2):
            await throttle.failed("acct\0with nul", "ip")
        await throttle.check("acct\0with nul", "ip")
        delays = []
        for _ in range(5):
            await throttle.failed("acct\0with nul", "ip")
            delays.append(await throttle.wait("acct\0with nul", "ip"))
            now[0] += delays[-1]
        assert delays == [1, 2, 4, 8, 8]
        assert await throttle.wait("acct\0with", "nul\0ip") == 0  # keys do not run together
        await throttle.succeeded("acct\0with nul", "ip")
        assert await throttle.known("acct\0with nul", "ip")
        now[0] += 1000
        await throttle.failed("acct\0with nul", "ip")  # the window forgot the count: 1 again
        await throttle.check("acct\0with nul", "ip")

        limiter = RateLimiter(2, 0.5, clock=lambda: now[0], counters=counters, name="r")
        await limiter.take("k", "slow down")
        await limiter.take("k", "slow down")
        with pytest.raises(ApiError) as refused:
            await limiter.take("k", "slow down")
        assert refused.value.headers["Retry-After"] == "2"
        now[0] += 2
        await limiter.take("k", "slow down")
        await RateLimiter(2, 0.5, clock=lambda: now[0], counters=counters, name="other").take("k", "x")
    finally:
        if store is not None:
            await store.close()


async def test_expired_counters_are_swept() -> None:
    url = new_postgres_url()
    store = await PostgresUserStore.open(_settings(url))
    try:
        counters: PgCounters = store.counters
        await counters.fail([("t", "old", 10.0)], 1_000.0)
        await counters.fail([("t", "new", 10.0)], 2_000.0)  # sweeps what expired before 2000
        assert await counters.read([("t", "old", 10**9), ("t", "new", 10.0)], 2_000.0) == [None, (1, 2_000.0)]
    finally:
        await store.close()


# ---------------------------------------------------------------------- migrations
async def test_migrations_apply_once_and_refuse_a_newer_schema() -> None:
    import psycopg

    url = new_postgres_url()
    found = await asyncio.gather(*(migrate_database(url, 5) for _ in range(3)))
    assert sorted(found) == [0, SCHEMA_VERSION, SCHEMA_VERSION]  # one of the three migrated
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT version FROM appusers_schema")
        assert [r[0] for r in await cur.fetchall()] == [SCHEMA_VERSION]
        await conn.execute("INSERT INTO appusers_schema VALUES (%s)", (SCHEMA_VERSION + 1,))
    with pytest.raises(SchemaVersionError, match="newer than this appusers") as info:
        await PostgresUserStore.open(_settings(url))
    assert isinstance(info.value, ConfigError)


async def test_an_outdated_schema_is_refused_without_migrating() -> None:
    url = new_postgres_url()
    with pytest.raises(SchemaVersionError, match="--migrate-only"):
        await PostgresUserStore.open(_settings(url), migrate=False)
    await migrate_database(url, 5)
    store = await PostgresUserStore.open(_settings(url), migrate=False)
    await store.close()


# ---------------------------------------------------------------------- hostile settings
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wrong_password(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    netloc = f"{parts.username}:Wr0ngSecretPw@{parts.hostname}:{parts.port or 5432}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


async def test_bad_database_settings_give_typed_errors_without_the_password() -> None:
    url = new_postgres_url()
    cases = {
        "unreachable": f"postgresql://someone:Wr0ngSecretPw@127.0.0.1:{_free_port()}/db",
        "wrong password": _wrong_password(url),
        "bad port": "postgresql://someone:Wr0ngSecretPw@127.0.0.1:notaport/db",
        "no such database": _wrong_password(url).replace("Wr0ngSecretPw", "x").rsplit("/", 1)[0]
        + "/no_such_db_here",
    }
    for name, bad in cases.items():
        with pytest.raises(DatabaseError) as info:
            await PostgresUserStore.open(_settings(bad))
        message = str(info.value)
        assert "Wr0ngSecretPw" not in message, (name, message)
        assert info.value.__cause__ is None and info.value.__suppress_context__, name
        assert "database" in message, (name, message)


def test_database_settings_in_toml(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[database]\nurl = "postgresql://u:Secret9@db.internal/appusers"\npool_size = 4\n')
    config = load_config(good)
    assert config.database.url == "postgresql://u:Secret9@db.internal/appusers"
    assert "Secret9" not in repr(config) and "Secret9" not in repr(config.database)
    assert config.database.safe_url == "postgresql://u:***@db.internal/appusers"
    bad = tmp_path / "bad.toml"
    for text in [
        '[database]\nurl = "mysql://u:Secret9@h/db"\n',
        "[database]\nurl = 5\n",
        '[database]\nurl = "postgresql://h/db"\npool_size = 0\n',
        '[database]\nurl = "postgresql://h/db"\npool_min = 20\n',
        '[database]\nurl = "postgresql://h/db"\nconnect_timeout = -1\n',
        "database = 'postgresql://h/db'\n",
    ]:
        bad.write_text(text)
        with pytest.raises(ConfigError) as info:
            load_config(bad)
        assert "Secret9" not in str(info.value)


def test_redact_url() -> None:
    assert (
        redact_url("postgresql://u:p@ss/w@h:5/db?sslmode=require")
        == "postgresql://u:***@h:5/db?sslmode=require"
    )
    assert redact_url("postgresql://h/db?password=x1&user=u") == "postgresql://h/db?password=***&user=u"
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appusers.server", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_cli_migrate_only_and_refusals(tmp_path: Path) -> None:
    url = new_postgres_url()
    done = _serve("--migrate-only", "--data", str(tmp_path / "d"), env={"APPUSERS_DATABASE_URL": url})
    assert done.returncode == 0, done.stderr
    assert f"schema version {SCHEMA_VERSION} (migrated from 0)" in done.stdout
    done = _serve("--migrate-only", "--database", url, "--data", str(tmp_path / "d"))
    assert done.returncode == 0 and "(up to date)" in done.stdout, done.stderr
    parts = urllib.parse.urlsplit(url)
    assert parts.password is not None and f":{parts.password}@" not in done.stdout and ":***@" in done.stdout
    bad = [
        ["--database", "mysql://u:Wr0ngSecretPw@h/db"],
        ["--database", f"postgresql://u:Wr0ngSecretPw@127.0.0.1:{_free_port()}/db"],
        ["--database", _wrong_password(url)],
    ]
    for args in bad:
        done = _serve(*args, "--port", "0", "--data", str(tmp_path / "d"))
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith("error: "), done.stderr
        assert "Traceback" not in done.stderr and "Wr0ngSecretPw" not in done.stderr + done.stdout
    # SQLite: --migrate-only brings the data directory's file up to date.
    done = _serve("--migrate-only", "--data", str(tmp_path / "sqlite"))
    assert done.returncode == 0 and (tmp_path / "sqlite" / "users.sqlite3").is_file(), done.stderr


# ---------------------------------------------------------------------- one server on PostgreSQL
async def test_a_server_on_postgres_serves_every_provider(tmp_path: Path, postgres_url: str) -> None:
    import aiohttp

    config = fast(load_config(None))
    config = attrs.evolve(config, database=_settings(postgres_url))
    async with LocalServer(config=config, data_dir=tmp_path / "d", admin_token="t") as srv:
        async with aiohttp.ClientSession() as http:
            api = Api(srv, http)
            tokens = await api.confirmed_user("pg@example.com", "right-pass")
            status, _h, profile = await api.request(
                "GET", f"{api.auth}/profile", token=tokens["access_token"]
            )
            assert status == 200 and profile["data"]["email"] == "pg@example.com"
            status, _h, key = await api.request(
                "POST", f"{api.auth}/api_keys", token=tokens["refresh_token"], body={"name": "k"}
            )
            assert status == 201, key
            by_key = await api.login("api-key", key=key["key"])
            assert by_key["user_id"] == tokens["user_id"]
            status, result = await api.call(tokens["access_token"], "sum", 2, 3)
            assert (status, result) == (200, {"$numberInt": "5"})
            status, _h, _b = await api.request("DELETE", f"{api.auth}/session", token=tokens["refresh_token"])
            assert status == 204
            status, _h, _b = await api.request("GET", f"{api.auth}/profile", token=tokens["access_token"])
            assert status == 401


async def test_nul_characters_are_refused_alike_on_both_stores(tmp_path: Path) -> None:
    """PostgreSQL text cannot hold NUL: such input gets the same typed answer on both stores."""
    import aiohttp
    import jwt

    from appusers.server import DEMO_CUSTOM_TOKEN_SECRET

    async def probe(config: Any, where: Path) -> list[tuple[str, int, Any]]:
        seen = []
        async with LocalServer(config=config, data_dir=where) as srv, aiohttp.ClientSession() as http:
            api = Api(srv, http)
            tokens = await api.login("anon-user")
            lp = f"{api.app}/auth/providers/local-userpass"
            nul_token = jwt.encode({"sub": "a\0b", "aud": srv.app_id, "exp": 2**31}, DEMO_CUSTOM_TOKEN_SECRET)
            for name, url, body, token in [
                ("register", f"{lp}/register", {"email": "a\0b@x.com", "password": "secret12"}, None),
                ("login", f"{lp}/login", {"username": "a\0b@x.com", "password": "secret12"}, None),
                ("reset/send", f"{lp}/reset/send", {"email": "a\0b@x.com"}, None),
                ("confirm", f"{lp}/confirm", {"token": "a\0", "tokenId": "b\0"}, None),
                ("api-key login", f"{api.app}/auth/providers/api-key/login", {"key": "k\0"}, None),
                ("api-key create", f"{api.auth}/api_keys", {"name": "n\0"}, tokens["refresh_token"]),
                ("custom token", f"{api.app}/auth/providers/custom-token/login", {"token": nul_token}, None),
            ]:
                status, _h, answer = await api.request("POST", url, body=body, token=token)
                seen.append((name, status, answer.get("error_code") if isinstance(answer, dict) else None))
        return seen

    config = fast(load_config(None))
    on_sqlite = await probe(config, tmp_path / "a")
    on_postgres = await probe(attrs.evolve(config, database=_settings(new_postgres_url())), tmp_path / "b")
    assert on_postgres == on_sqlite
    assert all(status < 500 for _n, status, _c in on_postgres), on_postgres


async def test_a_lost_database_connection_answers_503_then_recovers(tmp_path: Path) -> None:
    import aiohttp
    import psycopg

    url = new_postgres_url() + "&application_name=appusers_victim"
    config = attrs.evolve(fast(load_config(None)), database=_settings(url))
    async with LocalServer(config=config, data_dir=tmp_path / "d") as srv, aiohttp.ClientSession() as http:
        api = Api(srv, http)
        tokens = await api.login("anon-user")
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as killer:
            await killer.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'appusers_victim' AND pid <> pg_backend_pid()"
            )
        statuses = []
        for _ in range(12):
            status, _h, body = await api.request("GET", f"{api.auth}/profile", token=tokens["access_token"])
            statuses.append(status)
            if status == 503:
                assert body["error_code"] == "ServiceUnavailable"
        # The dead pooled connections answer 503 (no 500, no traceback), then fresh ones serve.
        first_ok = statuses.index(200)
        assert first_ok >= 1 and set(statuses[:first_ok]) == {503}, statuses
        assert set(statuses[first_ok:]) == {200}, statuses
