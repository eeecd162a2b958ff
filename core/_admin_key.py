"""The Admin API key file shared by ``appusers serve --admin-key-file`` and ``appusers admin``.

A JSON object ``{"public_key": ..., "private_key": ...}`` (the camelCase spellings
``publicKey``/``privateKey`` of Atlas tooling are accepted too), kept 0600: the server
reads it to know the one key pair it accepts (and keeps only a digest of the private
key), the ``appusers admin`` commands read it to log in. ``appusers admin create-key``
writes a fresh one.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from pathlib import Path

import attrs

__all__ = [
    "AdminKeyError",
    "AdminKeyPair",
    "new_admin_key_pair",
    "read_admin_key_file",
    "write_admin_key_file",
]

#: Longer fields are refused: a key file is a few dozen bytes, anything else is the wrong file.
_MAX_FIELD = 256


class AdminKeyError(ValueError):
    """The key file is missing, unreadable, or not a key pair (the message never holds a key)."""


@attrs.frozen
class AdminKeyPair:
    """An Admin API key pair; the private key never appears in ``repr``."""

    public_key: str
    private_key: str = attrs.field(repr=False)


def _field(data: dict[str, object], *names: str) -> str:
    for name in names:
        value = data.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip() or len(value) > _MAX_FIELD:
            raise AdminKeyError(f"{names[0]} must be a non-empty string of at most {_MAX_FIELD} characters")
        if any(ord(c) < 0x21 or c == "\x7f" for c in value):
            raise AdminKeyError(f"{names[0]} must not contain spaces or control characters")
        return value
    raise AdminKeyError(f"missing {names[0]}")


def read_admin_key_file(path: str | os.PathLike[str]) -> AdminKeyPair:
    """The key pair in ``path``; :class:`AdminKeyError` naming the file otherwise."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AdminKeyError(
            f"cannot read admin key file {path}: {exc.strerror or type(exc).__name__}"
        ) from None
    if len(raw) > 4096:
        raise AdminKeyError(f"admin key file {path} is too large to be a key file")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise AdminKeyError(f"admin key file {path} is not a JSON object") from None
    if not isinstance(data, dict):
        raise AdminKeyError(f"admin key file {path} is not a JSON object")
    try:
        return AdminKeyPair(
            public_key=_field(data, "public_key", "publicKey"),
            private_key=_field(data, "private_key", "privateKey"),
        )
    except AdminKeyError as exc:
        raise AdminKeyError(f"admin key file {path}: {exc}") from None


def new_admin_key_pair() -> AdminKeyPair:
    """A fresh pair: an 8-letter public key (as Atlas shows them) and a random private key."""
    return AdminKeyPair(
        public_key=secrets.token_hex(4), private_key=str(uuid.UUID(bytes=secrets.token_bytes(16)))
    )


def write_admin_key_file(path: str | os.PathLike[str], pair: AdminKeyPair) -> None:
    """Write ``pair`` to a new file ``path``, mode 0600 whatever the umask; never overwrites."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise AdminKeyError(f"{path} exists: not overwriting a key file") from None
    except OSError as exc:
        raise AdminKeyError(f"cannot create {path}: {exc.strerror or type(exc).__name__}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fh.fileno(), 0o600)
        json.dump({"public_key": pair.public_key, "private_key": pair.private_key}, fh)
        fh.write("\n")
