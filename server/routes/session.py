"""Client authentication and sessions: location, log-in and linking, refresh, log-out, profile, delete.

The client API's routes under ``/app/{app_id}/location``, ``.../auth/providers`` and ``/auth``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
from aiohttp import web

from .._errors import ApiError
from .._http import empty_response, json_response
from .._providers import Resolved
from .._secrets import digest, new_object_id
from .._store import DuplicateError, SessionRecord, UserRecord
from .._tokens import TokenClaims
from ._paths import APP, CLIENT

if TYPE_CHECKING:
    from .._app import ServerApp

__all__ = ["SessionRoutes"]

_ZERO_ID = "0" * 24


class SessionRoutes:
    """Location, log-in/link, refresh, log-out, profile and delete."""

    def __init__(self, server: ServerApp):
        self.server = server

    def routes(self) -> list[web.RouteDef]:
        """This group's routes."""
        return [
            web.get(APP + "/location", self.location),
            web.post(APP + "/auth/providers/{provider}/login", self.login),
            web.post(CLIENT + "/auth/session", self.refresh),
            web.delete(CLIENT + "/auth/session", self.logout),
            web.get(CLIENT + "/auth/profile", self.profile),
            web.delete(CLIENT + "/auth/delete", self.delete_user),
        ]

    # ------------------------------------------------------------------ location
    async def location(self, request: web.Request) -> web.StreamResponse:
        """#1 hostname discovery."""
        if (fault := self.server.enter("location")) is not None:
            return fault
        self.server.check_app(request)
        url = self.server.url()
        # Device Sync is not provided, so no `sync_route` is advertised. `ws_hostname` stays:
        # core-based SDKs refuse a location reply without it (MissingJsonKey) and would then fail
        # every request, log-in included; realm-web ignores both. Nothing listens under it.
        return json_response(
            {
                "deployment_model": "GLOBAL",
                "location": "local",
                "hostname": url,
                "ws_hostname": "ws" + url[len("http") :],
            }
        )

    # ------------------------------------------------------------------ login & link
    async def login(self, request: web.Request) -> web.StreamResponse:
        """#2 login, and #2b link with ``?link=true``."""
        linking = request.query.get("link", "").lower() == "true"
        if (fault := self.server.enter("link" if linking else "login")) is not None:
            return fault
        self.server.check_app(request)
        provider = request.match_info["provider"]
        linked: tuple[TokenClaims, UserRecord] | None = None
        if linking:
            linked = await self.server.access(request)
        body = await self.server.read_body(request)
        resolved = await self.server.providers.resolve(
            provider, body, lambda: self.server.client_address(request)
        )
        if linked is not None:
            return await self._link(linked, resolved)
        identity = resolved.identity
        # A user API key's sessions end when the key is disabled or deleted.
        key_id = identity.id if resolved.owner and identity.provider_type == "api-key" else None
        opener = _SessionOpener(self.server, _device_id(body), key_id)
        now = int(self.server.user_admin.clock())
        user, created = await self._user_for(resolved, opener, now)
        if user.disabled:
            raise ApiError.user_disabled()
        if opener.session is None:
            # One commit: the session and the user's log-in time (a new user's came with it).
            await self.server.store.open_session(opener.new(user.id), now)
        session, refresh = opener.session, opener.refresh
        assert session is not None
        reply = json_response(
            {
                "access_token": await self.server.access_token(user, session, created=created),
                "refresh_token": refresh,
                "user_id": user.id,
                "device_id": session.device_id,
            }
        )
        # Triggers start only once the log-in cannot fail any more, and never delay it.
        if created:
            self.server.triggers.fire("CREATE", user, [provider])
        self.server.triggers.fire("LOGIN", user, [provider])
        return reply

    async def _user_for(
        self, resolved: Resolved, opener: _SessionOpener, now: int
    ) -> tuple[UserRecord, bool]:
        """The user the identity belongs to, and whether this log-in created it.

        A user created here gets its session in the same transaction (``opener``).
        """
        identity = resolved.identity
        if resolved.fresh:
            owner = None
        else:
            owner = resolved.owner or await self.server.store.find_identity_owner(
                identity.provider_type, identity.id
            )
        if owner is None:
            try:
                created = await self.server.store.create_user(
                    resolved.user_type, _clean_data(resolved.data), identity, session=opener.new, now=now
                )
                await self.server.user_created(created)
                return created, True
            except DuplicateError:  # a concurrent first login created it meanwhile
                opener.session = None  # rolled back with the user
                owner = await self.server.store.find_identity_owner(identity.provider_type, identity.id)
                if owner is None:
                    raise ApiError(409, "AccountNameInUse", "identity already exists") from None
        if (
            resolved.owner is not None
            and await self.server.store.find_identity_owner(identity.provider_type, identity.id) is None
        ):
            await self.server.store.add_identity(owner, identity)
        else:
            await self.server.store.update_identity_data(
                identity.provider_type, identity.id, identity.provider_data
            )
        user = await self.server.store.get_user(owner)
        if user is None:
            raise ApiError.unauthorized_login()
        return await self._merge_data(user, resolved.data), False

    async def _merge_data(self, user: UserRecord, data: Mapping[str, str]) -> UserRecord:
        merged = {**user.data, **_clean_data(data)}
        if merged != dict(user.data):
            await self.server.store.set_user_data(user.id, merged)
            user = attrs.evolve(user, data=merged)
        return user

    async def _link(self, linked: tuple[TokenClaims, UserRecord], resolved: Resolved) -> web.Response:
        claims, user = linked
        identity = resolved.identity
        if identity.provider_type == "anon-user":
            raise ApiError.bad_request("cannot link an anonymous identity to an existing user")
        owner = resolved.owner or await self.server.store.find_identity_owner(
            identity.provider_type, identity.id
        )
        if owner is not None and owner != user.id:
            raise ApiError(
                409, "AccountNameInUse", "a user already exists with the specified provider identity"
            )
        if await self.server.store.find_identity_owner(identity.provider_type, identity.id) is None:
            try:
                await self.server.store.add_identity(user.id, identity)
            except DuplicateError:
                raise ApiError(
                    409, "AccountNameInUse", "a user already exists with the specified provider identity"
                ) from None
        user = await self._merge_data(user, resolved.data)
        session = await self.server.store.get_session(claims.session_id)
        if session is None:
            raise ApiError.invalid_session("invalid session: session revoked")
        return json_response(
            {
                "access_token": await self.server.access_token(user, session),
                "user_id": user.id,
                "device_id": session.device_id,
            }
        )

    # ------------------------------------------------------------------ session
    async def refresh(self, request: web.Request) -> web.StreamResponse:
        """#4 new access token for a refresh token (never rotated)."""
        if (fault := self.server.enter("refresh")) is not None:
            return fault
        session, user = await self.server.refresh_session(request, "invalid session: invalid refresh token")
        if user.disabled:
            raise ApiError.user_disabled()
        await self.server.user_admin.touched(user.id, login=False)
        return json_response({"access_token": await self.server.access_token(user, session)}, 201)

    async def logout(self, request: web.Request) -> web.StreamResponse:
        """#5 revoke the refresh token's session."""
        if (fault := self.server.enter("logout")) is not None:
            return fault
        try:
            session, _user = await self.server.refresh_session(request)
        except ApiError as err:
            if err.code == "MissingAuthReq":
                raise
            # Clients look for this phrase to treat "already logged out" as success.
            raise ApiError.invalid_session("invalid session: failed to find refresh token") from None
        await self.server.store.delete_session(session.id)
        await self.server.user_admin.end_revoked_streams(session.user_id)
        return empty_response(204)

    async def profile(self, request: web.Request) -> web.StreamResponse:
        """#6 user profile."""
        if (fault := self.server.enter("profile")) is not None:
            return fault
        _claims, user = await self.server.access(request)
        return json_response(self._profile_body(user))

    def _profile_body(self, user: UserRecord) -> dict[str, Any]:
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
            "user_id": user.id,
            "domain_id": _domain_id(self.server.config.app_id),
            "type": user.type,
            "identities": identities,
            "data": dict(user.data),
        }

    async def delete_user(self, request: web.Request) -> web.StreamResponse:
        """#7 delete the calling user and everything it owns (custom data documents stay)."""
        if (fault := self.server.enter("delete")) is not None:
            return fault
        _claims, user = await self.server.access(request)
        if await self.server.store.delete_user(user.id):
            self.server.user_deleted(user)
        await self.server.user_admin.end_revoked_streams(user.id)
        return empty_response(204)


