"""``user.api_keys``: the user's API keys (all calls carry the user's refresh token)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import attrs

from ._credentials import _require_text
from .errors import InvalidArgumentError, MissingJsonKeyError, ResponseError

if TYPE_CHECKING:
    from ._pipeline import Principal

__all__ = ["ApiKey", "ApiKeys"]


@attrs.frozen(repr=False)
class ApiKey:
    """A user API key. ``key`` (the secret) is only set on the value ``create`` returns."""

    id: str
    name: str
    disabled: bool
    key: str | None = None

    def __repr__(self) -> str:
        return f"ApiKey(id={self.id!r}, name={self.name!r}, disabled={self.disabled})"


def _parse_key(data: Any) -> ApiKey:
    if not isinstance(data, dict):
        raise ResponseError("an API key response is not an object")
    key_id, name, disabled = data.get("_id"), data.get("name"), data.get("disabled")
    if not isinstance(key_id, str):
        raise MissingJsonKeyError("_id")
    if not isinstance(name, str):
        raise MissingJsonKeyError("name")
    if not isinstance(disabled, bool):
        raise MissingJsonKeyError("disabled")
    secret = data.get("key")
    return ApiKey(key_id, name, disabled, secret if isinstance(secret, str) else None)


def _check_id(key_id: str) -> str:
    key_id = _require_text(key_id, "key_id")
    if len(key_id) != 24 or any(c not in "0123456789abcdefABCDEF" for c in key_id):
        raise InvalidArgumentError("key_id must be a 24-digit hexadecimal ObjectId")
    return key_id


class ApiKeys:
    """Create, list, enable, disable and delete the user's API keys."""

    __slots__ = ("_user",)

    def __init__(self, user: Principal) -> None:
        self._user = user

    async def _call(self, method: str, path: str, body: bytes | None = None,
                    timeout: float | None = None) -> Any:
        user = self._user
        pipeline = user._pipeline
        pipeline.require_logged_in(user)
        return await pipeline.request(method, "/auth/api_keys" + path, app_scoped=False, body=body,
                                      user=user, token="refresh", timeout=timeout,
                                      idempotent=method == "GET")  # reads only

    async def create(self, name: str, *, timeout: float | None = None) -> ApiKey:
        """A new enabled key; its secret ``key`` is returned this once only."""
        body = json.dumps({"name": _require_text(name, "name")}).encode()
        key = _parse_key(await self._call("POST", "", body, timeout))
        if key.key is None:
            raise MissingJsonKeyError("key")
        return key

    async def fetch(self, key_id: str, *, timeout: float | None = None) -> ApiKey:
        return _parse_key(await self._call("GET", "/" + quote(_check_id(key_id)), timeout=timeout))

    async def fetch_all(self, *, timeout: float | None = None) -> list[ApiKey]:
        data = await self._call("GET", "", timeout=timeout)
        if not isinstance(data, list):
            raise ResponseError("the API key list is not an array")
        return [_parse_key(item) for item in data]

    async def enable(self, key_id: str, *, timeout: float | None = None) -> None:
        await self._call("PUT", f"/{quote(_check_id(key_id))}/enable", timeout=timeout)

    async def disable(self, key_id: str, *, timeout: float | None = None) -> None:
        await self._call("PUT", f"/{quote(_check_id(key_id))}/disable", timeout=timeout)

    async def delete(self, key_id: str, *, timeout: float | None = None) -> None:
        await self._call("DELETE", "/" + quote(_check_id(key_id)), timeout=timeout)

    def __repr__(self) -> str:
        return f"<ApiKeys of {self._user!r}>"
