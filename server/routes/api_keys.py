"""User API keys: list, create, get, enable, disable, delete (authenticated with the refresh token)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .._errors import ApiError
from .._http import empty_response, json_response
from .._secrets import digest, new_object_id, new_secret
from .._store import ApiKeyRecord, DuplicateError, UserRecord
from ._paths import CLIENT

if TYPE_CHECKING:
    from .._app import ServerApp

__all__ = ["ApiKeyRoutes"]


class ApiKeyRoutes:
    """Create, list, get, delete, enable and disable the caller's API keys."""

    def __init__(self, server: ServerApp):
        self.server = server

    def routes(self) -> list[web.RouteDef]:
        """This group's routes."""
        return [
            web.post(CLIENT + "/auth/api_keys", self.create_api_key),
            web.get(CLIENT + "/auth/api_keys", self.list_api_keys),
            web.get(CLIENT + "/auth/api_keys/{key_id}", self.get_api_key),
            web.delete(CLIENT + "/auth/api_keys/{key_id}", self.delete_api_key),
            web.put(CLIENT + "/auth/api_keys/{key_id}/{toggle:(enable|disable)}", self.toggle_api_key),
        ]

    @staticmethod
    def _key_body(key: ApiKeyRecord, secret: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"_id": key.id, "name": key.name, "disabled": key.disabled}
        if secret is not None:
            body["key"] = secret
        return body

    async def _owned_key(self, request: web.Request, user: UserRecord) -> ApiKeyRecord:
        key_id = request.match_info["key_id"]
        key = await self.server.store.get_api_key(key_id)
        if key is None or key.user_id != user.id:
            raise ApiError(404, "APIKeyNotFound", "API key not found")
        return key

    async def _api_key_user(self, request: web.Request) -> UserRecord:
        if self.server.config.providers.api_key is None:
            raise ApiError(404, "AuthProviderNotFound", "authentication provider 'api-key' not found")
        _session, user = await self.server.refresh_session(request, "invalid session: invalid refresh token")
        return user

    async def create_api_key(self, request: web.Request) -> web.StreamResponse:
        """#8 create a key; the secret is in this response only."""
        if (fault := self.server.enter("api_keys")) is not None:
            return fault
        user = await self._api_key_user(request)
        body = await self.server.read_body(request)
        name = body.get("name")
        if name is None:
            raise ApiError.missing_parameter("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 256 or "\0" in name:
            raise ApiError.invalid_parameter(
                "API key name must be a non-empty string of at most 256 characters, without NUL"
            )
        secret = new_secret(48)
        key = ApiKeyRecord(
            id=new_object_id(),
            user_id=user.id,
            name=name,
            key_digest=digest(secret),
            disabled=False,
            created=int(time.time()),
        )
        try:
            await self.server.store.create_api_key(key)
        except DuplicateError:
            raise ApiError(409, "APIKeyAlreadyExists", f"API key with name {name!r} already exists") from None
        return json_response(self._key_body(key, secret), 201)

    async def list_api_keys(self, request: web.Request) -> web.StreamResponse:
        """#9 the caller's keys, without secrets."""
        if (fault := self.server.enter("api_keys")) is not None:
            return fault
        user = await self._api_key_user(request)
        return json_response([self._key_body(k) for k in await self.server.store.list_api_keys(user.id)])

    async def get_api_key(self, request: web.Request) -> web.StreamResponse:
        """#10 one key."""
        if (fault := self.server.enter("api_keys")) is not None:
            return fault
        user = await self._api_key_user(request)
        return json_response(self._key_body(await self._owned_key(request, user)))

    async def delete_api_key(self, request: web.Request) -> web.StreamResponse:
        """#11 delete a key."""
        if (fault := self.server.enter("api_keys")) is not None:
            return fault
        user = await self._api_key_user(request)
        key = await self._owned_key(request, user)
        await self.server.store.delete_api_key(key.id)  # and the sessions logged in with it
        await self.server.user_admin.end_revoked_streams(user.id)
        return empty_response(204)

    async def toggle_api_key(self, request: web.Request) -> web.StreamResponse:
        """#12/#13 enable or disable a key."""
        if (fault := self.server.enter("api_keys")) is not None:
            return fault
        user = await self._api_key_user(request)
        key = await self._owned_key(request, user)
        await self.server.store.set_api_key_disabled(key.id, request.match_info["toggle"] == "disable")
        await self.server.user_admin.end_revoked_streams(user.id)
        return empty_response(204)
