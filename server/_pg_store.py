"""PostgreSQL implementation of :class:`UserStore` (psycopg 3 and its connection pool).

Several ``appusers serve`` processes, on one machine or many, share one database and so
behave as one server: a session ended through one is gone for all, an API key made on one
logs in on another, and the throttling counters (:class:`PgCounters`) count every
process's failures. Every statement is one indexed lookup or write on a pooled
connection in autocommit mode; the few that must be atomic run in a transaction.

The schema is versioned (``appusers_schema``): :data:`MIGRATIONS` are applied in order at
start under an advisory lock, so servers starting together migrate once. A database whose
version is newer than this code knows is refused (an older server must not write into a
schema it does not understand). Errors never show the URL's password: messages use
:func:`redact_url` and scrub the password from the driver's text.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from ._config import DatabaseSettings, redact_url
from ._errors import ConfigError
from ._store import (
    SESSION_COLUMNS,
    AdminSessionRecord,
    ApiKeyRecord,
    DuplicateError,
    EmailToken,
    IdentityRecord,
    SessionRecord,
    StoreUnavailableError,
    UserpassRecord,
    UserRecord,
)

__all__ = ["MIGRATIONS", "DatabaseError", "PostgresUserStore", "SchemaVersionError"]

#: Key of the advisory lock held while migrating (any constant; "appusers" in ASCII).
_MIGRATION_LOCK = 0x6170707573657273

#: (version, statements). Append only: a released migration never changes.
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
CREATE TABLE meta (key TEXT COLLATE "C" PRIMARY KEY, value BYTEA NOT NULL);
CREATE TABLE users (
    id TEXT COLLATE "C" PRIMARY KEY, type TEXT NOT NULL, created BIGINT NOT NULL,
    disabled BOOLEAN NOT NULL DEFAULT FALSE, generation INTEGER NOT NULL DEFAULT 0, data JSON NOT NULL,
    last_login BIGINT NOT NULL DEFAULT 0, last_active BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX users_last_active ON users (last_active);
CREATE TABLE identities (
    provider_type TEXT COLLATE "C" NOT NULL, id TEXT COLLATE "C" NOT NULL,
    user_id TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider_id TEXT NOT NULL, provider_data JSON NOT NULL, position INTEGER NOT NULL,
    PRIMARY KEY (provider_type, id)
);
CREATE INDEX identities_user ON identities (user_id);
CREATE TABLE sessions (
    id TEXT COLLATE "C" PRIMARY KEY,
    user_id TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id TEXT NOT NULL, refresh_digest TEXT NOT NULL, expires_at BIGINT NOT NULL,
    api_key_id TEXT COLLATE "C"
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_api_key ON sessions (api_key_id);
CREATE TABLE api_keys (
    id TEXT COLLATE "C" PRIMARY KEY,
    user_id TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT COLLATE "C" NOT NULL, key_digest TEXT COLLATE "C" NOT NULL UNIQUE, disabled BOOLEAN NOT NULL,
    created BIGINT NOT NULL, seq BIGSERIAL, UNIQUE (user_id, name)
);
CREATE TABLE userpass (
    email TEXT COLLATE "C" PRIMARY KEY, identity_id TEXT COLLATE "C" NOT NULL UNIQUE,
    password_hash TEXT NOT NULL, confirmed BOOLEAN NOT NULL, created BIGINT NOT NULL
);
CREATE TABLE email_tokens (
    token_id TEXT COLLATE "C" PRIMARY KEY, kind TEXT COLLATE "C" NOT NULL, email TEXT COLLATE "C" NOT NULL,
    token_digest TEXT NOT NULL, expires_at BIGINT NOT NULL
);
CREATE INDEX email_tokens_email ON email_tokens (email, kind);
CREATE TABLE admin_sessions (
    id TEXT COLLATE "C" PRIMARY KEY, public_key TEXT NOT NULL, refresh_digest TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE TABLE throttle_counters (
    name TEXT COLLATE "C" NOT NULL, key TEXT COLLATE "C" NOT NULL, failures INTEGER NOT NULL,
    last DOUBLE PRECISION NOT NULL, expires DOUBLE PRECISION NOT NULL, PRIMARY KEY (name, key)
);
CREATE INDEX throttle_counters_expires ON throttle_counters (expires);
CREATE TABLE rate_buckets (
    name TEXT COLLATE "C" NOT NULL, key TEXT COLLATE "C" NOT NULL, tokens DOUBLE PRECISION NOT NULL,
    last DOUBLE PRECISION NOT NULL, expires DOUBLE PRECISION NOT NULL, PRIMARY KEY (name, key)
);
CREATE INDEX rate_buckets_expires ON rate_buckets (expires);
""",
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]

