"""The persistence seam for users, identities, sessions, API keys and email tokens.

Handlers only see :class:`UserStore` and the frozen records below; the SQLite
implementation lives in ``_sqlite_store.py``, the PostgreSQL one (a database several
server processes share) in ``_pg_store.py``. Every method is async for the latter,
although SQLite answers synchronously. Secrets arrive already hashed: a store never
sees a password, refresh token or API key. A store also holds the throttling
counters (:class:`Counters`): in memory beside SQLite (one process), in the database
beside PostgreSQL, so that a throttle tripped on one server holds on all.

Freshness: every read answers as of the call. A write committed before it, by this
process, another worker process over the same data directory or another server on
the same database, is seen: a logged-out session, a deleted or disabled user and a
revoked token (``bump_generation``) fail the very next request. A store may cache
behind that promise if it can tell cheaply that nothing changed; callers neither
invalidate nor know. The SQLite store caches users and sessions and validates them
with ``PRAGMA data_version`` (changed by any other connection's commit) on each read;
the PostgreSQL store does not cache (its ``get_user`` is one indexed query, and a
cache there would need a round trip to validate anyway).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import attrs

__all__ = [
    "SESSION_COLUMNS",
    "AdminSessionRecord",
    "ApiKeyRecord",
    "Counters",
    "DuplicateError",
    "EmailToken",
    "IdentityRecord",
    "SessionRecord",
    "StoreUnavailableError",
    "UserRecord",
    "UserStore",
    "UserpassRecord",
]


class DuplicateError(Exception):
    """A unique constraint (identity, email, key name) would be violated."""


class StoreUnavailableError(Exception):
    """The store cannot be reached right now (a shared database restarting, a network cut):
    requests are answered 503 and may be retried; nothing was half-written."""


@attrs.frozen
class IdentityRecord:
    """One provider identity of a user."""

    id: str
    provider_type: str
    provider_id: str
    provider_data: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class UserRecord:
    """A user with its identities (in link order)."""

    id: str
    type: str  # "normal" or "server"
    created: int
    disabled: bool
    generation: int
    data: Mapping[str, str]
    identities: tuple[IdentityRecord, ...]
    #: Epoch seconds of the last log-in, and of the last log-in or refresh (0: never).
    last_login: int = 0
    last_active: int = 0

    @classmethod
    def new(
        cls,
        user_id: str,
        user_type: str,
        data: Mapping[str, str],
        identity: IdentityRecord,
        *,
        now: int,
        last_login: int,
    ) -> UserRecord:
        """What a store's ``create_user`` just wrote, without reading it back (a log-in waits on it).

        The data go through JSON as the stored copy did, so the record holds what a later read gives.
        """
        return cls(
            id=user_id,
            type=user_type,
            created=now,
            disabled=False,
            generation=0,
            data=_json_copy(data),
            identities=(
                IdentityRecord(
                    id=identity.id,
                    provider_type=identity.provider_type,
                    provider_id=identity.provider_id,
                    provider_data=_json_copy(identity.provider_data),
                ),
            ),
            last_login=last_login,
            last_active=now,
        )


def _json_copy(value: Mapping[str, Any]) -> dict[str, Any]:
    # Empty for every anonymous log-in: no round trip then.
    return json.loads(json.dumps(dict(value))) if value else {}


@attrs.frozen
class SessionRecord:
    """A login session: what a refresh token stands for."""

    id: str
    user_id: str
    device_id: str
    refresh_digest: str = attrs.field(repr=False)
    expires_at: int
    #: The user API key the session logged in with: disabling or deleting it ends the session.
    api_key_id: str | None = None

    def row(self) -> tuple[str, str, str, str, int, str | None]:
        """The values of :data:`SESSION_COLUMNS`, in order (``SessionRecord(*row)`` reads one back)."""
        return (self.id, self.user_id, self.device_id, self.refresh_digest, self.expires_at, self.api_key_id)


#: The ``sessions`` table's columns in :class:`SessionRecord`'s field order (both stores' schema).
SESSION_COLUMNS = "id, user_id, device_id, refresh_digest, expires_at, api_key_id"


@attrs.frozen
class AdminSessionRecord:
    """An Admin API session: what an admin refresh token stands for."""

    id: str
    public_key: str
    refresh_digest: str = attrs.field(repr=False)
    expires_at: int


@attrs.frozen
class ApiKeyRecord:
    """A user API key (the key itself is only its digest)."""

    id: str
    user_id: str
    name: str
    key_digest: str = attrs.field(repr=False)
    disabled: bool
    created: int


@attrs.frozen
class UserpassRecord:
    """An email/password account, confirmed or pending."""

    email: str
    identity_id: str
    password_hash: str = attrs.field(repr=False)
    confirmed: bool
    created: int


@attrs.frozen
class EmailToken:
    """A pending confirmation (``confirm``) or password reset (``reset``) token."""

    token_id: str
    kind: str
    email: str
    token_digest: str = attrs.field(repr=False)
    expires_at: int


class Counters(Protocol):
    """Failure counters and token buckets for the login throttle and rate limits.

    Keys live in named tables; an entry not written for ``window`` seconds reads as absent.
    Times come from :meth:`clock` (monotonic in memory, epoch seconds when shared).
    """

    def clock(self) -> float:
        """The time the counters are kept in."""
        ...

    async def read(
        self, lookups: Sequence[tuple[str, str, float]], now: float
    ) -> list[tuple[int, float] | None]:
        """Per ``(table, key, window)``: ``(failures, last write)``, or None if absent or expired."""
        ...

    async def fail(self, updates: Sequence[tuple[str, str, float]], now: float) -> None:
        """Count one failure under each ``(table, key, window)``; an expired count restarts at 1."""
        ...

    async def mark(self, table: str, key: str, now: float, window: float) -> None:
        """Record a success (read back as ``(0, now)`` for ``window`` seconds)."""
        ...

    async def clear(self, table: str, key: str) -> None:
        """Forget one entry."""
        ...

    async def take(self, table: str, key: str, capacity: float, rate: float, now: float) -> float:
        """Spend one token of a bucket (``capacity``, refilled at ``rate``/s): 0.0, or the seconds
        until one is available (nothing spent)."""
        ...


class UserStore(Protocol):
    """Async persistence for everything but documents."""

    @property
    def counters(self) -> Counters:
        """Throttling counters kept beside this store."""
        ...

    async def signing_secret(self) -> bytes:
        """The JWT signing secret, created on first use and kept forever."""
        ...

    async def close(self) -> None:
        """Release the connection."""
        ...

    # users and identities
    async def create_user(
        self,
        user_type: str,
        data: Mapping[str, str],
        identity: IdentityRecord,
        *,
        session: Callable[[str], SessionRecord] | None = None,
        now: int | None = None,
    ) -> UserRecord:
        """Create a user owning ``identity``; DuplicateError if the identity is taken.

        With ``session`` (called with the new user's id), that session is stored and the
        log-in recorded at ``now`` in the same transaction: a first log-in commits once.
        """
        ...

    async def get_user(self, user_id: str) -> UserRecord | None:
        """The user, or None."""
        ...

    async def find_identity_owner(self, provider_type: str, identity_id: str) -> str | None:
        """The id of the user owning the identity, or None."""
        ...

    async def add_identity(self, user_id: str, identity: IdentityRecord) -> None:
        """Link ``identity`` to the user; DuplicateError if any user has it."""
        ...

    async def update_identity_data(
        self, provider_type: str, identity_id: str, data: Mapping[str, Any]
    ) -> None:
        """Replace an identity's provider data."""
        ...

    async def set_user_data(self, user_id: str, data: Mapping[str, str]) -> None:
        """Replace the profile data."""
        ...

    async def bump_generation(self, user_id: str) -> None:
        """Invalidate every access token issued to the user so far."""
        ...

    async def delete_user(self, user_id: str) -> bool:
        """Delete the user, identities, sessions, API keys and email accounts."""
        ...

    async def set_user_disabled(self, user_id: str, disabled: bool) -> bool:
        """Disable or enable the user; whether it exists."""
        ...

    async def touch_user(self, user_id: str, now: int, *, login: bool) -> None:
        """Record activity: a log-in (``login``) or a refresh at ``now``."""
        ...

    async def list_users(self, after: str | None, limit: int, descending: bool) -> list[UserRecord]:
        """Up to ``limit`` users ordered by id (oldest first unless ``descending``), after ``after``."""
        ...

    async def purge_anonymous(self, inactive_before: int, limit: int) -> list[str]:
        """Delete up to ``limit`` users whose identities are all anonymous and whose last
        activity is before ``inactive_before``; their ids."""
        ...

    async def stable_id(self, name: str) -> str:
        """A 24-hex id stored under ``name``, created on first use and kept forever."""
        ...

    # sessions
    async def create_session(self, session: SessionRecord) -> None:
        """Store a new session."""
        ...

    async def open_session(self, session: SessionRecord, now: int) -> None:
        """Store a new session and record its user's log-in at ``now``, in one transaction."""
        ...

    async def get_session(self, session_id: str) -> SessionRecord | None:
        """The session, or None."""
        ...

    async def delete_session(self, session_id: str) -> bool:
        """Delete one session; whether it existed."""
        ...

    async def delete_sessions(self, user_id: str) -> int:
        """Delete all sessions of a user."""
        ...

    # API keys
    async def create_api_key(self, key: ApiKeyRecord) -> None:
        """Store a key; DuplicateError on a name the user already uses."""
        ...

    async def list_api_keys(self, user_id: str) -> list[ApiKeyRecord]:
        """The user's keys in creation order."""
        ...

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        """One key by id."""
        ...

    async def find_api_key(self, key_digest: str) -> ApiKeyRecord | None:
        """One key by the digest of its secret."""
        ...

    async def set_api_key_disabled(self, key_id: str, disabled: bool) -> None:
        """Enable or disable a key; disabling ends every session logged in with it."""
        ...

    async def delete_api_key(self, key_id: str) -> bool:
        """Delete a key and every session logged in with it; whether it existed."""
        ...

    # email/password
    async def create_userpass(self, record: UserpassRecord) -> None:
        """Store an account; DuplicateError if the email exists."""
        ...

    async def get_userpass(self, email: str) -> UserpassRecord | None:
        """The account, or None."""
        ...

    async def confirm_userpass(self, email: str) -> None:
        """Mark the account confirmed."""
        ...

    async def set_password(self, email: str, password_hash: str) -> None:
        """Replace the password hash."""
        ...

    async def delete_userpass(self, email: str) -> None:
        """Forget the account (e.g. its confirmation function failed)."""
        ...

    async def list_pending(self, after: str | None, limit: int) -> list[UserpassRecord]:
        """Up to ``limit`` unconfirmed accounts ordered by identity id, after ``after``."""
        ...

    async def put_email_token(self, token: EmailToken) -> None:
        """Store a confirmation/reset token."""
        ...

    async def take_email_token(self, token_id: str, kind: str, token_digest: str) -> EmailToken | None:
        """Remove and return the token if id, kind and digest match; otherwise None, nothing changed."""
        ...

    async def delete_email_tokens(self, email: str, kind: str) -> None:
        """Drop older tokens of that kind for the email."""
        ...

    # Admin API sessions
    async def create_admin_session(self, session: AdminSessionRecord) -> None:
        """Store a new admin session."""
        ...

    async def get_admin_session(self, session_id: str) -> AdminSessionRecord | None:
        """The admin session, or None."""
        ...

    async def delete_admin_session(self, session_id: str) -> bool:
        """Delete one admin session; whether it existed."""
        ...