class _SessionOpener:
    """Makes a log-in's session (and its refresh token) once the user's id is known."""

    def __init__(self, server: ServerApp, device_id: str, api_key_id: str | None):
        self._server = server
        self._device_id = device_id
        self._api_key_id = api_key_id
        self.session: SessionRecord | None = None
        self.refresh = ""

    def new(self, user_id: str) -> SessionRecord:
        session_id = new_object_id()
        self.refresh, expires = self._server.issuer.refresh_token(
            user_id=user_id, session_id=session_id, device_id=self._device_id
        )
        self.session = SessionRecord(
            id=session_id,
            user_id=user_id,
            device_id=self._device_id,
            refresh_digest=digest(self.refresh),
            expires_at=expires,
            api_key_id=self._api_key_id,
        )
        return self.session


def _device_id(body: Mapping[str, Any]) -> str:
    """The device id the client sent back (realm-web), else a new one."""
    options = body.get("options")
    device = options.get("device") if isinstance(options, Mapping) else None
    value = device.get("deviceId") if isinstance(device, Mapping) else None
    text = str(value) if value is not None else ""
    if len(text) == 24 and all(c in "0123456789abcdef" for c in text) and text != _ZERO_ID:
        return text
    return new_object_id()


def _clean_data(data: Mapping[str, Any]) -> dict[str, str]:
    """Profile data as strings (core's accessors expect strings for the standard keys)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        if value is None:
            continue
        out[key] = value if isinstance(value, str) else str(value)
    return out


def _domain_id(app_id: str) -> str:
    return hashlib.sha256(f"domain/{app_id}".encode()).hexdigest()[:24]