_USER_SELECT = (
    "SELECT u.id, u.type, u.created, u.disabled, u.generation, u.data, u.last_login, u.last_active,"
    " COALESCE((SELECT json_agg(json_build_array(i.id, i.provider_type, i.provider_id, i.provider_data)"
    " ORDER BY i.position) FROM identities i WHERE i.user_id = u.id), '[]'::json) FROM users u"
)
_KEY_COLS = "id, user_id, name, key_digest, disabled, created"
_USERPASS_COLS = "email, identity_id, password_hash, confirmed, created"


class DatabaseError(ConfigError):
    """The database cannot be used: bad URL, unreachable, refused credentials, ..."""


class SchemaVersionError(DatabaseError):
    """The database's schema was written by a newer appusers."""


def _esc(key: str) -> str:
    """A counter key PostgreSQL can store: NUL (which text cannot hold) escaped, injectively."""
    return key.replace("\\", "\\\\").replace("\0", "\\0")


def _has_nul(*values: object) -> bool:
    # PostgreSQL text cannot hold NUL: such a value can match no stored row.
    return any(isinstance(v, str) and "\0" in v for v in values)


class PostgresUserStore:
    """:class:`UserStore` on a PostgreSQL database; open with :meth:`open`."""

    def __init__(self, pool: Any, safe_url: str):
        self._pool = pool
        self._safe_url = safe_url
        self.counters = PgCounters(pool)

    def __repr__(self) -> str:
        return f"PostgresUserStore({self._safe_url!r})"

    @classmethod
    async def open(cls, settings: DatabaseSettings, *, migrate: bool = True) -> PostgresUserStore:
        """Connect, apply pending migrations (``migrate``) and open the pool; DatabaseError otherwise."""
        url = settings.url
        assert url is not None
        try:
            import psycopg
            from psycopg_pool import AsyncConnectionPool
        except ImportError:
            raise DatabaseError(
                "a postgresql:// database needs psycopg: pip install 'appusers[postgres]'"
            ) from None
        safe = redact_url(url)
        await migrate_database(url, settings.connect_timeout, apply=migrate)
        pool = AsyncConnectionPool(
            url,
            min_size=settings.pool_min,
            max_size=settings.pool_size,
            kwargs={"autocommit": True},
            open=False,
            name="appusers",
            timeout=settings.connect_timeout,
        )
        try:
            await pool.open(wait=settings.pool_min > 0, timeout=settings.connect_timeout)
        except (psycopg.Error, Exception) as exc:
            await pool.close()
            raise DatabaseError(f"cannot open connections to {safe}: {_scrub(exc, url)}") from None
        return cls(pool, safe)

    async def close(self) -> None:
        await self._pool.close()

    def _connect(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return _connection(self._pool)

    async def _one(self, sql: str, args: Sequence[Any] = ()) -> Any:
        async with self._connect() as conn:
            cur = await conn.execute(sql, args)
            return await cur.fetchone()

    async def _all(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        async with self._connect() as conn:
            cur = await conn.execute(sql, args)
            return list(await cur.fetchall())

    async def _count(self, sql: str, args: Sequence[Any] = ()) -> int:
        async with self._connect() as conn:
            cur = await conn.execute(sql, args)
            return int(cur.rowcount)

    async def signing_secret(self) -> bytes:
        await self._count(
            "INSERT INTO meta (key, value) VALUES ('signing_secret', %s) ON CONFLICT DO NOTHING",
            (secrets.token_bytes(64),),
        )
        row = await self._one("SELECT value FROM meta WHERE key='signing_secret'")
        return bytes(row[0])

    # users and identities
    @staticmethod
    async def _insert_identity(conn: Any, user_id: str, identity: IdentityRecord) -> None:
        import psycopg

        try:
            async with conn.transaction():  # a savepoint inside create_user's transaction
                await conn.execute(
                    "INSERT INTO identities"
                    " (provider_type, id, user_id, provider_id, provider_data, position)"
                    " SELECT %s, %s, %s, %s, %s,"
                    " COALESCE((SELECT MAX(position) FROM identities WHERE user_id=%s), -1) + 1",
                    (
                        identity.provider_type,
                        identity.id,
                        user_id,
                        identity.provider_id,
                        json.dumps(dict(identity.provider_data)),
                        user_id,
                    ),
                )
        except psycopg.errors.UniqueViolation:
            raise DuplicateError("identity already exists") from None

    async def create_user(
        self,
        user_type: str,
        data: Mapping[str, str],
        identity: IdentityRecord,
        *,
        session: Callable[[str], SessionRecord] | None = None,
        now: int | None = None,
    ) -> UserRecord:
        from ._secrets import new_object_id

        user_id = new_object_id()
        now = int(time.time()) if now is None else now
        last_login = 0 if session is None else now
        async with self._connect() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO users (id, type, created, disabled, generation, data, last_login, last_active)"
                " VALUES (%s, %s, %s, FALSE, 0, %s, %s, %s)",
                (user_id, user_type, now, json.dumps(dict(data)), last_login, now),
            )
            await self._insert_identity(conn, user_id, identity)
            if session is not None:
                await self._insert_session(conn, session(user_id))
        return UserRecord.new(user_id, user_type, data, identity, now=now, last_login=last_login)

    async def get_user(self, user_id: str) -> UserRecord | None:
        if _has_nul(user_id):
            return None
        row = await self._one(_USER_SELECT + " WHERE u.id=%s", (user_id,))
        return None if row is None else _user(row)

    async def find_identity_owner(self, provider_type: str, identity_id: str) -> str | None:
        if _has_nul(provider_type, identity_id):
            return None
        row = await self._one(
            "SELECT user_id FROM identities WHERE provider_type=%s AND id=%s", (provider_type, identity_id)
        )
        return None if row is None else str(row[0])

    async def add_identity(self, user_id: str, identity: IdentityRecord) -> None:
        async with self._connect() as conn:
            await self._insert_identity(conn, user_id, identity)

    async def update_identity_data(
        self, provider_type: str, identity_id: str, data: Mapping[str, Any]
    ) -> None:
        await self._count(
            "UPDATE identities SET provider_data=%s WHERE provider_type=%s AND id=%s",
            (json.dumps(dict(data)), provider_type, identity_id),
        )

    async def set_user_data(self, user_id: str, data: Mapping[str, str]) -> None:
        await self._count("UPDATE users SET data=%s WHERE id=%s", (json.dumps(dict(data)), user_id))

    async def bump_generation(self, user_id: str) -> None:
        await self._count("UPDATE users SET generation = generation + 1 WHERE id=%s", (user_id,))

    async def delete_user(self, user_id: str) -> bool:
        if _has_nul(user_id):
            return False
        async with self._connect() as conn, conn.transaction():
            cur = await conn.execute(
                "DELETE FROM userpass WHERE identity_id IN (SELECT id FROM identities"
                " WHERE user_id=%s AND provider_type='local-userpass') RETURNING email",
                (user_id,),
            )
            emails = [r[0] for r in await cur.fetchall()]
            if emails:
                await conn.execute("DELETE FROM email_tokens WHERE email = ANY(%s)", (emails,))
            # ON DELETE CASCADE removes identities, sessions and API keys.
            cur = await conn.execute("DELETE FROM users WHERE id=%s", (user_id,))
            return bool(cur.rowcount > 0)

    async def set_user_disabled(self, user_id: str, disabled: bool) -> bool:
        if _has_nul(user_id):
            return False
        return await self._count("UPDATE users SET disabled=%s WHERE id=%s", (disabled, user_id)) > 0

    async def touch_user(self, user_id: str, now: int, *, login: bool) -> None:
        if login:
            await self._count(
                "UPDATE users SET last_login=%s, last_active=%s WHERE id=%s", (now, now, user_id)
            )
        else:
            # Refreshes come every half hour per client: skip the write within a minute.
            await self._count(
                "UPDATE users SET last_active=%s WHERE id=%s AND last_active < %s", (now, user_id, now - 60)
            )

    async def list_users(self, after: str | None, limit: int, descending: bool) -> list[UserRecord]:
        order, cmp = ("DESC", "<") if descending else ("ASC", ">")
        if after is not None and _has_nul(after):
            after = after.split("\0", 1)[0]
        where, args = ("", ()) if after is None else (f" WHERE u.id {cmp} %s", (after,))
        rows = await self._all(f"{_USER_SELECT}{where} ORDER BY u.id {order} LIMIT %s", (*args, limit))
        return [_user(r) for r in rows]

    async def purge_anonymous(self, inactive_before: int, limit: int) -> list[str]:
        rows = await self._all(
            "SELECT u.id FROM users u WHERE u.last_active < %s AND u.type='normal'"
            " AND EXISTS (SELECT 1 FROM identities i WHERE i.user_id=u.id)"
            " AND NOT EXISTS (SELECT 1 FROM identities i WHERE i.user_id=u.id"
            " AND i.provider_type != 'anon-user') ORDER BY u.last_active LIMIT %s",
            (inactive_before, limit),
        )
        ids = [str(r[0]) for r in rows]
        for user_id in ids:
            await self.delete_user(user_id)
        return ids

    async def stable_id(self, name: str) -> str:
        from ._secrets import new_object_id

        key = "id/" + name
        await self._count(
            "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (key, new_object_id().encode()),
        )
        row = await self._one("SELECT value FROM meta WHERE key=%s", (key,))
        return bytes(row[0]).decode()

    # sessions
    @staticmethod
    async def _insert_session(conn: Any, session: SessionRecord) -> None:
        await conn.execute(
            f"INSERT INTO sessions ({SESSION_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)",  # noqa: S608
            session.row(),
        )

    async def create_session(self, session: SessionRecord) -> None:
        async with self._connect() as conn:
            await self._insert_session(conn, session)

    async def open_session(self, session: SessionRecord, now: int) -> None:
        async with self._connect() as conn, conn.transaction():
            await self._insert_session(conn, session)
            await conn.execute(
                "UPDATE users SET last_login=%s, last_active=%s WHERE id=%s", (now, now, session.user_id)
            )

    async def get_session(self, session_id: str) -> SessionRecord | None:
        if _has_nul(session_id):
            return None
        row = await self._one(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id=%s", (session_id,))  # noqa: S608
        return None if row is None else SessionRecord(*row)

    async def delete_session(self, session_id: str) -> bool:
        if _has_nul(session_id):
            return False
        return await self._count("DELETE FROM sessions WHERE id=%s", (session_id,)) > 0

    async def delete_sessions(self, user_id: str) -> int:
        if _has_nul(user_id):
            return 0
        return await self._count("DELETE FROM sessions WHERE user_id=%s", (user_id,))

    # API keys
    async def create_api_key(self, key: ApiKeyRecord) -> None:
        import psycopg

        try:
            await self._count(
                "INSERT INTO api_keys (id, user_id, name, key_digest, disabled, created)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (key.id, key.user_id, key.name, key.key_digest, key.disabled, key.created),
            )
        except psycopg.errors.UniqueViolation:
            raise DuplicateError("API key name in use") from None

    async def list_api_keys(self, user_id: str) -> list[ApiKeyRecord]:
        if _has_nul(user_id):
            return []
        rows = await self._all(
            f"SELECT {_KEY_COLS} FROM api_keys WHERE user_id=%s ORDER BY created, seq",  # noqa: S608
            (user_id,),
        )
        return [_key(r) for r in rows]

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        if _has_nul(key_id):
            return None
        row = await self._one(f"SELECT {_KEY_COLS} FROM api_keys WHERE id=%s", (key_id,))  # noqa: S608
        return None if row is None else _key(row)

    async def find_api_key(self, key_digest: str) -> ApiKeyRecord | None:
        if _has_nul(key_digest):
            return None
        row = await self._one(f"SELECT {_KEY_COLS} FROM api_keys WHERE key_digest=%s", (key_digest,))  # noqa: S608
        return None if row is None else _key(row)

    async def set_api_key_disabled(self, key_id: str, disabled: bool) -> None:
        if _has_nul(key_id):
            return
        async with self._connect() as conn, conn.transaction():
            await conn.execute("UPDATE api_keys SET disabled=%s WHERE id=%s", (disabled, key_id))
            if disabled:
                await conn.execute("DELETE FROM sessions WHERE api_key_id=%s", (key_id,))

    async def delete_api_key(self, key_id: str) -> bool:
        if _has_nul(key_id):
            return False
        async with self._connect() as conn, conn.transaction():
            await conn.execute("DELETE FROM sessions WHERE api_key_id=%s", (key_id,))
            cur = await conn.execute("DELETE FROM api_keys WHERE id=%s", (key_id,))
            return bool(cur.rowcount > 0)

    # email/password
    async def create_userpass(self, record: UserpassRecord) -> None:
        import psycopg

        try:
            await self._count(
                f"INSERT INTO userpass ({_USERPASS_COLS}) VALUES (%s, %s, %s, %s, %s)",  # noqa: S608
                (record.email, record.identity_id, record.password_hash, record.confirmed, record.created),
            )
        except psycopg.errors.UniqueViolation:
            raise DuplicateError("name already in use") from None

    async def get_userpass(self, email: str) -> UserpassRecord | None:
        if _has_nul(email):
            return None
        row = await self._one(f"SELECT {_USERPASS_COLS} FROM userpass WHERE email=%s", (email,))  # noqa: S608
        return None if row is None else UserpassRecord(*row)

    async def confirm_userpass(self, email: str) -> None:
        await self._count("UPDATE userpass SET confirmed=TRUE WHERE email=%s", (email,))

    async def set_password(self, email: str, password_hash: str) -> None:
        await self._count("UPDATE userpass SET password_hash=%s WHERE email=%s", (password_hash, email))

    async def delete_userpass(self, email: str) -> None:
        if _has_nul(email):
            return
        async with self._connect() as conn, conn.transaction():
            await conn.execute("DELETE FROM userpass WHERE email=%s", (email,))
            await conn.execute("DELETE FROM email_tokens WHERE email=%s", (email,))

    async def list_pending(self, after: str | None, limit: int) -> list[UserpassRecord]:
        after = "" if after is None else after.split("\0", 1)[0]
        rows = await self._all(
            f"SELECT {_USERPASS_COLS} FROM userpass"  # noqa: S608
            " WHERE NOT confirmed AND identity_id > %s ORDER BY identity_id LIMIT %s",
            (after, limit),
        )
        return [UserpassRecord(*r) for r in rows]

    async def put_email_token(self, token: EmailToken) -> None:
        await self._count(
            "INSERT INTO email_tokens (token_id, kind, email, token_digest, expires_at)"
            " VALUES (%s, %s, %s, %s, %s)",
            (token.token_id, token.kind, token.email, token.token_digest, token.expires_at),
        )

    async def take_email_token(self, token_id: str, kind: str, token_digest: str) -> EmailToken | None:
        if _has_nul(token_id, kind, token_digest):
            return None
        async with self._connect() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT token_id, kind, email, token_digest, expires_at FROM email_tokens"
                " WHERE token_id=%s AND kind=%s FOR UPDATE",
                (token_id, kind),
            )
            row = await cur.fetchone()
            # A wrong token must not consume the pending one (tokenIds are not secret).
            if row is None or not hmac.compare_digest(row[3], token_digest):
                return None
            await conn.execute("DELETE FROM email_tokens WHERE token_id=%s", (token_id,))
        return EmailToken(*row)

    async def delete_email_tokens(self, email: str, kind: str) -> None:
        if _has_nul(email, kind):
            return
        await self._count("DELETE FROM email_tokens WHERE email=%s AND kind=%s", (email, kind))

    # Admin API sessions
    async def create_admin_session(self, session: AdminSessionRecord) -> None:
        await self._count(
            "INSERT INTO admin_sessions (id, public_key, refresh_digest, expires_at) VALUES (%s, %s, %s, %s)",
            (session.id, session.public_key, session.refresh_digest, session.expires_at),
        )

    async def get_admin_session(self, session_id: str) -> AdminSessionRecord | None:
        if _has_nul(session_id):
            return None
        row = await self._one(
            "SELECT id, public_key, refresh_digest, expires_at FROM admin_sessions WHERE id=%s", (session_id,)
        )
        return None if row is None else AdminSessionRecord(*row)

    async def delete_admin_session(self, session_id: str) -> bool:
        if _has_nul(session_id):
            return False
        return await self._count("DELETE FROM admin_sessions WHERE id=%s", (session_id,)) > 0


@contextlib.asynccontextmanager
async def _connection(pool: Any) -> AsyncIterator[Any]:
    """A pooled connection; a lost database becomes :class:`StoreUnavailableError` (503).

    A transaction cut by the loss is rolled back by PostgreSQL, so nothing is half-written.
    The pool drops the broken connection and opens new ones when the database is back.
    """
    import psycopg
    from psycopg_pool import PoolTimeout

    try:
        async with pool.connection() as conn:
            yield conn
    except (psycopg.OperationalError, PoolTimeout) as exc:
        raise StoreUnavailableError(f"database unavailable ({type(exc).__name__})") from None


def _user(row: Any) -> UserRecord:
    return UserRecord(
        id=row[0],
        type=row[1],
        created=row[2],
        disabled=row[3],
        generation=row[4],
        data=row[5],
        identities=tuple(
            IdentityRecord(id=i[0], provider_type=i[1], provider_id=i[2], provider_data=i[3]) for i in row[8]
        ),
        last_login=row[6],
        last_active=row[7],
    )


def _key(row: Any) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row[0], user_id=row[1], name=row[2], key_digest=row[3], disabled=row[4], created=row[5]
    )


