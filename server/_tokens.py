"""Access and refresh tokens: HS256 JWTs signed with the data directory's secret.

Claims (App Services'): ``sub`` (user id), ``typ`` (``access``/``refresh``, checked
so one kind never passes for the other), integer ``iat``/``exp``, ``baas_device_id``,
``baas_domain_id`` (app id), ``baas_session_id`` (the session the token belongs to),
``user_data`` (canonical EJSON custom data, access only) and ``baas_gen`` (the user's
access-token generation: bumping it revokes every outstanding access token).
Decoding pins the algorithm to HS256, so ``alg: none`` and RS/HS confusion fail.

The compact JWS is encoded and checked here with a keyed HMAC prepared once, not
through PyJWT: PyJWT prepares (and vets) the key and merges its options on every
call, 35.6 µs per verification against about 6 µs here, and verification runs on
every authenticated request (issue 10). The checks are PyJWT's for these claims:
header ``alg`` exactly HS256, signature compared in constant time, ``exp``/``iat``/
``sub``/``typ`` required, ``exp`` integer and not past, ``iat`` and ``nbf`` not in
the future, no ``aud`` (we never issue one). The header we write is PyJWT's, so
tokens issued before this change stay valid.

Verified claims are remembered by token text (bounded, oldest first out): a client
sends the same access token on every request for its lifetime, and the signature,
base64 and JSON work need not be redone for it. A hit still checks ``exp``; only
tokens that passed every check are remembered, and equal text means an equal
signature, so nothing unsigned can hit. Revocation is not this module's concern:
callers check the user's generation and the session on every request, after this.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

import attrs

from ._ejson import compact_json
from ._errors import ApiError
from ._secrets import new_secret

__all__ = ["TokenClaims", "TokenIssuer"]

_ALGORITHM = "HS256"
_REQUIRED = frozenset(("exp", "iat", "sub", "typ"))
#: Verified tokens remembered (about 1 kB each with their claims).
_VERIFIED_ENTRIES = 8192


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


#: The header every token of ours carries, encoded as PyJWT encoded it.
_HEADER = _b64encode(json.dumps({"alg": _ALGORITHM, "typ": "JWT"}, separators=(",", ":")).encode())


class _Invalid(Exception):
    """Not a valid token of ours (the caller answers with its own message)."""


class _Expired(Exception):
    """A valid token past its ``exp``."""


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
        # Keyed once: each signature copies it instead of setting the key up again.
        self._mac = hmac.new(secret, digestmod=hashlib.sha256)
        self._app_id = app_id
        self._access_lifetime = access_lifetime
        self._refresh_lifetime = refresh_lifetime
        self._verified: dict[str, TokenClaims] = {}

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
        return self._sign(claims)

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
        return self._sign(claims), exp

    def _sign(self, claims: Mapping[str, Any]) -> str:
        payload = _b64encode(compact_json(claims).encode())
        signing_input = f"{_HEADER}.{payload}"
        return f"{signing_input}.{self._signature(signing_input.encode('ascii'))}"

    def _signature(self, signing_input: bytes) -> str:
        mac = self._mac.copy()
        mac.update(signing_input)
        return _b64encode(mac.digest())

    def _decode(self, token: str) -> dict[str, Any]:
        """The verified claims of a compact HS256 JWS; _Invalid or _Expired otherwise."""
        if not isinstance(token, str) or not token.isascii():
            raise _Invalid
        parts = token.split(".")
        if len(parts) != 3:
            raise _Invalid
        header, payload, signature = parts
        if header != _HEADER:
            # Another encoding of a header is fine as long as it pins HS256 (no "none", no RS*).
            try:
                fields = json.loads(_b64decode(header))
            except (ValueError, binascii.Error):
                raise _Invalid from None
            if not isinstance(fields, dict) or fields.get("alg") != _ALGORITHM:
                raise _Invalid
        expected = self._signature(f"{header}.{payload}".encode("ascii"))
        if not hmac.compare_digest(expected, signature):
            raise _Invalid
        try:
            claims = json.loads(_b64decode(payload))
        except (ValueError, binascii.Error):
            raise _Invalid from None
        if not isinstance(claims, dict) or not _REQUIRED <= claims.keys():
            raise _Invalid
        if "aud" in claims:
            raise _Invalid
        now = time.time()
        for name in ("exp", "iat", "nbf"):
            value = claims.get(name)
            if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
                raise _Invalid
        if claims["iat"] > now or claims.get("nbf", 0) > now:
            raise _Invalid
        if claims["exp"] <= now:
            raise _Expired
        return claims

    def verify(self, token: str, kind: str, *, not_found: str = "invalid session") -> TokenClaims:
        """Verify signature, algorithm, expiry, app and kind; 401 InvalidSession otherwise."""
        known = self._verified.get(token)
        if known is not None and known.kind == kind and known.expires_at > time.time():
            return known
        claims = self._verify(token, kind, not_found)
        verified = self._verified
        if len(verified) >= _VERIFIED_ENTRIES:
            del verified[next(iter(verified))]
        verified[token] = claims
        return claims

    def _verify(self, token: str, kind: str, not_found: str) -> TokenClaims:
        try:
            claims = self._decode(token)
        except _Expired:
            raise ApiError.invalid_session(
                "invalid session: access token expired"
                if kind == "access"
                else "invalid session: refresh token expired"
            ) from None
        except _Invalid:
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
