"""Reading (never verifying) the JWTs the server hands out.

Clients do not verify signatures (neither realm-web nor core does); they read ``exp``, ``iat``
and ``user_data``. A token that does not have core's shape is a ``BadTokenError``.
"""

from __future__ import annotations

import binascii
import json
from typing import TYPE_CHECKING, Any

from ._lazy import lazy_module
from .errors import BadTokenError

if TYPE_CHECKING:
    import base64
else:
    base64 = lazy_module("base64", globals())  # at the first token read: see ``_lazy``

__all__ = ["decode_payload", "looks_like_jwt"]


def looks_like_jwt(token: object) -> bool:
    """Core's structural check: three dot-separated parts, first and last non-empty."""
    if type(token) is not str or token.count(".") != 2:
        return False
    head, middle, tail = token.split(".")
    return bool(head and middle and tail)


def decode_payload(token: str, *, what: str = "token") -> dict[str, Any]:
    """The payload of ``token``; ``exp`` and ``iat`` must be integers.

    The message names ``what`` but never shows the token.
    """
    if not looks_like_jwt(token):
        raise BadTokenError(f"malformed JWT: the {what} does not have three parts")
    if not token.isascii() or not token.isprintable() or " " in token:
        raise BadTokenError(f"malformed JWT: the {what} has characters outside base64url")
    middle = token.split(".")[1]
    # Both base64 alphabets and missing padding are accepted (core's decoder does).
    padded = middle.replace("-", "+").replace("_", "/") + "=" * (-len(middle) % 4)
    try:
        payload = json.loads(base64.b64decode(padded, validate=True))
    except (binascii.Error, ValueError, RecursionError):
        raise BadTokenError(f"malformed JWT: the {what} payload is not base64 JSON") from None
    if not isinstance(payload, dict):
        raise BadTokenError(f"malformed JWT: the {what} payload is not an object")
    for claim in ("exp", "iat"):
        value = payload.get(claim)
        if not isinstance(value, int) or isinstance(value, bool):
            raise BadTokenError(f"malformed JWT: the {what} has no integer '{claim}' claim")
    return payload