def _scrub(exc: BaseException, url: str) -> str:
    """The driver's message for ``exc`` (first line), with the URL's password removed."""
    from psycopg.conninfo import conninfo_to_dict

    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    try:
        password = conninfo_to_dict(url).get("password")
    except Exception:  # an unparsable URL: mask what looks like one
        password = None
    if password:
        text = text.replace(str(password), "***")
    return redact_url(text)


async def migrate_database(url: str, timeout: float, *, apply: bool = True) -> int:
    """Bring the schema to :data:`SCHEMA_VERSION` (``apply``) or check it; the version found before.

    DatabaseError for a bad URL, an unreachable server or refused credentials;
    SchemaVersionError for a schema newer than this code, or (``apply=False``) an older one.
    """
    import psycopg

    safe = redact_url(url)
    try:
        conn = await psycopg.AsyncConnection.connect(
            url, autocommit=True, connect_timeout=max(1, int(timeout))
        )
    except psycopg.ProgrammingError as exc:  # the URL does not parse
        raise DatabaseError(f"invalid database url {safe}: {_scrub(exc, url)}") from None
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot connect to the database {safe}: {_scrub(exc, url)}") from None
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            await conn.execute("CREATE TABLE IF NOT EXISTS appusers_schema (version INTEGER NOT NULL)")
            cur = await conn.execute("SELECT MAX(version) FROM appusers_schema")
            row = await cur.fetchone()
            found = int(row[0]) if row is not None and row[0] is not None else 0
            if found > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"the database {safe} has schema version {found}, newer than this appusers"
                    f" understands ({SCHEMA_VERSION}): upgrade appusers, or use another database"
                )
            if found < SCHEMA_VERSION and not apply:
                raise SchemaVersionError(
                    f"the database {safe} has schema version {found}; run `appusers serve --migrate-only`"
                    f" to bring it to {SCHEMA_VERSION}"
                )
            for version, statements in MIGRATIONS:
                if version > found:
                    await conn.execute(statements.encode())
                    await conn.execute("INSERT INTO appusers_schema (version) VALUES (%s)", (version,))
        return found
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot migrate the database {safe}: {_scrub(exc, url)}") from None
    finally:
        await conn.close()


