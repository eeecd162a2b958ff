"""Admin API authentication: key-pair log-in, admin sessions and their tokens.

Admin tokens are HS256 JWTs like the client's, but signed with a key derived from the
data directory's secret for this purpose only and bound to the group (``baas_domain_id``
is ``admin/<group id>``): a client token never passes on an admin route, nor an admin
token on a client route, whatever their claims say. Each admin log-in is a session whose
refresh token is stored as a digest; its access tokens die with it (``DELETE
/auth/session``) and with their key pair's removal from the configuration.

Log-in compares the private key's sha256 digest in constant time, spends the same work
for an unknown public key, and is throttled per public key and per client address with
the client log-in's :class:`LoginThrottle` rules.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import attrs

from ._config import AdminKey, AdminSettings, ThrottleSettings
from ._errors import ApiError
from ._secrets import digest, new_object_id
from ._store import AdminSessionRecord, UserStore
from ._throttle import LoginThrottle
from ._tokens import TokenIssuer

__all__ = ["ADMIN_DEVICE_ID", "AdminAuth", "AdminLogin"]

#: Admin sessions have no device; App Services answers the zero ObjectId.
ADMIN_DEVICE_ID = "0" * 24
_NO_KEY = AdminKey("", "0" * 64)


@attrs.frozen
class AdminLogin:
    """What a successful admin log-in answers."""

    access_token: str = attrs.field(repr=False)
    refresh_token: str = attrs.field(repr=False)
    user_id: str
    device_id: str

    def body(self) -> dict[str, Any]:
        """The JSON body of ``POST /auth/providers/mongodb-cloud/login``."""
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "user_id": self.user_id,
            "device_id": self.device_id,
        }


def admin_user_id(public_key: str) -> str:
    """A stable 24-hex id for the admin "user" a key pair logs in as."""
    return hashlib.sha256(f"admin-user/{public_key}".encode()).hexdigest()[:24]


class AdminAuth:
    """Logs key pairs in and verifies admin tokens."""

    def __init__(
        self,
        *,
        settings: AdminSettings,
        throttle: ThrottleSettings,
        store: UserStore,
        signing_secret: bytes,
        group_id: str,
    ):
        self._keys = {k.public_key: k for k in settings.keys}
        self._store = store
        self._throttle = LoginThrottle(throttle, counters=store.counters, namespace="admin")
        secret = hmac.new(signing_secret, b"appusers admin api v3 tokens", hashlib.sha256).digest()
        self._issuer = TokenIssuer(
            secret, "admin/" + group_id, settings.access_token_lifetime, settings.refresh_token_lifetime
        )

    def __repr__(self) -> str:
        return f"AdminAuth(keys={len(self._keys)})"

    async def login(self, body: dict[str, Any], address: str) -> AdminLogin:
        """Check ``{"username": public key, "apiKey": private key}`` and open a session."""
        public, private = body.get("username"), body.get("apiKey")
        if public is None:
            raise ApiError.missing_parameter("username")
        if private is None:
            raise ApiError.missing_parameter("apiKey")
        if not isinstance(public, str) or not isinstance(private, str) or not public or not private:
            raise ApiError.invalid_parameter("expected 'username' and 'apiKey' to be non-empty strings")
        if len(public) > 256 or len(private) > 256:
            raise ApiError.unauthorized_login("invalid username/password")
        account = "admin:" + public
        await self._throttle.check(account, address)
        key = self._keys.get(public)
        # Compare against a dummy digest for an unknown public key: same work either way.
        matched = hmac.compare_digest(
            (key or _NO_KEY).private_key_sha256, hashlib.sha256(private.encode("utf-8")).hexdigest()
        )
        if key is None or not matched:
            await self._throttle.failed(account, address)
            raise ApiError.unauthorized_login("invalid username/password")
        await self._throttle.succeeded(account, address)
        session_id = new_object_id()
        user_id = admin_user_id(public)
        refresh, expires = self._issuer.refresh_token(
            user_id=user_id, session_id=session_id, device_id=ADMIN_DEVICE_ID
        )
        await self._store.create_admin_session(
            AdminSessionRecord(
                id=session_id, public_key=public, refresh_digest=digest(refresh), expires_at=expires
            )
        )
        return AdminLogin(self._access(user_id, session_id), refresh, user_id, ADMIN_DEVICE_ID)

    def _access(self, user_id: str, session_id: str) -> str:
        return self._issuer.access_token(
            user_id=user_id, session_id=session_id, device_id=ADMIN_DEVICE_ID, generation=0, user_data=None
        )

    async def _live_session(self, session_id: str, public_key_user: str) -> AdminSessionRecord | None:
        session = await self._store.get_admin_session(session_id)
        if session is None or admin_user_id(session.public_key) != public_key_user:
            return None
        if session.public_key not in self._keys:  # the key pair was removed from the config
            return None
        if session.expires_at < time.time():  # the tokens' own clock
            await self._store.delete_admin_session(session.id)
            return None
        return session

    async def verify_access(self, token: str) -> AdminSessionRecord:
        """The live session an admin access token belongs to; 401 otherwise."""
        claims = self._issuer.verify(token, "access", not_found="invalid session: invalid admin access token")
        session = await self._live_session(claims.session_id, claims.user_id)
        if session is None:
            raise ApiError.invalid_session("invalid session: admin session ended")
        return session

    async def _verify_refresh(self, token: str, missing: str) -> AdminSessionRecord:
        claims = self._issuer.verify(token, "refresh", not_found=missing)
        session = await self._live_session(claims.session_id, claims.user_id)
        if session is None or not hmac.compare_digest(session.refresh_digest, digest(token)):
            raise ApiError.invalid_session(missing)
        return session

    async def refresh(self, token: str) -> str:
        """A new access token for an admin refresh token."""
        try:
            self._issuer.verify(token, "access", not_found="")
        except ApiError:
            pass
        else:
            # App Services' wording when an access token is sent instead.
            raise ApiError.invalid_session("invalid refresh token: incorrect token type")
        session = await self._verify_refresh(token, "invalid session: invalid refresh token")
        return self._access(admin_user_id(session.public_key), session.id)

    async def logout(self, token: str) -> None:
        """End the session of an admin refresh token."""
        session = await self._verify_refresh(token, "invalid session: failed to find refresh token")
        await self._store.delete_admin_session(session.id)
