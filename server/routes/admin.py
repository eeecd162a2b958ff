"""The Admin API v3, user-management part (docs/admin-api.md), under ``/api/admin/v3.0``.

Served only when an admin key pair is configured (otherwise every admin path is an
unknown route: 404). Log-in with the key pair, refresh and end the admin session, list
the app, and under ``/groups/{groupId}/apps/{appId}``: users (list, create, get, delete,
enable, disable, log out) and pending email/password users (list, confirm, delete).
``groupId`` and the app's ``_id`` are stable per data directory (``appusers serve``
prints them). One extension of this server, outside App Services' API:
``POST .../x-appusers/purge_anonymous`` runs the anonymous-user purge now.

Every route but log-in needs an admin access token: a client token, a refresh token, a
token of an ended session or of a removed key pair answers 401 ``InvalidSession``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
from aiohttp import web

from .._admin_auth import AdminAuth
from .._errors import ApiError
from .._http import empty_response, plain_json_response
from .._user_admin import check_email
from .._userpass import validate_password

if TYPE_CHECKING:
    from .._app import ServerApp

__all__ = ["ADMIN", "AdminAccess", "AdminRoutes"]

#: Every Admin API route lives under this prefix.
ADMIN = "/api/admin/v3.0"
_APP = ADMIN + "/groups/{group_id}/apps/{app_oid}"
#: ``?product=`` values App Services knows; ours is listed for each of them.
_PRODUCTS = frozenset({"standard", "atlas", "data-api", "device-sync"})
#: A century: beyond it the cutoff leaves the clock's range.
_MAX_DAYS = 36500


@attrs.frozen
class AdminAccess:
    """What the admin routes need besides the server: the key-pair authenticator and the
    ids of the one group and app this server has."""

    auth: AdminAuth
    group_id: str
    app_object_id: str


class AdminRoutes:
    """Admin log-in and session, the app list, users and pending users."""

    def __init__(self, server: ServerApp, access: AdminAccess):
        self.server = server
        self.access = access

    def routes(self) -> list[web.RouteDef]:
        """This group's routes."""
        return [
            web.post(ADMIN + "/auth/providers/{provider}/login", self.login),
            web.post(ADMIN + "/auth/session", self.refresh),
            web.delete(ADMIN + "/auth/session", self.logout),
            web.get(ADMIN + "/groups/{group_id}/apps", self.list_apps),
            web.get(_APP, self.get_app),
            web.get(_APP + "/users", self.list_users),
            web.post(_APP + "/users", self.create_user),
            web.get(_APP + "/users/{user_id}", self.get_user),
            web.delete(_APP + "/users/{user_id}", self.delete_user),
            web.put(_APP + "/users/{user_id}/{action:(enable|disable|logout)}", self.user_action),
            web.get(_APP + "/user_registrations/pending_users", self.list_pending),
            web.post(_APP + "/user_registrations/by_email/{email}/confirm", self.confirm_pending),
            web.delete(_APP + "/user_registrations/by_email/{email}", self.delete_pending),
            web.post(_APP + "/x-appusers/purge_anonymous", self.purge_anonymous),
        ]

    # ------------------------------------------------------------------ plumbing
    def _token(self, request: web.Request) -> str:
        token = self.server.bearer(request)
        if token is None:
            raise ApiError.must_authenticate()
        return token

    async def _authorized(self, request: web.Request) -> None:
        """An admin access token, then the group (and app, on app routes) of the path."""
        await self.access.auth.verify_access(self._token(request))
        if request.match_info.get("group_id") != self.access.group_id:
            raise ApiError(404, "GroupNotFound", "group not found")
        app_oid = request.match_info.get("app_oid")
        if app_oid is not None and app_oid != self.access.app_object_id:
            raise ApiError(404, "AppNotFound", "app not found")

    def _app_document(self) -> dict[str, Any]:
        client_app_id = self.server.config.app_id
        return {
            "_id": self.access.app_object_id,
            "client_app_id": client_app_id,
            "name": client_app_id,
            "group_id": self.access.group_id,
            "domain_id": self.access.app_object_id,
            "location": "local",
            "deployment_model": "GLOBAL",
            "provider_region": "local",
            "environment": "",
            "product": "standard",
            "last_used": 0,
            "last_modified": 0,
        }

    @staticmethod
    def _after(request: web.Request) -> str | None:
        after = request.query.get("after")
        return after if after else None

    # ------------------------------------------------------------------ session
    async def login(self, request: web.Request) -> web.StreamResponse:
        """``POST /auth/providers/mongodb-cloud/login`` with the key pair."""
        provider = request.match_info["provider"]
        if provider != "mongodb-cloud":
            raise ApiError(404, "AuthProviderNotFound", f"authentication provider {provider!r} not found")
        body = await self.server.read_body(request)
        result = await self.access.auth.login(body, request.remote or "unknown")
        return plain_json_response(result.body())

    async def refresh(self, request: web.Request) -> web.StreamResponse:
        """``POST /auth/session``: a new admin access token for the refresh token."""
        return plain_json_response(
            {"access_token": await self.access.auth.refresh(self._token(request))}, 201
        )

    async def logout(self, request: web.Request) -> web.StreamResponse:
        """``DELETE /auth/session``: end the admin session."""
        await self.access.auth.logout(self._token(request))
        return empty_response(204)

    # ------------------------------------------------------------------ apps
    async def list_apps(self, request: web.Request) -> web.StreamResponse:
        """``GET /groups/{groupId}/apps[?product=...]``: this server's one app."""
        await self._authorized(request)
        products = {p for p in request.query.get("product", "").split(",") if p}
        if not products <= _PRODUCTS:
            raise ApiError.invalid_parameter(f"product must be among {', '.join(sorted(_PRODUCTS))}")
        return plain_json_response([self._app_document()])

    async def get_app(self, request: web.Request) -> web.StreamResponse:
        """``GET /groups/{groupId}/apps/{appId}``."""
        await self._authorized(request)
        return plain_json_response(self._app_document())

    # ------------------------------------------------------------------ users
    async def list_users(self, request: web.Request) -> web.StreamResponse:
        """``GET users?after=&sort=_id&desc=``: ≤ 50 users by id, oldest first."""
        await self._authorized(request)
        sort = request.query.get("sort", "_id")
        if sort != "_id":
            raise ApiError.invalid_parameter("sort: the only valid value is '_id'")
        desc = request.query.get("desc", "false").lower()
        if desc not in ("true", "false"):
            raise ApiError.invalid_parameter("desc must be true or false")
        admin = self.server.user_admin
        users = await admin.page(self._after(request), descending=desc == "true")
        return plain_json_response([admin.user_document(u) for u in users])

    async def create_user(self, request: web.Request) -> web.StreamResponse:
        """``POST users {"email", "password"}``: a confirmed email/password user, 201."""
        await self._authorized(request)
        body = await self.server.read_body(request)
        email = body.get("email")
        if email is None:
            raise ApiError.missing_parameter("email")
        if not isinstance(email, str):
            raise ApiError.invalid_parameter("expected 'email' to be a string")
        password = validate_password(body)
        admin = self.server.user_admin
        user = await admin.create_email_user(check_email(email), password)
        return plain_json_response(admin.user_document(user), 201)

    async def get_user(self, request: web.Request) -> web.StreamResponse:
        """``GET users/{userId}``."""
        await self._authorized(request)
        admin = self.server.user_admin
        return plain_json_response(admin.user_document(await admin.get(request.match_info["user_id"])))

    async def delete_user(self, request: web.Request) -> web.StreamResponse:
        """``DELETE users/{userId}``: 204; sessions end, documents stay."""
        await self._authorized(request)
        # Fires the DELETE authentication triggers as a self-delete does (whether App Services does
        # so for admin deletes is unconfirmed; a trigger that must not run can check the event).
        self.server.user_deleted(await self.server.user_admin.delete(request.match_info["user_id"]))
        return empty_response(204)

    async def user_action(self, request: web.Request) -> web.StreamResponse:
        """``PUT users/{userId}/enable|disable|logout``: 204."""
        await self._authorized(request)
        admin = self.server.user_admin
        user_id, action = request.match_info["user_id"], request.match_info["action"]
        await {"enable": admin.enable, "disable": admin.disable, "logout": admin.logout}[action](user_id)
        return empty_response(204)

    # ------------------------------------------------------------------ pending users
    async def list_pending(self, request: web.Request) -> web.StreamResponse:
        """``GET user_registrations/pending_users?after=``: ≤ 50 unconfirmed accounts."""
        await self._authorized(request)
        admin = self.server.user_admin
        return plain_json_response(
            [admin.pending_document(r) for r in await admin.pending_page(self._after(request))]
        )

    async def confirm_pending(self, request: web.Request) -> web.StreamResponse:
        """``POST user_registrations/by_email/{email}/confirm``: 204."""
        await self._authorized(request)
        await self.server.user_admin.confirm_pending(request.match_info["email"])
        return empty_response(204)

    async def delete_pending(self, request: web.Request) -> web.StreamResponse:
        """``DELETE user_registrations/by_email/{email}``: 204."""
        await self._authorized(request)
        await self.server.user_admin.delete_pending(request.match_info["email"])
        return empty_response(204)

    # ------------------------------------------------------------------ extension
    async def purge_anonymous(self, request: web.Request) -> web.StreamResponse:
        """``POST x-appusers/purge_anonymous {"inactive_days"?}`` → ``{"purged", "user_ids"}``."""
        await self._authorized(request)
        body = await self.server.read_body(request)
        days = body.get("inactive_days")
        if days is not None and (
            isinstance(days, bool) or not isinstance(days, int | float) or not 0 < days <= _MAX_DAYS
        ):
            raise ApiError.invalid_parameter(
                f"inactive_days must be a number above 0 and at most {_MAX_DAYS}"
            )
        purged = await self.server.user_admin.purge_anonymous(inactive_days=days)
        return plain_json_response({"purged": len(purged), "user_ids": purged})
