"""Authentication providers: turn a login body into an identity (each provider's login body).

:meth:`Providers.resolve` checks the credential and returns a :class:`Resolved`
identity; creating users, linking and sessions are the login handler's job.
Secrets are verified here (passwords with scrypt, API keys by digest, JWTs with
an algorithm allow-list) and throttled per account and per client address.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import jwt

from ._config import OpenIdSettings, ServerConfig
from ._errors import ApiError
from ._functions import FunctionContext
from ._hashing import PasswordHasher
from ._secrets import digest, new_object_id
from ._store import IdentityRecord, UserStore
from ._throttle import LoginThrottle

__all__ = ["PROVIDER_TYPES", "STANDARD_FIELDS", "Providers", "Resolved", "provider_id"]

PROVIDER_TYPES = (
    "anon-user",
    "local-userpass",
    "api-key",
    "custom-token",
    "custom-function",
    "oauth2-google",
    "oauth2-facebook",
    "oauth2-apple",
)
#: Profile ``data`` keys clients read as strings (realm-web and core do).
STANDARD_FIELDS = (
    "name",
    "email",
    "picture_url",
    "first_name",
    "last_name",
    "gender",
    "birthday",
    "min_age",
    "max_age",
)
_GOOGLE_ISSUERS = ["accounts.google.com", "https://accounts.google.com"]
_APPLE_ISSUER = "https://appleid.apple.com"


def provider_id(app_id: str, provider: str) -> str:
    """A stable 24-hex id for a provider of an app (the service's ``provider_id``)."""
    return hashlib.sha256(f"{app_id}/{provider}".encode()).hexdigest()[:24]


@attrs.frozen
class Resolved:
    """A verified identity from a login body."""

    identity: IdentityRecord
    data: Mapping[str, str] = attrs.field(factory=dict)
    user_type: str = "normal"
    #: user API keys log in as the key's owner.
    owner: str | None = None
    #: The identity was made up by this log-in (anonymous): nobody can own it yet.
    fresh: bool = False


def _auth_failed(provider: str, detail: str | None = None) -> ApiError:
    msg = f"authentication via {provider!r} failed"
    return ApiError(401, "AuthError", f"{msg}: {detail}" if detail else msg)


def _string(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None:
        raise ApiError.missing_parameter(key)
    if not isinstance(value, str) or not value:
        raise ApiError.invalid_parameter(f"expected {key!r} to be a non-empty string")
    return value


def _profile(info: Mapping[str, Any]) -> dict[str, str]:
    """Standard profile fields from an OpenID-style user info document, as strings."""
    aliases = {
        "picture_url": ("picture_url", "picture"),
        "first_name": ("first_name", "given_name"),
        "last_name": ("last_name", "family_name"),
    }
    out: dict[str, str] = {}
    for field in STANDARD_FIELDS:
        for key in aliases.get(field, (field,)):
            value = info.get(key)
            if value is not None and not isinstance(value, (dict, list)):
                out[field] = str(value).lower() if isinstance(value, bool) else str(value)
                break
    return out


class Providers:
    """Every configured provider."""

    def __init__(
        self,
        config: ServerConfig,
        store: UserStore,
        throttle: LoginThrottle,
        context_factory: Callable[[], FunctionContext],
        hasher: PasswordHasher,
    ):
        self._config = config
        self._store = store
        self._throttle = throttle
        self._context = context_factory
        self._hasher = hasher
        self._jwks: dict[Path, jwt.PyJWKSet] = {}
        # A hash per identity otherwise (every log-in makes one).
        self._pids = {p: provider_id(config.app_id, p) for p in PROVIDER_TYPES}

    def _pid(self, provider: str) -> str:
        return self._pids[provider]

    def _identity(
        self, provider: str, identity_id: str, data: Mapping[str, Any] | None = None
    ) -> IdentityRecord:
        if "\0" in identity_id:  # from a custom token or function; no store may keep it (PostgreSQL cannot)
            raise ApiError(401, "AuthError", "invalid identity id: contains a NUL character")
        return IdentityRecord(
            id=identity_id, provider_type=provider, provider_id=self._pid(provider), provider_data=data or {}
        )

    def enabled(self, provider: str) -> bool:
        """Whether the provider is known and on."""
        return provider in PROVIDER_TYPES and self._config.providers.enabled(provider)

    async def resolve(self, provider: str, body: Mapping[str, Any], address: Callable[[], str]) -> Resolved:
        """Verify the credential in ``body`` (``options``/``provider`` keys ignored).

        ``address`` gives the client's address; only the throttled providers ask for it
        (working it out parses headers and the peer's IP: an anonymous log-in need not).
        """
        if not self.enabled(provider):
            raise ApiError(404, "AuthProviderNotFound", f"authentication provider {provider!r} not found")
        handler = getattr(self, "_" + provider.replace("-", "_"))
        result: Resolved = await handler(body, address)
        return result

    async def _anon_user(self, body: Mapping[str, Any], address: Callable[[], str]) -> Resolved:
        # Every anonymous login is a new user, as on the service.
        return Resolved(self._identity("anon-user", f"{new_object_id()}-{new_object_id()[-12:]}"), fresh=True)

    async def _local_userpass(self, body: Mapping[str, Any], address: Callable[[], str]) -> Resolved:
        email = _string(body, "username")
        password = body.get("password")
        if not isinstance(password, str):
            raise ApiError.missing_parameter("password")
        account = "local-userpass:" + email
        client = address()
        await self._throttle.check(account, client)
        record = await self._store.get_userpass(email)
        if record is None:
            await self._hasher.dummy()  # an unknown name costs the same time as a wrong password
            await self._throttle.failed(account, client)
            raise ApiError.unauthorized_login()
        if not await self._hasher.verify(password, record.password_hash):
            await self._throttle.failed(account, client)
            raise ApiError.unauthorized_login()
        await self._throttle.succeeded(account, client)
        if not record.confirmed:
            raise ApiError.unauthorized_login("confirmation required")
        return Resolved(
            self._identity("local-userpass", record.identity_id, {"email": email}), data={"email": email}
        )

    async def _api_key(self, body: Mapping[str, Any], address: Callable[[], str]) -> Resolved:
        key = _string(body, "key")
        client = address()
        await self._throttle.check(None, client)
        key_digest = digest(key)
        record = await self._store.find_api_key(key_digest)
        if record is not None and hmac.compare_digest(record.key_digest, key_digest):
            if record.disabled:
                await self._throttle.failed(None, client)
                raise ApiError.unauthorized_login()
            return Resolved(self._identity("api-key", record.id, {"name": record.name}), owner=record.user_id)
        settings = self._config.providers.api_key
        for server_key in settings.server_keys if settings else ():
            if hmac.compare_digest(server_key.key_sha256, key_digest):
                identity_id = hashlib.sha256(f"server-key/{server_key.name}".encode()).hexdigest()[:24]
                return Resolved(
                    self._identity("api-key", identity_id, {"name": server_key.name}),
                    data={"name": server_key.name},
                    user_type="server",
                )
        await self._throttle.failed(None, client)
        raise ApiError.unauthorized_login()

    async def _custom_token(self, body: Mapping[str, Any], address: Callable[[], str]) -> Resolved:
        token = _string(body, "token")
        settings = self._config.providers.custom_token
        assert settings is not None
        try:
            claims = jwt.decode(
                token,
                settings.key,
                algorithms=[settings.algorithm],
                audience=settings.audience,
                options={"require": ["exp", "sub"], "verify_aud": settings.audience is not None},
            )
        except jwt.PyJWTError as exc:
            raise _auth_failed("custom-token", f"invalid token ({type(exc).__name__})") from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise _auth_failed("custom-token", "token has no subject")
        data: dict[str, str] = {}
        metadata: dict[str, Any] = {}
        for field in settings.metadata_fields:
            value: Any = claims
            for part in field.path.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
            if value is None:
                if field.required:
                    raise _auth_failed("custom-token", f"required metadata field {field.path!r} missing")
                continue
            metadata[field.field_name] = value
            data[field.field_name] = (
                value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
            )
        return Resolved(self._identity("custom-token", sub, metadata), data=data)

    async def _call_hook(self, provider: str, function: str, *args: Any) -> Any:
        context = self._context()
        try:
            return await context.registry.invoke(function, context, list(args))
        except ApiError as exc:
            if exc.code == "FunctionNotFound":
                raise ApiError(
                    500, "InternalServerError", f"{provider}: function {function!r} is not defined"
                ) from None
            raise _auth_failed(provider, exc.message) from None

    async def _custom_function(self, body: Mapping[str, Any], address: Callable[[], str]) -> Resolved:
        settings = self._config.providers.custom_function
        assert settings is not None
        payload = {k: v for k, v in body.items() if k != "options"}
        result = await self._call_hook("custom-function", settings.function, payload)
        name = None
        if isinstance(result, Mapping):
            name = result.get("name")
            result = result.get("id")
        if not isinstance(result, str) or not result:
            raise _auth_failed("custom-function", "function did not return an id")
        data = {"name": name} if isinstance(name, str) else {}
        return Resolved(self._identity("custom-function", result, data), data=data)

    def _jwks_for(self, settings: OpenIdSettings, provider: str) -> jwt.PyJWKSet:
        if settings.jwks_path is None or settings.client_id is None:
            raise ApiError.invalid_parameter(
                f"{provider} id_token verification is not configured (client_id and jwks_file)"
            )
        cached = self._jwks.get(settings.jwks_path)
        if cached is None:
            try:
                cached = jwt.PyJWKSet.from_json(settings.jwks_path.read_text())
            except (OSError, jwt.PyJWTError, ValueError):
                raise ApiError(500, "InternalServerError", f"{provider}: JWKS file unreadable") from None
            self._jwks[settings.jwks_path] = cached
        return cached

    def _verify_id_token(
        self, token: str, settings: OpenIdSettings, provider: str, issuer: Any
    ) -> dict[str, Any]:
        jwks = self._jwks_for(settings, provider)
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            candidates = [k for k in jwks.keys if kid is None or k.key_id == kid]
            if not candidates:
                raise jwt.InvalidKeyError("unknown kid")
            claims: dict[str, Any] = jwt.decode(
                token,
                candidates[0].key,
                algorithms=["RS256"],
                audience=settings.client_id,
                issuer=issuer,
                options={"require": ["exp", "sub", "aud", "iss"]},
            )
        except jwt.PyJWTError as exc:
            raise _auth_failed(provider, f"invalid id_token ({type(exc).__name__})") from None
        return claims

    async def _oauth2_google(self, body: Mapping[str, Any], address: Callable[[], str]) -> Resolved:
        settings = self._config.providers.oauth2_google
        assert settings is not None
        if "id_token" in body:
            claims = self._verify_id_token(
                _string(body, "id_token"), settings, "oauth2-google", _GOOGLE_ISSUERS
            )
            return self._openid("oauth2-google", claims)
        if "authCode" in body:
            code = _string(body, "authCode")
            if settings.code_exchange_function is None:
                raise ApiError.invalid_parameter("oauth2-google authCode exchange is not configured")
            info = await self._call_hook("oauth2-google", settings.code_exchange_function, code)
            return self._openid("oauth2-google", info)
        raise ApiError.missing_parameter("id_token")

    async def _oauth2_apple(self, body: Mapping[str, Any], address: Callable[[], str]) -> Resolved:
        settings = self._config.providers.oauth2_apple
        assert settings is not None
        claims = self._verify_id_token(_string(body, "id_token"), settings, "oauth2-apple", _APPLE_ISSUER)
        return self._openid("oauth2-apple", claims)

    async def _oauth2_facebook(self, body: Mapping[str, Any], address: Callable[[], str]) -> Resolved:
        settings = self._config.providers.oauth2_facebook
        assert settings is not None
        token = _string(body, "accessToken")
        info = await self._call_hook("oauth2-facebook", settings.verifier_function, token)
        return self._openid("oauth2-facebook", info)

    def _openid(self, provider: str, info: Any) -> Resolved:
        if not isinstance(info, Mapping):
            raise _auth_failed(provider, "no user info")
        sub = info.get("sub", info.get("id"))
        if not isinstance(sub, str) or not sub:
            raise _auth_failed(provider, "user info has no id")
        data = _profile(info)
        return Resolved(self._identity(provider, sub, data), data=data)
