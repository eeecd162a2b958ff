"""Password hashing, secret digests and random identifiers.

Passwords: scrypt (memory-hard) with a 16-byte per-user salt, stored as
``scrypt$n$r$p$salt_b64$hash_b64`` so a cost change keeps old hashes verifiable.
High-entropy secrets (API keys, refresh tokens, email tokens) are stored as their
sha256 hex digest: brute force is hopeless at 256+ bits of entropy, and a digest
lets the store look them up by index. Every comparison uses ``hmac.compare_digest``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import os
import secrets
import time

from ._config import ScryptSettings

__all__ = ["digest", "digest_matches", "hash_password", "new_object_id", "new_secret", "verify_password"]

_DKLEN = 32


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    # maxmem must cover 128*r*n (+ slack) or OpenSSL refuses the strong default.
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=_DKLEN, maxmem=256 * r * n + 2**20
    )


def hash_password(password: str, cost: ScryptSettings) -> str:
    """A self-describing scrypt hash of ``password`` with a fresh salt."""
    salt = secrets.token_bytes(16)
    key = _scrypt(password, salt, cost.n, cost.r, cost.p)
    salt_b64, key_b64 = base64.b64encode(salt).decode(), base64.b64encode(key).decode()
    return f"scrypt${cost.n}${cost.r}${cost.p}${salt_b64}${key_b64}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time compare)."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key)
        actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def dummy_verify(cost: ScryptSettings) -> None:
    """Spend the same time as a real check so unknown accounts are not told apart by timing."""
    _scrypt("x", b"0" * 16, cost.n, cost.r, cost.p)


def digest(secret: str) -> str:
    """sha256 hex digest of a high-entropy secret (what the store keeps)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def digest_matches(secret: str, stored_digest: str) -> bool:
    """Constant-time check of ``secret`` against a stored digest."""
    return hmac.compare_digest(digest(secret), stored_digest)


def new_secret(nbytes: int = 48) -> str:
    """A URL-safe random secret (48 bytes -> 64 characters)."""
    return secrets.token_urlsafe(nbytes)


class _ObjectIds:
    """ObjectId layout (4 bytes of epoch seconds, 5 random bytes per process, a 3-byte counter)
    as text, without building a ``bson.ObjectId`` each time (a log-in makes five ids; bson's
    costs 2 µs each, checking the process id on every call)."""

    def __init__(self) -> None:
        self.reseed()
        # A forked child must not repeat its parent's ids.
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self.process = secrets.token_hex(5)
        self.counter = itertools.count(secrets.randbelow(0x1000000))

    def new(self) -> str:
        return f"{int(time.time()) & 0xFFFFFFFF:08x}{self.process}{next(self.counter) & 0xFFFFFF:06x}"


_object_ids = _ObjectIds()


def new_object_id() -> str:
    """A fresh 24-hex ObjectId string (user, identity, key, session and device ids)."""
    return _object_ids.new()
