"""SQLite implementation of :class:`UserStore` (stdlib ``sqlite3``).

One connection per server process, used from the event loop thread: every
statement is a short indexed lookup or write, so running it inline is cheaper
than a thread hop, and the loop serialises access without extra locks. WAL mode
keeps readers from blocking; the file is created 0600.

Users and sessions are cached, because every authenticated request reads both
(issue 10: two queries and their JSON were 12 % of a function call). The cache
keeps the store's promise that a read sees every write committed before it:

* this connection's own writes drop the entries they touch (``_forget_*``);
* another connection's commits (another worker process over the same file, the
  ``appusers users`` commands, a test opening the file) change ``PRAGMA
  data_version`` of this connection, which every cached read checks first
  (a few microseconds); any change drops the whole cache. A server checks at most
  once per event-loop iteration (:attr:`SqliteUserStore.check_per_iteration`).

So a log-out, a deleted or disabled user or a revoked token takes effect on the
next request, whichever process handled the write.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ._checkpointer import Checkpointer
from ._group_commit import GroupCommit, Statement
from ._per_iteration import PerIteration
from ._secrets import new_object_id
from ._sqlite_setup import set_up
from ._store import (
    SESSION_COLUMNS,
    AdminSessionRecord,
    ApiKeyRecord,
    DuplicateError,
    EmailToken,
    IdentityRecord,
    SessionRecord,
    UserpassRecord,
    UserRecord,
)
from ._throttle import MemoryCounters

__all__ = ["SqliteUserStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY, type TEXT NOT NULL, created INTEGER NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0, generation INTEGER NOT NULL DEFAULT 0, data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS identities (
    provider_type TEXT NOT NULL, id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider_id TEXT NOT NULL, provider_data TEXT NOT NULL, position INTEGER NOT NULL,
    PRIMARY KEY (provider_type, id)
);
CREATE INDEX IF NOT EXISTS identities_user ON identities(user_id);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_id TEXT NOT NULL, refresh_digest TEXT NOT NULL, expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user_id);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL, key_digest TEXT NOT NULL UNIQUE, disabled INTEGER NOT NULL, created INTEGER NOT NULL,
    UNIQUE (user_id, name)
);
CREATE TABLE IF NOT EXISTS userpass (
    email TEXT PRIMARY KEY, identity_id TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL,
    confirmed INTEGER NOT NULL, created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS email_tokens (
    token_id TEXT PRIMARY KEY, kind TEXT NOT NULL, email TEXT NOT NULL,
    token_digest TEXT NOT NULL, expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS email_tokens_email ON email_tokens(email, kind);
CREATE TABLE IF NOT EXISTS admin_sessions (
    id TEXT PRIMARY KEY, public_key TEXT NOT NULL, refresh_digest TEXT NOT NULL, expires_at INTEGER NOT NULL
);
"""
#: Columns added after the first release: (table, column, declaration). Existing files
#: get them on open; ``last_active`` starts at the upgrade time so that users of an
#: older file are not taken for long inactive.
_ADDED_COLUMNS = (
    ("users", "last_login", "INTEGER NOT NULL DEFAULT 0"),
    ("users", "last_active", "INTEGER NOT NULL DEFAULT 0"),
    ("sessions", "api_key_id", "TEXT"),
)
_USER_COLS = "id, type, created, disabled, generation, data, last_login, last_active"
#: Cached users and sessions, each (the oldest entry leaves first past this).
_CACHE_ENTRIES = 16_384


