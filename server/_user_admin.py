"""Managing users from outside: list, disable, enable, delete, end sessions, pending accounts,
and the anonymous-user purge (docs/admin-api.md; no HTTP here: the Admin API routes and the
``LocalServer`` test hooks both call this).

* **Disable**: the user cannot log in (``UserDisabled``), every session ends and every
  access token stops working at once (the generation is bumped). Tokens the server signed
  for a disabled user keep answering ``UserDisabled`` rather than ``InvalidSession`` so a
  client can tell "account disabled" from "session expired". **Enable** lets it log in
  again; old sessions stay ended.
* **Delete**: the user, its identities, sessions, API keys and email/password account go;
  documents it wrote (custom data included) stay, as on App Services.
* **Anonymous purge**: users whose identities are all anonymous and who neither logged in
  nor refreshed for ``inactive_days`` are deleted (App Services' 90-day rule for inactive
  anonymous users), by a periodic task and on request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from ._config import AnonymousPurgeSettings, ScryptSettings
from ._errors import ApiError
from ._secrets import hash_password, new_object_id
from ._store import DuplicateError, IdentityRecord, UserpassRecord, UserRecord, UserStore

__all__ = ["PAGE_SIZE", "UserAdmin", "check_email", "check_object_id", "domain_id"]

log = logging.getLogger("appusers.server")

#: App Services pages users and pending users by 50.
PAGE_SIZE = 50
_HEX = frozenset("0123456789abcdef")
_PURGE_BATCH = 500


def domain_id(app_id: str) -> str:
    """The app's ``domain_id`` (stable per client app id)."""
    return hashlib.sha256(f"domain/{app_id}".encode()).hexdigest()[:24]


def check_object_id(value: str) -> bool:
    """Whether ``value`` is a 24-hex ObjectId string as this server writes them."""
    return len(value) == 24 and all(c in _HEX for c in value)


