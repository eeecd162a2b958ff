"""Access and refresh tokens: HS256 JWTs signed with the data directory's secret.

Claims (App Services'): ``sub`` (user id), ``typ`` (``access``/``refresh``, checked
so one kind never passes for the other), integer ``iat``/``exp``, ``baas_device_id``,
``baas_domain_id`` (app id), ``baas_session_id`` (the session the token belongs to),
``user_data`` (canonical EJSON custom data, access only) and ``baas_gen`` (the user's
access-token generation: bumping it revokes every outstanding access token).
Decoding pins the algorithm list to HS256, so ``alg: none`` and RS/HS confusion fail.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import attrs
import jwt

from ._errors import ApiError
from ._secrets import new_secret

__all__ = ["TokenClaims", "TokenIssuer"]

_ALGORITHMS = ["HS256"]


@attrs.frozen
class TokenClaims:
    """The verified claims of one of our tokens."""

    user_id: str
    kind: str
    session_id: str
    device_id: str
    generation: int
    issued_at: int
    expires_at: int
    #: The access token's ``user_data`` claim (canonical EJSON custom data): ``%%user.custom_data``.
    user_data: Mapping[str, Any] = attrs.field(factory=dict)


class TokenIssuer:
    """Signs and verifies this server's tokens."""

    def __init__(self, secret: bytes, app_id: str, access_lifetime: int, refresh_lifetime: int):
        self._secret = secret
        self._app_id = app_id
        self._access_lifetime = access_lifetime
        self._refresh_lifetime = refresh_lifetime

    def __repr__(self) -> str:
        return f"TokenIssuer(app_id={self._app_id!r})"

    def access_token(
        self, *, user_id: str, session_id: str, device_id: str, generation: int, user_data: Any | None
    ) -> str:
        """A signed access token; ``user_data`` must already be canonical EJSON data."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": user_id,
            "typ": "access",
            "iat": now,
            "exp": now + self._access_lifetime,
            "baas_device_id": device_id,
            "baas_domain_id": self._app_id,
            "baas_session_id": session_id,
            "baas_gen": generation,
            # Two tokens issued in the same second must still differ: clients tell a fresh
            # token from a stale one by comparing them.
            "jti": new_secret(12),
        }
        if user_data is not None:
            claims["user_data"] = user_data
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def refresh_token(self, *, user_id: str, session_id: str, device_id: str) -> tuple[str, int]:
        """A signed refresh token and its expiry (epoch seconds).

        A random ``jti`` makes each token a high-entropy secret, so the store can keep
        only its digest.
        """
        now = int(time.time())
        exp = now + self._refresh_lifetime
        claims = {
            "sub": user_id,
            "typ": "refresh",
            "iat": now,
            "exp": exp,
            "baas_device_id": device_id,
            "baas_domain_id": self._app_id,
            "baas_session_id": session_id,
            "jti": new_secret(24),
        }
        return jwt.encode(claims, self._secret, algorithm="HS256"), exp

    def verify(self, token: str, kind: str, *, not_found: str = "invalid session") -> TokenClaims:
        """Verify signature, algorithm, expiry, app and kind; 401 InvalidSession otherwise."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=_ALGORITHMS,
                options={"require": ["exp", "iat", "sub", "typ"]},
            )
        except jwt.ExpiredSignatureError:
            raise ApiError.invalid_session(
                "invalid session: access token expired"
                if kind == "access"
                else "invalid session: refresh token expired"
            ) from None
        except jwt.PyJWTError:
            raise ApiError.invalid_session(not_found) from None
        if claims.get("typ") != kind or claims.get("baas_domain_id") != self._app_id:
            raise ApiError.invalid_session(not_found)
        try:
            return TokenClaims(
                user_id=_str(claims["sub"]),
                kind=kind,
                session_id=_str(claims["baas_session_id"]),
                device_id=_str(claims.get("baas_device_id", "")),
                generation=_int(claims.get("baas_gen", 0)),
                issued_at=_int(claims["iat"]),
                expires_at=_int(claims["exp"]),
                user_data=claims["user_data"] if isinstance(claims.get("user_data"), dict) else {},
            )
        except (KeyError, TypeError):
            raise ApiError.invalid_session(not_found) from None


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError
    return value