class SqliteUserStore:
    """:class:`UserStore` on one SQLite file."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            # Create the file 0600 before sqlite opens it, whatever the umask.
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        self._path = path
        # One process uses this file: its throttling counters need not outlive it.
        self.counters = MemoryCounters()
        self._db = sqlite3.connect(path, isolation_level=None)
        # Workers open a fresh data directory at the same moment (see ._sqlite_setup).
        set_up(
            self._db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON", _SCHEMA
        )
        self._migrate()
        self._users: dict[str, UserRecord] = {}
        self._sessions: dict[str, SessionRecord] = {}
        self._data_version = self._current_version()
        self._group = GroupCommit(self._db)
        #: Check other connections' commits once per event-loop iteration, not once per read
        #: (a server's requests read two or three times each). A request's bytes were sent
        #: after every write its client saw complete, and the loop reads them only in an
        #: iteration that began after they arrived; the check is redone in the first step of
        #: the next iteration, before the callbacks of what that iteration's poll found.
        #: So every request still sees the writes committed before it was sent. Off by
        #: default: a caller reading, writing elsewhere and reading again without giving
        #: way to the loop would see the first read's cache.
        self.check_per_iteration = False
        self._version = PerIteration(self._current_version)
        self._checkpointer: Checkpointer | None = None

    def _columns(self, table: str) -> set[str]:
        return {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}

    def _migrate(self) -> None:
        for table, column, declaration in _ADDED_COLUMNS:
            if column in self._columns(table):
                continue
            with self._tx():
                # Asked again under the write lock: workers opening one file at once each
                # found the column missing, and the second one's ALTER failed.
                if column in self._columns(table):
                    continue
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
                if column == "last_active":
                    self._db.execute("UPDATE users SET last_active=?", (int(time.time()),))
        self._db.execute("CREATE INDEX IF NOT EXISTS sessions_api_key ON sessions(api_key_id)")
        self._db.execute("CREATE INDEX IF NOT EXISTS users_last_active ON users(last_active)")

    def __repr__(self) -> str:
        return f"SqliteUserStore({str(self._path)!r})"

    def checkpoint_in_background(self, *, period: float = 0.5, limit: int = 8192) -> Checkpointer:
        """Leave WAL checkpoints to a thread of their own (a server's store; see
        :mod:`._checkpointer`); until :meth:`close`. Other users of the class (the
        ``appusers users`` commands, tests) keep SQLite's auto-checkpoint."""
        if self._checkpointer is None:
            checkpointer = Checkpointer(self._path, period=period, limit=limit)
            self._db.execute("PRAGMA wal_autocheckpoint=0")
            checkpointer.start()
            self._checkpointer = checkpointer
        return self._checkpointer

    async def close(self) -> None:
        self._group.flush()
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            # Its last checkpoint runs now; on the loop, but the server is stopping anyway.
            checkpointer.stop()
        self._db.close()

    def _tx(self) -> _Tx:
        return _Tx(self._db)

    # ------------------------------------------------------------------ cache
    def _current_version(self) -> int:
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def _check_others(self) -> None:
        """Drop the cache if another connection committed since the last look."""
        version = self._version.get(asyncio.get_running_loop() if self.check_per_iteration else None)
        if version != self._data_version:
            self._data_version = version
            self._users.clear()
            self._sessions.clear()

    def _forget_user(self, user_id: str) -> None:
        self._users.pop(user_id, None)

    def _forget_sessions(self) -> None:
        self._sessions.clear()

    @staticmethod
    def _remember(cache: dict[str, Any], key: str, value: Any) -> None:
        if len(cache) >= _CACHE_ENTRIES:
            del cache[next(iter(cache))]
        cache[key] = value

    async def signing_secret(self) -> bytes:
        row = self._db.execute("SELECT value FROM meta WHERE key='signing_secret'").fetchone()
        if row is not None:
            return bytes(row[0])
        secret = secrets.token_bytes(64)
        self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('signing_secret', ?)", (secret,))
        row = self._db.execute("SELECT value FROM meta WHERE key='signing_secret'").fetchone()
        return bytes(row[0])

    # users and identities
    def _insert_identity(self, user_id: str, identity: IdentityRecord) -> None:
        pos = self._db.execute(
            "SELECT COALESCE(MAX(position), -1) + 1 FROM identities WHERE user_id=?", (user_id,)
        ).fetchone()[0]
        try:
            self._db.execute(
                "INSERT INTO identities (provider_type, id, user_id, provider_id, provider_data, position)"
                " VALUES (?,?,?,?,?,?)",
                (
                    identity.provider_type,
                    identity.id,
                    user_id,
                    identity.provider_id,
                    _json(identity.provider_data),
                    pos,
                ),
            )
        except sqlite3.IntegrityError:
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
        user_id = new_object_id()
        now = int(time.time()) if now is None else now
        last_login = 0 if session is None else now
        statements: list[Statement] = [
            (
                "INSERT INTO users (id, type, created, disabled, generation, data, last_login, last_active)"
                " VALUES (?,?,?,0,0,?,?,?)",
                (user_id, user_type, now, _json(data), last_login, now),
            ),
            (
                "INSERT INTO identities (provider_type, id, user_id, provider_id, provider_data, position)"
                " VALUES (?,?,?,?,?,0)",
                (
                    identity.provider_type,
                    identity.id,
                    user_id,
                    identity.provider_id,
                    _json(identity.provider_data),
                ),
            ),
        ]
        if session is not None:
            statements.append(_session_insert(session(user_id)))
        # Shares a transaction with the log-ins arriving meanwhile (see _group_commit).
        await self._group.write(statements)
        # What was just written, without reading it back (a log-in of a new user waits on this).
        return UserRecord.new(user_id, user_type, data, identity, now=now, last_login=last_login)

    async def get_user(self, user_id: str) -> UserRecord | None:
        self._check_others()
        cached = self._users.get(user_id)
        if cached is not None:
            return cached
        row = self._db.execute(f"SELECT {_USER_COLS} FROM users WHERE id=?", (user_id,)).fetchone()  # noqa: S608
        if row is None:
            return None
        user = self._user(row)
        self._remember(self._users, user_id, user)
        return user

    def _user(self, row: Any) -> UserRecord:
        user_id = row[0]
        identities = tuple(
            IdentityRecord(id=r[0], provider_type=r[1], provider_id=r[2], provider_data=json.loads(r[3]))
            for r in self._db.execute(
                "SELECT id, provider_type, provider_id, provider_data FROM identities"
                " WHERE user_id=? ORDER BY position",
                (user_id,),
            )
        )
        return UserRecord(
            id=row[0],
            type=row[1],
            created=row[2],
            disabled=bool(row[3]),
            generation=row[4],
            data=json.loads(row[5]),
            identities=identities,
            last_login=row[6],
            last_active=row[7],
        )

    async def find_identity_owner(self, provider_type: str, identity_id: str) -> str | None:
        row = self._db.execute(
            "SELECT user_id FROM identities WHERE provider_type=? AND id=?", (provider_type, identity_id)
        ).fetchone()
        return None if row is None else str(row[0])

    async def add_identity(self, user_id: str, identity: IdentityRecord) -> None:
        self._forget_user(user_id)
        with self._tx():
            self._insert_identity(user_id, identity)

    async def update_identity_data(
        self, provider_type: str, identity_id: str, data: Mapping[str, Any]
    ) -> None:
        row = self._db.execute(
            "SELECT user_id, provider_data FROM identities WHERE provider_type=? AND id=?",
            (provider_type, identity_id),
        ).fetchone()
        encoded = json.dumps(dict(data))
        # A log-in reports the same data every time: no write (and no commit) then.
        if row is None or row[1] == encoded:
            return
        self._forget_user(row[0])
        self._db.execute(
            "UPDATE identities SET provider_data=? WHERE provider_type=? AND id=?",
            (encoded, provider_type, identity_id),
        )

    async def set_user_data(self, user_id: str, data: Mapping[str, str]) -> None:
        self._forget_user(user_id)
        self._db.execute("UPDATE users SET data=? WHERE id=?", (json.dumps(dict(data)), user_id))

    async def bump_generation(self, user_id: str) -> None:
        self._forget_user(user_id)
        self._db.execute("UPDATE users SET generation = generation + 1 WHERE id=?", (user_id,))

    async def delete_user(self, user_id: str) -> bool:
        self._forget_user(user_id)
        self._forget_sessions()
        with self._tx():
            emails = [
                r[0]
                for r in self._db.execute(
                    "SELECT email FROM userpass WHERE identity_id IN"
                    " (SELECT id FROM identities WHERE user_id=? AND provider_type='local-userpass')",
                    (user_id,),
                )
            ]
            for email in emails:
                self._db.execute("DELETE FROM userpass WHERE email=?", (email,))
                self._db.execute("DELETE FROM email_tokens WHERE email=?", (email,))
            # ON DELETE CASCADE removes identities, sessions and API keys.
            cur = self._db.execute("DELETE FROM users WHERE id=?", (user_id,))
        return cur.rowcount > 0

    async def set_user_disabled(self, user_id: str, disabled: bool) -> bool:
        self._forget_user(user_id)
        cur = self._db.execute("UPDATE users SET disabled=? WHERE id=?", (int(disabled), user_id))
        return cur.rowcount > 0

    async def touch_user(self, user_id: str, now: int, *, login: bool) -> None:
        self._touch(user_id, now, login=login)

    def _touch(self, user_id: str, now: int, *, login: bool) -> None:
        if login:
            cur = self._db.execute(
                "UPDATE users SET last_login=?, last_active=? WHERE id=?", (now, now, user_id)
            )
        else:
            # Refreshes come every half hour per client: skip the write within a minute
            # (without a statement when the cached record, valid as of now, says so).
            cached = self._users.get(user_id)
            if cached is not None and cached.last_active >= now - 60:
                self._check_others()
                if user_id in self._users:
                    return
            cur = self._db.execute(
                "UPDATE users SET last_active=? WHERE id=? AND last_active < ?", (now, user_id, now - 60)
            )
        if cur.rowcount:
            self._forget_user(user_id)

    async def list_users(self, after: str | None, limit: int, descending: bool) -> list[UserRecord]:
        order, cmp = ("DESC", "<") if descending else ("ASC", ">")
        where, args = ("", ()) if after is None else (f"WHERE id {cmp} ?", (after,))
        rows = self._db.execute(
            f"SELECT {_USER_COLS} FROM users {where} ORDER BY id {order} LIMIT ?",  # noqa: S608
            (*args, limit),
        ).fetchall()
        return [self._user(r) for r in rows]

    async def purge_anonymous(self, inactive_before: int, limit: int) -> list[str]:
        ids = [
            str(r[0])
            for r in self._db.execute(
                "SELECT u.id FROM users u WHERE u.last_active < ? AND u.type='normal'"
                " AND EXISTS (SELECT 1 FROM identities i WHERE i.user_id=u.id)"
                " AND NOT EXISTS (SELECT 1 FROM identities i WHERE i.user_id=u.id"
                " AND i.provider_type != 'anon-user') ORDER BY u.last_active LIMIT ?",
                (inactive_before, limit),
            )
        ]
        for user_id in ids:
            await self.delete_user(user_id)
        return ids

    async def stable_id(self, name: str) -> str:
        key = "id/" + name
        self._db.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, new_object_id().encode())
        )
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return bytes(row[0]).decode()

    # sessions
    async def create_session(self, session: SessionRecord) -> None:
        self._db.execute(*_session_insert(session))

    async def open_session(self, session: SessionRecord, now: int) -> None:
        user_id = session.user_id
        await self._group.write(
            [
                _session_insert(session),
                ("UPDATE users SET last_login=?, last_active=? WHERE id=?", (now, now, user_id)),
            ],
            after=lambda: self._forget_user(user_id),
        )

    async def get_session(self, session_id: str) -> SessionRecord | None:
        self._check_others()
        cached = self._sessions.get(session_id)
        if cached is not None:
            return cached
        row = self._db.execute(
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id=?",  # noqa: S608
            (session_id,),
        ).fetchone()
        if row is None:
            return None
        session = SessionRecord(*row)
        self._remember(self._sessions, session_id, session)
        return session

    async def delete_session(self, session_id: str) -> bool:
        self._sessions.pop(session_id, None)
        return self._db.execute("DELETE FROM sessions WHERE id=?", (session_id,)).rowcount > 0

    async def delete_sessions(self, user_id: str) -> int:
        self._forget_sessions()
        return int(self._db.execute("DELETE FROM sessions WHERE user_id=?", (user_id,)).rowcount)

    # API keys
    async def create_api_key(self, key: ApiKeyRecord) -> None:
        try:
            self._db.execute(
                "INSERT INTO api_keys (id, user_id, name, key_digest, disabled, created)"
                " VALUES (?,?,?,?,?,?)",
                (key.id, key.user_id, key.name, key.key_digest, int(key.disabled), key.created),
            )
        except sqlite3.IntegrityError:
            raise DuplicateError("API key name in use") from None

    @staticmethod
    def _key(row: Any) -> ApiKeyRecord:
        return ApiKeyRecord(
            id=row[0], user_id=row[1], name=row[2], key_digest=row[3], disabled=bool(row[4]), created=row[5]
        )

    _KEY_COLS = "id, user_id, name, key_digest, disabled, created"

    async def list_api_keys(self, user_id: str) -> list[ApiKeyRecord]:
        rows = self._db.execute(
            f"SELECT {self._KEY_COLS} FROM api_keys WHERE user_id=? ORDER BY created, rowid",  # noqa: S608
            (user_id,),
        )
        return [self._key(r) for r in rows]

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        row = self._db.execute(f"SELECT {self._KEY_COLS} FROM api_keys WHERE id=?", (key_id,)).fetchone()  # noqa: S608
        return None if row is None else self._key(row)

    async def find_api_key(self, key_digest: str) -> ApiKeyRecord | None:
        row = self._db.execute(
            f"SELECT {self._KEY_COLS} FROM api_keys WHERE key_digest=?",  # noqa: S608
            (key_digest,),
        ).fetchone()
        return None if row is None else self._key(row)

    async def set_api_key_disabled(self, key_id: str, disabled: bool) -> None:
        self._forget_sessions()
        with self._tx():
            self._db.execute("UPDATE api_keys SET disabled=? WHERE id=?", (int(disabled), key_id))
            if disabled:
                self._db.execute("DELETE FROM sessions WHERE api_key_id=?", (key_id,))

    async def delete_api_key(self, key_id: str) -> bool:
        self._forget_sessions()
        with self._tx():
            self._db.execute("DELETE FROM sessions WHERE api_key_id=?", (key_id,))
            return self._db.execute("DELETE FROM api_keys WHERE id=?", (key_id,)).rowcount > 0

    # email/password
    async def create_userpass(self, record: UserpassRecord) -> None:
        try:
            self._db.execute(
                "INSERT INTO userpass (email, identity_id, password_hash, confirmed, created)"
                " VALUES (?,?,?,?,?)",
                (
                    record.email,
                    record.identity_id,
                    record.password_hash,
                    int(record.confirmed),
                    record.created,
                ),
            )
        except sqlite3.IntegrityError:
            raise DuplicateError("name already in use") from None

    async def get_userpass(self, email: str) -> UserpassRecord | None:
        row = self._db.execute(
            "SELECT email, identity_id, password_hash, confirmed, created FROM userpass WHERE email=?",
            (email,),
        ).fetchone()
        if row is None:
            return None
        return UserpassRecord(
            email=row[0], identity_id=row[1], password_hash=row[2], confirmed=bool(row[3]), created=row[4]
        )

    async def confirm_userpass(self, email: str) -> None:
        self._db.execute("UPDATE userpass SET confirmed=1 WHERE email=?", (email,))

    async def set_password(self, email: str, password_hash: str) -> None:
        self._db.execute("UPDATE userpass SET password_hash=? WHERE email=?", (password_hash, email))

    async def delete_userpass(self, email: str) -> None:
        with self._tx():
            self._db.execute("DELETE FROM userpass WHERE email=?", (email,))
            self._db.execute("DELETE FROM email_tokens WHERE email=?", (email,))

    async def list_pending(self, after: str | None, limit: int) -> list[UserpassRecord]:
        rows = self._db.execute(
            "SELECT email, identity_id, password_hash, confirmed, created FROM userpass"
            " WHERE confirmed=0 AND identity_id > ? ORDER BY identity_id LIMIT ?",
            ("" if after is None else after, limit),
        ).fetchall()
        return [
            UserpassRecord(
                email=r[0], identity_id=r[1], password_hash=r[2], confirmed=bool(r[3]), created=r[4]
            )
            for r in rows
        ]

    async def put_email_token(self, token: EmailToken) -> None:
        self._db.execute(
            "INSERT INTO email_tokens (token_id, kind, email, token_digest, expires_at) VALUES (?,?,?,?,?)",
            (token.token_id, token.kind, token.email, token.token_digest, token.expires_at),
        )

    async def take_email_token(self, token_id: str, kind: str, token_digest: str) -> EmailToken | None:
        with self._tx():
            row = self._db.execute(
                "SELECT token_id, kind, email, token_digest, expires_at FROM email_tokens"
                " WHERE token_id=? AND kind=?",
                (token_id, kind),
            ).fetchone()
            # A wrong token must not consume the pending one (tokenIds are not secret).
            if row is None or not hmac.compare_digest(row[3], token_digest):
                return None
            self._db.execute("DELETE FROM email_tokens WHERE token_id=?", (token_id,))
        return EmailToken(*row)

    async def delete_email_tokens(self, email: str, kind: str) -> None:
        self._db.execute("DELETE FROM email_tokens WHERE email=? AND kind=?", (email, kind))

    # Admin API sessions
    async def create_admin_session(self, session: AdminSessionRecord) -> None:
        self._db.execute(
            "INSERT INTO admin_sessions (id, public_key, refresh_digest, expires_at) VALUES (?,?,?,?)",
            (session.id, session.public_key, session.refresh_digest, session.expires_at),
        )

    async def get_admin_session(self, session_id: str) -> AdminSessionRecord | None:
        row = self._db.execute(
            "SELECT id, public_key, refresh_digest, expires_at FROM admin_sessions WHERE id=?", (session_id,)
        ).fetchone()
        return None if row is None else AdminSessionRecord(*row)

    async def delete_admin_session(self, session_id: str) -> bool:
        return self._db.execute("DELETE FROM admin_sessions WHERE id=?", (session_id,)).rowcount > 0


def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(dict(value)) if value else "{}"


def _session_insert(session: SessionRecord) -> Statement:
    return (
        f"INSERT INTO sessions ({SESSION_COLUMNS}) VALUES (?,?,?,?,?,?)",  # noqa: S608
        session.row(),
    )


class _Tx:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``/``ROLLBACK`` around a block."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