class PgCounters:
    """Throttling counters and rate-limit buckets in the shared database (wall-clock seconds).

    The same operations as the in-memory :class:`~appusers.server._throttle.MemoryCounters`,
    each one statement, atomic under concurrent servers. Rows expire on their own clock;
    expired rows read as absent and are deleted now and then.
    """

    #: Seconds between sweeps of expired rows (per server process).
    SWEEP_EVERY = 60.0

    def __init__(self, pool: Any):
        self._pool = pool
        self._swept = 0.0

    def _connect(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return _connection(self._pool)

    @staticmethod
    def clock() -> float:
        return time.time()

    async def _sweep(self, conn: Any, now: float) -> None:
        if now - self._swept < self.SWEEP_EVERY:
            return
        self._swept = now
        await conn.execute("DELETE FROM throttle_counters WHERE expires < %s", (now,))
        await conn.execute("DELETE FROM rate_buckets WHERE expires < %s", (now,))

    async def read(
        self, lookups: Sequence[tuple[str, str, float]], now: float
    ) -> list[tuple[int, float] | None]:
        """Per ``(table, key, window)``: ``(failures, last)`` if its last write is within ``window``."""
        names = [t for t, _k, _w in lookups]
        keys = [_esc(k) for _t, k, _w in lookups]
        async with self._connect() as conn:
            cur = await conn.execute(
                "SELECT name, key, failures, last FROM throttle_counters"
                " WHERE (name, key) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
                (names, keys),
            )
            found = {(r[0], r[1]): (int(r[2]), float(r[3])) for r in await cur.fetchall()}
        out: list[tuple[int, float] | None] = []
        for (table, _k, window), key in zip(lookups, keys, strict=True):
            entry = found.get((table, key))
            out.append(entry if entry is not None and now - entry[1] <= window else None)
        return out

    async def fail(self, updates: Sequence[tuple[str, str, float]], now: float) -> None:
        """Count one failure under each ``(table, key, window)`` (restarting an expired count)."""
        async with self._connect() as conn:
            for table, key, window in updates:
                await conn.execute(
                    "INSERT INTO throttle_counters AS c (name, key, failures, last, expires)"
                    " VALUES (%s, %s, 1, %s, %s) ON CONFLICT (name, key) DO UPDATE SET"
                    " failures = CASE WHEN c.expires < EXCLUDED.last THEN 1 ELSE c.failures + 1 END,"
                    " last = EXCLUDED.last, expires = EXCLUDED.expires",
                    (table, _esc(key), now, now + window),
                )
            await self._sweep(conn, now)

    async def mark(self, table: str, key: str, now: float, window: float) -> None:
        """Record a success under ``key`` (read back as ``(0, now)`` for ``window`` seconds)."""
        async with self._connect() as conn:
            await conn.execute(
                "INSERT INTO throttle_counters (name, key, failures, last, expires)"
                " VALUES (%s, %s, 0, %s, %s) ON CONFLICT (name, key) DO UPDATE SET"
                " failures = 0, last = EXCLUDED.last, expires = EXCLUDED.expires",
                (table, _esc(key), now, now + window),
            )

    async def clear(self, table: str, key: str) -> None:
        """Forget ``key``."""
        async with self._connect() as conn:
            await conn.execute("DELETE FROM throttle_counters WHERE name=%s AND key=%s", (table, _esc(key)))

    async def take(self, table: str, key: str, capacity: float, rate: float, now: float) -> float:
        """Spend one token of ``key``'s bucket: 0.0 if spent, else the seconds until one is there."""
        key = _esc(key)
        full_after = capacity / rate if rate > 0 else 365 * 24 * 3600.0
        async with self._connect() as conn:
            # The level now: the stored one refilled since its last take, capped at capacity.
            cur = await conn.execute(
                "INSERT INTO rate_buckets AS b (name, key, tokens, last, expires)"
                " VALUES (%(n)s, %(k)s, %(cap)s - 1, %(now)s, %(now)s + %(full)s)"
                " ON CONFLICT (name, key) DO UPDATE SET"
                " tokens = LEAST(%(cap)s, b.tokens + (%(now)s - b.last) * %(rate)s) - 1,"
                " last = %(now)s, expires = %(now)s + %(full)s"
                " WHERE LEAST(%(cap)s, b.tokens + (%(now)s - b.last) * %(rate)s) >= 1"
                " RETURNING tokens",
                {"n": table, "k": key, "cap": capacity, "now": now, "rate": rate, "full": full_after},
            )
            if await cur.fetchone() is not None:
                await self._sweep(conn, now)
                return 0.0
            cur = await conn.execute(
                "SELECT LEAST(%s, tokens + (%s - last) * %s) FROM rate_buckets WHERE name=%s AND key=%s",
                (capacity, now, rate, table, key),
            )
            row = await cur.fetchone()
        level = capacity if row is None else float(row[0])
        return max((1 - level) / rate, 0.001) if rate > 0 else full_after
