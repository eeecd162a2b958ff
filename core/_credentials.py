"""Credentials: what a user logs in (or links) with.

Each factory checks its input at once and raises ``InvalidArgumentError``, so a bad
argument never reaches the network. Secrets stay out of ``repr``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from .errors import InvalidArgumentError

__all__ = ["Credentials"]

ANONYMOUS = "anon-user"
EMAIL_PASSWORD = "local-userpass"
API_KEY = "api-key"
JWT = "custom-token"
FUNCTION = "custom-function"
GOOGLE = "oauth2-google"
FACEBOOK = "oauth2-facebook"
APPLE = "oauth2-apple"


def _require_text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{name} must be a string, not {type(value).__name__}")
    if not value.strip():
        raise InvalidArgumentError(f"{name} must not be empty")
    return value


@attrs.frozen(repr=False)
class Credentials:
    """How to log in. Build with the class methods, e.g. ``Credentials.email_password(...)``.

    ``provider`` is the provider name on the wire (``"local-userpass"``...);
    ``payload`` the body fields, kept out of ``repr``.
    """

    provider: str
    payload: Mapping[str, Any] = attrs.field(factory=dict)
    reuse: bool = False

    def __repr__(self) -> str:
        return f"Credentials(provider={self.provider!r})"

    @classmethod
    def anonymous(cls, reuse: bool = True) -> Credentials:
        """Anonymous log-in. With ``reuse`` a logged-in anonymous user is returned as is."""
        return cls(ANONYMOUS, {}, reuse=bool(reuse))

    @classmethod
    def email_password(cls, email: str, password: str) -> Credentials:
        email = _require_text(email, "email")
        password = _require_text(password, "password")
        return cls(EMAIL_PASSWORD, {"username": email, "password": password})

    @classmethod
    def api_key(cls, key: str) -> Credentials:
        """A user API key or a server API key."""
        return cls(API_KEY, {"key": _require_text(key, "key")})

    @classmethod
    def jwt(cls, token: str) -> Credentials:
        """A custom JWT, verified by the server's custom-token provider."""
        return cls(JWT, {"token": _require_text(token, "token")})

    @classmethod
    def function(cls, payload: Mapping[str, Any]) -> Credentials:
        """A document handed to the server's custom authentication function."""
        if not isinstance(payload, Mapping):
            raise InvalidArgumentError(
                f"payload must be a mapping, not {type(payload).__name__}"
            )
        if not all(isinstance(k, str) for k in payload):
            raise InvalidArgumentError("payload keys must be strings")
        reserved = {"options", "provider"} & set(payload)
        if reserved:
            raise InvalidArgumentError(f"payload must not use the reserved key(s) {sorted(reserved)}")
        return cls(FUNCTION, dict(payload))

    @classmethod
    def google(cls, *, auth_code: str | None = None, id_token: str | None = None) -> Credentials:
        """Google, with exactly one of a server auth code or an OpenID Connect id token."""
        if (auth_code is None) == (id_token is None):
            raise InvalidArgumentError("give exactly one of auth_code or id_token")
        if auth_code is not None:
            return cls(GOOGLE, {"authCode": _require_text(auth_code, "auth_code")})
        return cls(GOOGLE, {"id_token": _require_text(id_token, "id_token")})

    @classmethod
    def facebook(cls, access_token: str) -> Credentials:
        return cls(FACEBOOK, {"accessToken": _require_text(access_token, "access_token")})

    @classmethod
    def apple(cls, id_token: str) -> Credentials:
        return cls(APPLE, {"id_token": _require_text(id_token, "id_token")})