def check_email(value: str) -> str:
    """``value`` if it can be an email/password account name; 400 otherwise."""
    if not value or len(value) > 320 or value != value.strip():
        raise ApiError.invalid_parameter("expected an email address of 1 to 320 characters")
    if any(ord(c) < 0x20 or c == "\x7f" or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise ApiError.invalid_parameter("email address contains control characters")
    return value


def _user_not_found() -> ApiError:
    return ApiError(404, "UserNotFound", "user not found")


class UserAdmin:
    """User management over a :class:`UserStore`."""

    def __init__(
        self,
        *,
        store: UserStore,
        app_id: str,
        purge: AnonymousPurgeSettings,
        scrypt: ScryptSettings,
        userpass_provider_id: Callable[[], str | None],
        clock: Callable[[], float] = time.time,
    ):
        self._store = store
        self._app_id = app_id
        self._purge = purge
        self._scrypt = scrypt
        self._userpass_provider_id = userpass_provider_id
        self.clock = clock
        self._task: asyncio.Task[None] | None = None
        #: Open watch streams by user: (session id, the task serving the stream).
        self._streams: dict[str, set[tuple[str, asyncio.Task[Any]]]] = {}

    def __repr__(self) -> str:
        return f"UserAdmin(app_id={self._app_id!r})"

    # ------------------------------------------------------------------ documents
    def user_document(self, user: UserRecord) -> dict[str, Any]:
        """The Admin API's User object."""
        identities = []
        for i in user.identities:
            entry: dict[str, Any] = {
                "id": i.id,
                "provider_type": i.provider_type,
                "provider_id": i.provider_id,
            }
            if i.provider_data:
                entry["provider_data"] = dict(i.provider_data)
            identities.append(entry)
        return {
            "_id": user.id,
            "identities": identities,
            "type": user.type,
            "creation_date": user.created,
            "last_authentication_date": user.last_login or user.created,
            "disabled": user.disabled,
            "data": dict(user.data),
        }

    def pending_document(self, record: UserpassRecord) -> dict[str, Any]:
        """The Admin API's pending-user object."""
        return {
            "_id": record.identity_id,
            "domain_id": domain_id(self._app_id),
            "login_ids": [{"id_type": "email", "id": record.email}],
            "user_id": "",
        }

    # ------------------------------------------------------------------ users
    async def get(self, user_id: str) -> UserRecord:
        """The user; 404 ``UserNotFound`` for an unknown or malformed id."""
        user = await self._store.get_user(user_id) if check_object_id(user_id) else None
        if user is None:
            raise _user_not_found()
        return user

    async def page(self, after: str | None, *, descending: bool = False) -> list[UserRecord]:
        """One page of users by id (creation order): oldest first unless ``descending``."""
        if after is not None and not check_object_id(after):
            raise ApiError.invalid_parameter("'after' must be a user id (24 hex digits)")
        return await self._store.list_users(after, PAGE_SIZE, descending)

    async def disable(self, user_id: str) -> None:
        """Refuse the user's log-ins and end every session and access token now."""
        user = await self.get(user_id)
        await self._store.set_user_disabled(user.id, True)
        await self.end_sessions(user.id)

    async def enable(self, user_id: str) -> None:
        """Let a disabled user log in again."""
        user = await self.get(user_id)
        await self._store.set_user_disabled(user.id, False)

    async def end_sessions(self, user_id: str) -> None:
        """Every refresh token and access token of the user stops working, and every
        watch stream it has open ends."""
        await self._store.delete_sessions(user_id)
        await self._store.bump_generation(user_id)
        await self.end_revoked_streams(user_id)

    # ------------------------------------------------------------------ open streams
    @contextlib.contextmanager
    def stream(self, user_id: str, session_id: str) -> Iterator[None]:
        """Track the current task as a watch stream of the user's session while it runs."""
        task = asyncio.current_task()
        assert task is not None
        entry = (session_id, task)
        self._streams.setdefault(user_id, set()).add(entry)
        try:
            yield
        finally:
            open_ = self._streams.get(user_id)
            if open_ is not None:
                open_.discard(entry)
                if not open_:
                    del self._streams[user_id]

    async def end_revoked_streams(self, user_id: str) -> int:
        """End the user's open streams whose session ended or whose user is disabled or gone
        (a stream is one long request: "the next request" never comes); how many."""
        open_ = list(self._streams.get(user_id, ()))
        if not open_:
            return 0
        user = await self._store.get_user(user_id)
        ended = 0
        for session_id, task in open_:
            if user is None or user.disabled or await self._store.get_session(session_id) is None:
                task.cancel()
                ended += 1
        return ended

    async def logout(self, user_id: str) -> None:
        """Revoke every session of the user (it must log in again)."""
        user = await self.get(user_id)
        await self.end_sessions(user.id)

    async def delete(self, user_id: str) -> UserRecord:
        """Delete the user and its sessions, keys and account (its documents stay); the deleted user."""
        user = await self.get(user_id)
        await self._store.delete_user(user.id)
        await self.end_revoked_streams(user.id)
        return user

    async def touched(self, user_id: str, *, login: bool) -> None:
        """Record a log-in or a refresh (what keeps an anonymous user from the purge)."""
        await self._store.touch_user(user_id, int(self.clock()), login=login)

    async def create_email_user(self, email: str, password: str) -> UserRecord:
        """A confirmed email/password user, as ``POST users`` makes it."""
        provider_id = self._userpass_provider_id()
        if provider_id is None:
            raise ApiError(400, "AuthProviderNotFound", "the email/password provider is not enabled")
        identity_id = new_object_id()
        record = UserpassRecord(
            email=email,
            identity_id=identity_id,
            password_hash=await asyncio.to_thread(hash_password, password, self._scrypt),
            confirmed=True,
            created=int(self.clock()),
        )
        try:
            await self._store.create_userpass(record)
        except DuplicateError:
            raise ApiError(409, "AccountNameInUse", "name already in use") from None
        identity = IdentityRecord(
            id=identity_id,
            provider_type="local-userpass",
            provider_id=provider_id,
            provider_data={"email": email},
        )
        try:
            return await self._store.create_user("normal", {"email": email}, identity)
        except BaseException:
            await self._store.delete_userpass(email)
            raise

    # ------------------------------------------------------------------ pending users
    async def pending_page(self, after: str | None) -> list[UserpassRecord]:
        """One page of unconfirmed email/password accounts."""
        if after is not None and not check_object_id(after):
            raise ApiError.invalid_parameter("'after' must be a pending user id (24 hex digits)")
        return await self._store.list_pending(after, PAGE_SIZE)

    async def _pending(self, email: str) -> UserpassRecord:
        record = await self._store.get_userpass(check_email(email))
        if record is None or record.confirmed:
            raise ApiError(404, "UserNotFound", "pending user not found")
        return record

    async def confirm_pending(self, email: str) -> None:
        """Confirm an unconfirmed account (its emailed tokens stop working)."""
        record = await self._pending(email)
        await self._store.confirm_userpass(record.email)
        await self._store.delete_email_tokens(record.email, "confirm")

    async def delete_pending(self, email: str) -> None:
        """Forget an unconfirmed account."""
        record = await self._pending(email)
        await self._store.delete_userpass(record.email)

    # ------------------------------------------------------------------ anonymous purge
    async def purge_anonymous(self, *, inactive_days: float | None = None) -> list[str]:
        """Delete anonymous users inactive for ``inactive_days`` (default: the configured
        number; 0 turns the purge off); the deleted ids."""
        days = self._purge.inactive_days if inactive_days is None else inactive_days
        if not 0 <= days <= 36500:  # also refuses NaN
            raise ApiError.invalid_parameter("inactive days must be between 0 and 36500")
        if days == 0:
            return []
        cutoff = int(self.clock() - days * 86400)
        purged: list[str] = []
        while True:
            batch = await self._store.purge_anonymous(cutoff, _PURGE_BATCH)
            purged.extend(batch)
            if len(batch) < _PURGE_BATCH:
                break
            await asyncio.sleep(0)  # let requests through between batches
        if purged:
            log.info("purged %d anonymous users inactive for %g days", len(purged), days)
        return purged

    def start(self) -> None:
        """Run the purge every ``interval`` seconds (if both settings are non-zero)."""
        if self._purge.interval > 0 and self._purge.inactive_days > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._purge_forever())

    async def stop(self) -> None:
        """Stop the periodic purge."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _purge_forever(self) -> None:
        while True:
            try:
                await self.purge_anonymous()
            except Exception:  # a failed round must not end the task; the next one retries
                log.exception("anonymous-user purge failed")
            await asyncio.sleep(self._purge.interval)
